"""The CLI starts without loading what only some commands use (the SDK, the store, the
web stack): `laneway --help`, `status` and `runs` answer in a fraction of a second."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("anthropic", "sqlalchemy", "fastapi", "uvicorn", "llama_cpp")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = ("import sys, laneway.cli, laneway.local, laneway; "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"


def test_public_names_still_load_on_first_use() -> None:
    probe = ("import sys, laneway; f = laneway.run; c = laneway.LocalConfig; "
             "print('anthropic' in sys.modules, f.__module__, c.__module__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.split() == ["True", "laneway.runs.library", "laneway.local.config"]


def test_estimate_answers_without_the_sdk_or_the_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "hello"}\n')
    probe = ("import sys; sys.argv = ['laneway', 'estimate', sys.argv[1]]\n"
             "from laneway.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
             f"print('LOADED', ' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe, str(src)], capture_output=True,
                         text=True, check=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    loaded = out.stdout.rsplit("LOADED", 1)[1].strip()
    assert loaded == "", f"laneway estimate imported: {loaded}"
