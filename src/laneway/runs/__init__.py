"""A run's session: the one home of what every caller of a run does alike.

``laneway.run()`` (:mod:`laneway.runs.library`), ``laneway worker`` (:mod:`laneway.runs.worker`) and
``HybridAgent.submit`` (:mod:`laneway.agent`) all carry out runs of the ledger; what they
share lives here, one concept a module:

- :mod:`.config`: :class:`~.config.RunConfig`, every option of a run;
- :mod:`.prepare`: a run's identity (name, fingerprint), its row, and taking it up
  (the run's lock, ingest, claims a dead process left);
- :mod:`.plan`: what is left of a run, as the planner sees it (``--mode auto``,
  deadlines), and what realtime would have cost;
- :mod:`.options`: a run's settings as the realtime runner's options and governor;
- :mod:`.progress`: :class:`~.progress.Progress`, built from the ledger's counts before
  the runner started plus the runner's live tally;
- :mod:`.watch`: a realtime runner run with its progress callback and events;
- :mod:`.execute`: a mode carried out (realtime, native, or native then realtime for
  what the deadline left) and the status a run ends in.

The package imports none of its callers. Its ``__init__`` imports nothing, so a caller
loads only the parts it uses.
"""
