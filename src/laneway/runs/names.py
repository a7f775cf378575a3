"""What a run may be called: 1 to 64 of ``A-Z a-z 0-9 _ . -``.

A run's name travels in URLs, in ``Content-Disposition`` headers, in file names and in
the shell commands laneway prints, so it is kept to characters that need no quoting in
any of them. Names are checked where a person gives one (``--run``, ``?name=``); runs
already in a ledger are read whatever they are called.
"""

from __future__ import annotations

import re

from laneway.errors import ConfigError

MAX_LENGTH = 64
RULE = f"1 to {MAX_LENGTH} of the characters A-Z a-z 0-9 _ . -"
_VALID = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_LENGTH}}}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def run_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a run, or ``None`` if it can."""
    if _VALID.fullmatch(name):
        return None
    if not name:
        return f"a run name is empty: use {RULE}"
    if len(name) > MAX_LENGTH:
        return f"a run name has {len(name)} characters: use {RULE}"
    bad = _UNSAFE.search(name)
    shown = repr(bad.group()) if bad else "?"
    return f"run name {name!r} contains {shown}: use {RULE}"


def check_run_name(name: str, *, option: str = "--run") -> str:
    """``name`` if it can name a run, else :class:`ConfigError` naming ``option``."""
    problem = run_name_problem(name)
    if problem is not None:
        raise ConfigError(f"{option}: {problem}")
    return name


def safe_file_stem(name: str) -> str:
    """``name`` with any character outside the allowed set replaced by ``_`` (for a file
    name in a header, where an old run's name may hold anything)."""
    return _UNSAFE.sub("_", name)[:200] or "run"
