"""A full disk, recognised in one place: SQLite's ``SQLITE_FULL``, PostgreSQL's
``disk_full`` (SQLSTATE 53100) and ``ENOSPC``/``EDQUOT`` from a file write, however
deeply wrapped (SQLAlchemy's ``OperationalError``, an exception's cause or context).

:func:`disk_full_errors` turns any of them into :class:`~laneway.errors.DiskFullError`,
one line for the user ("disk full: ...; free space and run the same command").
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from laneway.errors import DiskFullError

_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps: SQLAlchemy's ``orig``, ``__cause__``, ``__context__``
    (each seen once: a chain can loop)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (getattr(e, "orig", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or what it wraps) says there is no space left."""
    for e in _causes(exc):
        if isinstance(e, DiskFullError):
            return True
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            return True
        if getattr(e, "sqlite_errorcode", None) == _SQLITE_FULL:
            return True
        if _PG_DISK_FULL in (getattr(e, "sqlstate", None), getattr(e, "pgcode", None)):
            return True
        if "database or disk is full" in str(e) or "No space left on device" in str(e):
            return True
    return False


def disk_full_error(exc: BaseException, where: str) -> DiskFullError | None:
    """A :class:`DiskFullError` for ``exc`` if it is a full disk, else ``None``."""
    if isinstance(exc, DiskFullError):
        return exc
    return DiskFullError(where) if is_disk_full(exc) else None


@contextlib.contextmanager
def disk_full_errors(where: str) -> Iterator[None]:
    """Raise :class:`DiskFullError` (naming ``where``) for a full disk inside the block."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        err = disk_full_error(exc, where)
        if err is None:
            raise
        raise err from exc
