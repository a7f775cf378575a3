"""The results file (``-o``): checked before anything runs, replaced only when complete.

:func:`check_output` refuses, with one line, an ``-o`` that could not be written or
would destroy something: the input itself (also through a symlink or a hard link: the
same device and inode), a directory or another file that is not a regular one, a path
under a regular file, a missing directory, or one where no file can be made.
:func:`replacing` writes beside the final name, in ``.NAME.PID.<random>.part``, and
renames into place, so a crash or a full disk never leaves half a file, and the file is
untouched until the new one is complete. A part file whose process is gone (a kill) is
removed by :func:`clean_stale_parts` on the next run or ``results -o``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from laneway.errors import ConfigError


def check_output(path: str | Path, *, input_path: str | Path | None = None,
                 option: str = "-o") -> Path:
    """``path`` if results can be written there; else :class:`ConfigError` (one line)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name")
    if path.exists() and not path.is_file():  # a device or a pipe: it would be replaced
        raise ConfigError(f"{option} {path}: not a regular file; give a file name")
    parent = path.absolute().parent
    if not parent.is_dir():
        ancestor = parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            raise ConfigError(f"{option} {path}: {ancestor} is a file, not a directory")
        raise ConfigError(f"{option} {path}: the directory {parent} does not exist")
    if input_path is not None and _same_file(path, Path(input_path)):
        raise ConfigError(f"{option} {path}: that is the input file {input_path}; the "
                          "results would replace it: choose another path")
    _check_writable(path, parent, option)
    return path


def _check_writable(path: Path, parent: Path, option: str) -> None:
    """A file can be made beside ``path`` (where :func:`replacing` writes before the
    rename): tried, not guessed from permission bits (root passes those, and a
    read-only mount or ``/proc`` refuses root too)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"{option} {path}: no file can be made in {parent} ({why})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _part_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(path.name)}\.(?P<pid>\d+)\.[^.]+\.part$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process has not started writing: the file is from another
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_parts(path: str | Path) -> int:
    """Remove ``.NAME.PID.*.part`` files beside ``path`` whose process is gone."""
    path = Path(path)
    pattern = _part_pattern(path)
    removed = 0
    try:
        names = os.listdir(path.absolute().parent)
    except OSError:
        return 0
    for name in names:
        m = pattern.match(name)
        if m and not _alive(int(m.group("pid"))):
            with contextlib.suppress(FileNotFoundError):
                (path.absolute().parent / name).unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[TextIO]:
    """A text file that replaces ``path`` atomically when the block ends without error."""
    path = Path(path)
    clean_stale_parts(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".part",
                               dir=path.absolute().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
