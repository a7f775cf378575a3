"""The provider: the one boundary where laneway calls the ``anthropic`` SDK.

- :mod:`.client`: :class:`~.client.Provider` (messages, streams, the SDK client with its
  own retries off) and the one map of the SDK's errors to laneway's (``sdk_errors``);
- :mod:`.stream`: a streamed Message's events read with an idle bound and folded into
  one Message;
- :mod:`.batches`: the provider's Message Batches (create, poll, results, cancel);
- :mod:`.relay`: raw requests for the gateway, the upstream's answer unread;
- :mod:`.backend`: which upstream a command talks to (the real API, or the local API
  started in-process) and opening it.

Nothing outside this package imports ``anthropic``. Its ``__init__`` imports nothing, so
a caller loads only the parts it uses (the SDK costs about 2 s of start-up).
"""
