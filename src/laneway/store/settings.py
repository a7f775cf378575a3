"""Where the ledger lives: ``StoreSettings.from_dsn("sqlite:///...")`` or ``"postgresql://..."``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from laneway.errors import ConfigError
from laneway.store.redact import mask_url

DEFAULT_PATH = Path(".laneway") / "laneway.db"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """A parsed store location. ``url`` is the SQLAlchemy URL."""

    url: str
    kind: str  # "sqlite" or "postgresql"
    path: Path | None = None

    @classmethod
    def from_dsn(cls, dsn: str | Path | None) -> StoreSettings:
        """Accept a file path, ``sqlite:///path``, or ``postgresql://user@host/db``."""
        if dsn is None or str(dsn) == "":
            return cls.sqlite(DEFAULT_PATH)
        text = str(dsn)
        if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            rest = text.split("://", 1)[1]
            return cls(url=f"postgresql+psycopg://{rest}", kind="postgresql")
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
