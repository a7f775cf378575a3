"""A bad input or ledger file is one line naming the file (and the line), exit 2:
JSON nested thousands deep, bytes that are not UTF-8, a file that cannot be read, a
`--db` that is not SQLite. A UTF-8 byte-order mark is not an error.

`laneway run` and `laneway estimate` run against the local API, in this process
(``inprocess``), but for the unreadable file (a subprocess without root's file access)."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import inprocess
from laneway.local import RunningLocal

LANEWAY = [sys.executable, "-m", "laneway"]


def drop_root_file_access() -> None:
    """In the child, before exec: root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    obeys file modes as any user does (dropped from the bounding set, they are not
    regained by exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def laneway(args: list[str], cwd: Path, base_url: str = "http://127.0.0.1:9", *,
            obey_file_modes: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="80")
    if not obey_file_modes:  # in this process (``inprocess``): no start-up to pay
        return inprocess.laneway(args, env=env, cwd=cwd)
    as_root = os.geteuid() == 0
    return subprocess.run([*LANEWAY, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          preexec_fn=drop_root_file_access if as_root else None)


def assert_one_error_line(res: subprocess.CompletedProcess[str], *expected: str,
                          code: int = 2) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, res.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def job(i: int) -> bytes:
    return json.dumps({"id": f"doc-{i}", "prompt": f"text {i}"}).encode() + b"\n"


def results(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [(r["custom_id"], r["result"]["type"]) for r in rows]


DEEP = b'{"id": "deep", "prompt": "x", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}\n"


def test_json_nested_5000_deep_is_a_bad_line(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(job(1) + DEEP + job(3))
    res = laneway(["run", "in.jsonl", "-o", "out.jsonl"], tmp_path)
    assert_one_error_line(res, "in.jsonl:2: invalid JSON (nested more than 100 deep)")
    res = laneway(["estimate", "in.jsonl"], tmp_path)
    assert_one_error_line(res, "in.jsonl:2: invalid JSON (nested")


def test_json_nested_5000_deep_is_skipped_with_skip_invalid(
        tmp_path: Path, local_api: RunningLocal) -> None:
    (tmp_path / "in.jsonl").write_bytes(job(1) + b"[" * 5000 + b"]" * 5000 + b"\n" + job(3))
    res = laneway(["run", "in.jsonl", "-o", "out.jsonl", "--skip-invalid"], tmp_path,
                  local_api.base_url)
    assert res.returncode == 0, res.stderr
    assert results(tmp_path / "out.jsonl") == [
        ("doc-1", "succeeded"), ("invalid-line-2", "errored"), ("doc-3", "succeeded")]


def test_nesting_a_request_really_uses_is_accepted(tmp_path: Path) -> None:
    nested: object = "leaf"
    for _ in range(40):  # 81 deep, with 160 more brackets inside strings
        nested = {"k": [nested]}
    line = json.dumps({"id": "ok", "prompt": "x", "metadata": nested,
                       "stop_sequences": ["[[[[", "{{{{"] * 20}).encode() + b"\n"
    (tmp_path / "in.jsonl").write_bytes(line)
    res = laneway(["estimate", "in.jsonl"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "1 jobs" in res.stdout


def test_a_db_that_is_not_sqlite(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a database\n" * 100)
    before = notes.read_bytes()
    (tmp_path / "in.jsonl").write_bytes(job(1))
    for args in (["runs"], ["status"], ["run", "in.jsonl"]):
        res = laneway([*args, "--db", "notes.txt"], tmp_path)
        assert_one_error_line(res, "cannot open the ledger notes.txt: file is not a database")
    assert notes.read_bytes() == before


def test_a_directory_as_input(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    assert_one_error_line(laneway(["run", "inputs"], tmp_path), "inputs: ")
    assert_one_error_line(laneway(["estimate", "inputs"], tmp_path), "inputs: ")


def test_an_unreadable_input(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(job(1))
    (tmp_path / "in.jsonl").chmod(0)
    for args in (["run", "in.jsonl"], ["estimate", "in.jsonl"]):
        res = laneway(args, tmp_path, obey_file_modes=True)
        line = assert_one_error_line(res, "in.jsonl")
        # Typer checks a path argument first; laneway itself says "cannot read".
        assert "is not readable" in line or "cannot read: Permission denied" in line


def test_an_input_that_fails_while_read(tmp_path: Path) -> None:
    # Opens, then every read fails (EIO): the process's own memory at address 0.
    for args in (["run", "/proc/self/mem"], ["estimate", "/proc/self/mem"]):
        res = laneway(args, tmp_path)
        assert_one_error_line(res, "/proc/self/mem: cannot read: Input/output error")


def test_invalid_utf8_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(job(1) + job(2) + b'{"id": "c", "prompt": "caf\xe9"}\n'
                                        + job(4))
    res = laneway(["run", "in.jsonl", "-o", "out.jsonl"], tmp_path)
    assert_one_error_line(res, "in.jsonl:3: not valid UTF-8 (byte 0xe9")
    assert_one_error_line(laneway(["estimate", "in.jsonl"], tmp_path), "in.jsonl:3: ")


def test_invalid_utf8_deep_in_a_big_file_names_its_line(tmp_path: Path) -> None:
    lines = [job(i) for i in range(1, 60_001)]
    lines[49_999] = b'{"id": "bad", "prompt": "\xff\xfe"}\n'
    (tmp_path / "in.jsonl").write_bytes(b"".join(lines))
    assert_one_error_line(laneway(["estimate", "in.jsonl"], tmp_path), "in.jsonl:50000: ")
    res = laneway(["run", "in.jsonl", "-o", "out.jsonl"], tmp_path)
    assert_one_error_line(res, "in.jsonl:50000: not valid UTF-8")


def test_invalid_utf8_is_skipped_with_skip_invalid(tmp_path: Path,
                                                   local_api: RunningLocal) -> None:
    (tmp_path / "in.jsonl").write_bytes(job(1) + b'{"id": "b", "prompt": "\xc3("}\n' + job(3))
    res = laneway(["run", "in.jsonl", "-o", "out.jsonl", "--skip-invalid"], tmp_path,
                  local_api.base_url)
    assert res.returncode == 0, res.stderr
    assert results(tmp_path / "out.jsonl") == [
        ("doc-1", "succeeded"), ("invalid-line-2", "errored"), ("doc-3", "succeeded")]


def test_a_utf8_bom_is_accepted(tmp_path: Path, local_api: RunningLocal) -> None:
    (tmp_path / "in.jsonl").write_bytes(b"\xef\xbb\xbf" + job(1) + job(2))
    res = laneway(["run", "in.jsonl", "-o", "out.jsonl"], tmp_path, local_api.base_url)
    assert res.returncode == 0, res.stderr
    assert results(tmp_path / "out.jsonl") == [("doc-1", "succeeded"), ("doc-2", "succeeded")]
