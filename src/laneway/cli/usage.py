"""Usage errors (a missing argument, an unknown option, a value of the wrong type) as
one line under the command's usage line, exit 2.

Typer 0.2x bundles its own copy of click and raises that copy's exceptions, which are
not ``click.ClickException`` even when click is installed beside it (uvicorn brings
it). The class to catch is found where Typer's own ``BadParameter`` comes from, so the
same code works with a Typer that uses the installed click.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any, cast

import typer
from rich.console import Console
from rich.markup import escape


def _find(name: str) -> type[Exception] | None:
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cast("type[Exception]", cls)
    return None


#: The base of every error Typer's click raises for a bad command line.
CLICK_EXCEPTION: type[Exception] = _find("ClickException") or typer.BadParameter
_NO_ARGS_IS_HELP = getattr(sys.modules[CLICK_EXCEPTION.__module__], "NoArgsIsHelpError", None)
_NO_SUCH_OPTION = getattr(sys.modules[CLICK_EXCEPTION.__module__], "NoSuchOption", None)
#: How alike a mistyped option and an option must be to be suggested (difflib's
#: ratio of the names without dashes: ``--modle`` / ``--model`` 0.8, ``--frobnicate`` /
#: ``--price`` 0.53; click's own cut-off, 0.6 with the dashes, suggests the latter).
CLOSE = 0.75


def close_options(typed: str, options: list[str]) -> list[str]:
    """The options ``typed`` is likely a typo of (or the start of), closest first."""
    name = typed.lstrip("-")

    def score(option: str) -> float:
        other = option.lstrip("-")
        if len(name) >= 3 and other.startswith(name):
            return 1.0
        return difflib.SequenceMatcher(None, name, other).ratio()

    scored = sorted(((score(o), o) for o in options), key=lambda x: -x[0])
    return [o for s, o in scored if s >= CLOSE][:3]


def show_usage_error(exc: Exception, console: Console) -> int:
    """Print ``exc`` (a :data:`CLICK_EXCEPTION`) as click would, in one error line;
    returns its exit code (2 for a usage error)."""
    anyexc = cast(Any, exc)
    code = int(getattr(anyexc, "exit_code", 2))
    if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
        anyexc.show(file=sys.stderr)  # `laneway` alone, or a group with no command: help
        return code
    ctx = getattr(anyexc, "ctx", None)
    if _NO_SUCH_OPTION is not None and isinstance(exc, _NO_SUCH_OPTION):
        anyexc.possibilities = close_options(str(anyexc.option_name),
                                             list(anyexc.possibilities or ()))
    message = " ".join(str(anyexc.format_message()).split())  # one line, however long
    if ctx is not None:
        console.print(escape(ctx.get_usage()), highlight=False, soft_wrap=True)
        message += f" (see {ctx.command_path} --help)"
    console.print(f"[red]laneway: error:[/red] {escape(message)}", highlight=False,
                  soft_wrap=True)
    return code
