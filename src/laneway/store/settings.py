"""Where the ledger lives: ``StoreSettings.from_dsn("sqlite:///...")`` or ``"postgresql://..."``.

Behind a connection pooler in transaction mode (PgBouncer's ``pool_mode = transaction``),
name it in the DSN: ``postgresql://user@host:6432/db?pooler=pgbouncer``. laneway then
turns off psycopg's automatic server-side prepared statements (a statement prepared on
one server connection does not exist on the next). laneway never holds session state
(locks, ``SET``) outside a transaction, pooled or not; the pooler is not detected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from laneway.errors import ConfigError
from laneway.store.redact import mask_url

DEFAULT_PATH = Path(".laneway") / "laneway.db"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """A parsed store location. ``url`` is the SQLAlchemy URL."""

    url: str
    kind: str  # "sqlite" or "postgresql"
    path: Path | None = None
    #: A pooler in transaction mode is in front of PostgreSQL (``?pooler=pgbouncer``).
    pooled: bool = False

    @classmethod
    def from_dsn(cls, dsn: str | Path | None) -> StoreSettings:
        """Accept a file path, ``sqlite:///path``, or ``postgresql://user@host/db``."""
        if dsn is None or str(dsn) == "":
            return cls.sqlite(DEFAULT_PATH)
        text = str(dsn)
        if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            rest, pooled = _take_pooler(text.split("://", 1)[1])
            return cls(url=f"postgresql+psycopg://{rest}", kind="postgresql", pooled=pooled)
        if text.startswith("sqlite:///"):
            return cls.sqlite(Path(text[len("sqlite:///"):]))
        if "://" in text:
            raise ConfigError(
                f"--db {mask_url(text)!r}: use a file path, sqlite:///PATH or "
                "postgresql://USER@HOST/DB"
            )
        return cls.sqlite(Path(text))

    @classmethod
    def sqlite(cls, path: Path) -> StoreSettings:
        return cls(url=f"sqlite:///{path}", kind="sqlite", path=path)

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        # Never print a password.
        _, _, tail = self.url.partition("://")
        creds, at, host = tail.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"postgresql://{user}{at}{host}" if at else f"postgresql://{tail}"


POOLERS = ("pgbouncer", "transaction")


def _take_pooler(rest: str) -> tuple[str, bool]:
    """``rest`` without laneway's own ``pooler=`` query parameter (libpq would refuse it),
    and whether it named a pooler."""
    base, q, query = rest.partition("?")
    if not q:
        return rest, False
    params = parse_qsl(query, keep_blank_values=True)
    named = [v for k, v in params if k == "pooler"]
    if not named:
        return rest, False
    if any(v not in POOLERS for v in named):
        raise ConfigError(f"--db: pooler={named[-1]!r}: use pooler=pgbouncer (a pooler in "
                          "transaction mode)")
    left = urlencode([(k, v) for k, v in params if k != "pooler"])
    return (f"{base}?{left}" if left else base), True
