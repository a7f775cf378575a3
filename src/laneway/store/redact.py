"""Passwords never printed: ``postgresql://user:***@host/db`` wherever a URL is shown.

``--db postgresql://user:pw@host/db`` is how a ledger's password is often given; the
commands laneway prints back (``Resume with: laneway run ...``) and its error messages
show the URL with the password replaced by ``***``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

MASK = "***"
#: ``scheme://user:password@`` (the password may hold anything but ``@``, ``/`` or a
#: space; the last ``@`` before the host ends it).
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)"
                          r"(?P<password>[^\s/]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    text = _CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", text)


def shell_command(argv: Iterable[str]) -> str:
    """A command line to print: each argument quoted for a shell, passwords masked."""
    return " ".join(shlex.quote(mask_url(a)) for a in argv)
