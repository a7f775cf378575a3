"""A run's life: a JSONL input becomes a run of the ledger, is planned, carried out by a
runner, and ends in a status (or is canceled).

Its faces: ``laneway.run()`` (:mod:`.library`), ``laneway worker`` (:mod:`.worker`),
and, outside the package, ``HybridAgent.submit`` (:mod:`laneway.agent`) and the
gateway's Message Batches. What they share lives here, one concept a module:

- :mod:`.config`: :class:`~.config.RunConfig`, every option of a run;
- :mod:`.names`: what a run may be called;
- :mod:`.ingest`: an input file into the run's jobs, once, resumably;
- :mod:`.prepare`: a run's identity (name, fingerprint), its row, and taking it up
  (the run's lock, ingest, claims a dead process left);
- :mod:`.plan`: what is left of a run, as the planner sees it (``--mode auto``,
  deadlines), and what realtime would have cost;
- :mod:`.options`: a run's settings as the realtime runner's options and governor;
- :mod:`.progress`: :class:`~.progress.Progress`, built from the ledger's counts before
  the runner started plus the runner's live tally;
- :mod:`.watch`: a realtime runner run with its progress callback and events;
- :mod:`.execute`: a mode carried out (realtime, native, or native then realtime for
  what the deadline left);
- :mod:`.status`: a run's status, written there and nowhere else (each transition one
  function), and the status a run ends in;
- :mod:`.session`: :class:`~.session.RunSession`, a background run's life in this
  process (``HybridAgent.submit``, the gateway's batches): begun, carried out, ended;
- :mod:`.follow`: a cancel recorded by another process, followed here;
- :mod:`.cancel`: the one home of a cancel (a run stopped for good, its batches at the
  provider too), and its one report, :class:`~.cancel.CancelReport`.

The runners (:mod:`laneway.runners`) do the sending. The package imports none of its
callers. Its ``__init__`` imports nothing, so a caller loads only the parts it uses.
"""
