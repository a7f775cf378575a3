"""The password of ``--db postgresql://user:PASSWORD@host/db`` is never printed: not in
the "Resume with:" line of ``laneway run``, nor in an error (issue 18.3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pgserver
from laneway.errors import ConfigError
from laneway.local import RunningLocal
from laneway.store import StoreSettings

PASSWORD = "hunter2-s3cret"


@pytest.fixture
def pg_with_password() -> Iterator[str]:
    """A fresh schema's DSN with a password in it (the test cluster trusts loopback, so
    any password is accepted: what matters is what laneway prints)."""
    try:
        server = pgserver.find_postgres()
        pgserver.wait_ready(server)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    name, dsn = pgserver.new_schema(server)
    assert dsn.startswith("postgresql://postgres@")
    yield dsn.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@", 1)
    pgserver.drop_schema(server, name)


def test_the_resume_line_masks_the_password(pg_with_password: str, tmp_path: Path,
                                            local_api: RunningLocal) -> None:
    (tmp_path / "in.jsonl").write_text("".join(
        json.dumps({"id": f"j{i}", "prompt": f"say {i}"}) + "\n" for i in range(20)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env |= {"ANTHROPIC_BASE_URL": local_api.base_url, "COLUMNS": "300"}
    proc = subprocess.run(
        [sys.executable, "-m", "laneway", "run", "in.jsonl", "--db", pg_with_password,
         "--budget", "0.000001", "--concurrency", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr  # stopped by the budget, jobs left
    resume = [line for line in proc.stderr.splitlines() if "Resume with:" in line]
    assert len(resume) == 1, proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    assert "postgresql://postgres:***@127.0.0.1:" in resume[0]


def test_urls_are_masked_wherever_they_are_shown() -> None:
    from laneway.store.redact import mask_url, shell_command

    assert mask_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("postgres://u:p@ss@h/db") == "postgres://u:***@h/db"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_url("postgresql://h/db?user=u&password=pw&x=1") == \
        "postgresql://h/db?user=u&password=***&x=1"
    assert shell_command(["run", "a b.jsonl", "--db=postgresql://u:pw@h/db"]) == \
        "run 'a b.jsonl' '--db=postgresql://u:***@h/db'"
    with pytest.raises(ConfigError) as refused:
        StoreSettings.from_dsn("mysql://u:pw-123@h/db")
    assert "pw-123" not in str(refused.value) and "mysql://u:***@h/db" in str(refused.value)
