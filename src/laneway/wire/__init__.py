"""The Anthropic API's wire format, as laneway's servers speak it: the local API
(:mod:`laneway.local`) and the gateway (:mod:`laneway.server.gateway`) alike.

- :mod:`.errors`: error bodies, the status of each error type, the gateway's own error
  answers (:func:`~.errors.api_error`) and the ``anthropic-version`` check;
- :mod:`.ids`: ids and times as the API writes them;
- :mod:`.batches`: a Message Batches create body checked as the API checks it, and
  where its results are served;
- :mod:`.sse`: a relayed stream read on the way through (usage, first content, errors).

Its ``__init__`` imports nothing, so a caller loads only the parts it uses.
"""
