"""The Anthropic API's wire format, as laneway's servers speak it: the local API
(:mod:`laneway.local`) and the gateway (:mod:`laneway.server.gateway`) alike.

One of each wire thing, used by every route and client of laneway that needs it:

- :mod:`.errors`: the one error body (:func:`~.errors.error_body`), the gateway's own
  error answers (:func:`~.errors.api_error`), the one 413, the Messages body limit
  (32,000,000 bytes) and the ``anthropic-version`` check;
- :mod:`.status`: the one status → outcome table (retried or not, counts an attempt,
  the governor's outcome) and the status of each error type;
- :mod:`.body`: the one size-limited body reader;
- :mod:`.ids`: ids and times as the API writes them;
- :mod:`.batches`: a Message Batches create body checked as the API checks it, its
  limits, its results (``succeeded``/``errored``, the one results-line encoder), and
  where its results are served;
- :mod:`.sse`: the one usage fold of a stream, its ``error`` event, and a relayed
  stream read on the way through (usage, first content, errors).

``wire`` imports nothing of laneway's but itself.

Its ``__init__`` imports nothing, so a caller loads only the parts it uses.
"""
