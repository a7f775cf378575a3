"""The ``laneway`` command line: one Typer app, one module per command group.

Errors are turned into one-line messages in one place, :func:`main`: a
:class:`~laneway.errors.LanewayError` prints ``laneway: error: ...`` and exits 2; a
usage error (see :mod:`laneway.cli.usage`) prints the usage line and one such line,
exit 2; a full disk (:class:`~laneway.errors.DiskFullError`) exits 1; Ctrl-C exits 130.
A user mistake never shows a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from laneway.cli import local
from laneway.cli.app import app, console_err
from laneway.cli.usage import CLICK_EXCEPTION, show_usage_error
from laneway.errors import DiskFullError, LanewayError

__all__ = ["app", "main"]

local.register(app)

for _name in ("ask", "run", "runs", "chat", "serve", "worker", "batches", "keys"):
    try:
        __import__(f"laneway.cli.{_name}")
    except ModuleNotFoundError as _exc:  # a command group not built yet
        if _exc.name != f"laneway.cli.{_name}":
            raise


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    try:
        rc = app(args=argv, prog_name="laneway", standalone_mode=False)
    except DiskFullError as exc:  # not a user mistake: exit 1, and the run can go on
        console_err.print(f"[red]laneway: error:[/red] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        return 1
    except LanewayError as exc:
        console_err.print(f"[red]laneway: error:[/red] {escape(str(exc))}", highlight=False,
                          soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console_err.print("laneway: interrupted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        console_err.print("laneway: aborted")
        return 130
    except CLICK_EXCEPTION as exc:  # usage errors: Typer's own click, not `import click`
        return show_usage_error(exc, console_err)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
