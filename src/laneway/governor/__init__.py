"""The governor: one set of rate limits shared by people (interactive) and batch work
(background), and by several processes on one account.

- :mod:`.core`: :class:`~.core.Governor`, the rules (lanes, admission, AIMD, 429 pauses);
  pure policy with an injectable clock, importing nothing of laneway's but its errors;
- :mod:`.buckets`: its parts (lanes, limits, token buckets, AIMD), plain state machines;
- :mod:`.state`: what it keeps per model, and the permit it hands out;
- :mod:`.share`: each process's share of the account's limits;
- :mod:`.pauses`: a 429's pause shared by processes through the ledger;
- :mod:`.quota`: ``laneway serve`` processes sharing one account through the ledger
  (shares and pauses together).

Its ``__init__`` imports nothing, so a caller loads only the parts it uses.
"""
