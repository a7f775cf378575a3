"""Jobs in, results out.

- :mod:`.formats`: the JSONL formats laneway reads (input lines, their defaults and
  checks) and writes (results in the Message Batches results form);
- :mod:`.output`: the results file (``-o``), checked before anything runs and replaced
  only when complete.

Its ``__init__`` imports nothing, so a caller loads only the parts it uses.
"""
