"""``laneway ARGS`` run in the test's own process, through :func:`laneway.cli.main`.

A subprocess costs a Python start and laneway's imports (the SDK alone is about 2 s of
CPU); most CLI tests only check what a command prints and its exit code, which
:func:`laneway` gives as a subprocess would: the environment and working directory it is
given, ``sys.argv``, its own stdout and stderr, and an exit code. What a command leaves
in the process (prices given with ``--price``, frozen objects, the environment) is put
back. A traceback is not printed: the exception reaches the test, which fails.

Tests of what only a real process shows (start-up imports, signals, ``kill -9``, a
console script, stdin) keep running ``python -m laneway`` in a subprocess.

>>> res = laneway(["run", "in.jsonl", "--bogus"], env=env, cwd=tmp_path)
>>> res.returncode, res.stderr
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import io
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def laneway(args: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in-process; ``env`` replaces the environment for the call (as a
    subprocess's would), ``cwd`` is the working directory meanwhile."""
    from laneway.cli import main
    from laneway.cli.app import console, console_err

    argv = [os.fspath(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_argv = dict(os.environ), Path.cwd(), sys.argv
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        # rich reads COLUMNS once, when a console is made: a subprocess's consoles are
        # made anew with its environment, these are told.
        columns = os.environ.get("COLUMNS", "80")
        console.width = console_err.width = int(columns) if columns.isdigit() else 80
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["laneway", *argv]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _call(main, argv)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        gc.unfreeze()  # the commands freeze the heap of a process they own; not this one
    return subprocess.CompletedProcess(["laneway", *argv], code, out.getvalue(),
                                       err.getvalue())


def _call(main: Callable[[list[str]], int], argv: list[str]) -> int:
    """``main(argv)``; from an async test (its loop running in this thread, so a command's
    ``asyncio.run`` could not start) in a thread of its own, waited for as a subprocess
    would be."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return main(argv)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="laneway-cli") as pool:
        return pool.submit(main, argv).result()


def main(argv: list[str]) -> int:
    """As ``laneway.cli.main(argv)``, through :func:`laneway`: what the command printed is
    written to this process's stdout and stderr (for ``capsys``)."""
    res = laneway(argv)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode
