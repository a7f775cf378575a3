"""Reading input lines into jobs: both forms, defaults, and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laneway.errors import InputError
from laneway.jobs.formats import BadLine, Job, JobDefaults, read_jobs, write_results
from laneway.runs.ingest import ingest
from laneway.store import open_store
from laneway.store.statuses import JobStatus

DEFAULTS = JobDefaults(model="claude-haiku-4-5", max_tokens=64, system="Be brief.")


def write(tmp_path: Path, lines: list[str], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_short_form_gets_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"id": "a", "prompt": "hello"}',
                            '{"id": 7, "prompt": "x", "max_tokens": 5, "model": "claude-sonnet-5"}'])
    jobs = list(read_jobs(path, defaults=DEFAULTS))
    assert isinstance(jobs[0], Job)
    assert jobs[0].custom_id == "a"
    assert jobs[0].params == {"model": "claude-haiku-4-5", "max_tokens": 64,
                              "system": "Be brief.",
                              "messages": [{"role": "user", "content": "hello"}]}
    assert jobs[1].custom_id == "7"
    assert jobs[1].params["max_tokens"] == 5 and jobs[1].params["model"] == "claude-sonnet-5"


def test_batch_form_keeps_params_and_fills_gaps(tmp_path: Path) -> None:
    line = {"custom_id": "r-1", "params": {"messages": [{"role": "user", "content": "hi"}],
                                           "temperature": 0}}
    jobs = list(read_jobs(write(tmp_path, [json.dumps(line)]), defaults=DEFAULTS))
    assert isinstance(jobs[0], Job)
    assert jobs[0].params["temperature"] == 0
    assert jobs[0].params["model"] == "claude-haiku-4-5"
    assert jobs[0].params["system"] == "Be brief."


def test_system_role_messages_pass_through(tmp_path: Path) -> None:
    """SDK 2.x's ``SystemMessageParam``: a system-role message mid-conversation."""
    messages = [{"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
                {"role": "user", "content": "again"}]
    line = {"custom_id": "s-1", "params": {"messages": messages}}
    jobs = list(read_jobs(write(tmp_path, [json.dumps(line)]), defaults=DEFAULTS))
    assert isinstance(jobs[0], Job)
    assert jobs[0].params["messages"] == messages


@pytest.mark.parametrize(("line", "field", "reason"), [
    ('{"id": "a", "prompt": "x"', None, "invalid JSON"),
    ('[1, 2]', None, "expected a JSON object"),
    ('{"id": "a"}', "prompt", "missing"),
    ('{"id": "a", "prompt": 5}', "prompt", "non-empty string"),
    ('{"id": "", "prompt": "x"}', "id", "non-empty string"),
    ('{"id": "a", "prompt": "x", "max_tokens": "ten"}', "params.max_tokens", "whole number"),
    ('{"id": "a", "prompt": "x", "colour": "red"}', "colour", "unknown field"),
    ('{"custom_id": "a", "params": {"messages": []}}', "params.messages", "non-empty list"),
    ('{"custom_id": "a", "params": {"messages": [{"role": "bot", "content": "x"}]}}',
     "params.messages.0.role", "'user', 'assistant' or 'system'"),
    ('{"custom_id": "a", "params": "hi"}', "params", "object"),
    ('{"custom_id": "a", "params": {"messages": [{"role": "user", "content": "x"}], '
     '"stream": true}}', "params.stream", "streaming"),
    ('{"hello": 1}', None, "expected"),
])
def test_bad_line_names_file_line_and_field(tmp_path: Path, line: str, field: str | None,
                                            reason: str) -> None:
    path = write(tmp_path, ['{"id": "ok", "prompt": "fine"}', "", line])
    with pytest.raises(InputError) as info:
        list(read_jobs(path, defaults=DEFAULTS))
    err = info.value
    assert err.line == 3
    assert err.field == field
    assert reason in str(err)
    assert str(err).startswith(f"{path}:3: ")
    assert "\n" not in str(err)


def test_skip_invalid_yields_bad_lines(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"id": "a", "prompt": "x"}', "not json", '{"id": "b", "prompt": "y"}'])
    items = list(read_jobs(path, defaults=DEFAULTS, skip_invalid=True))
    assert [type(i).__name__ for i in items] == ["Job", "BadLine", "Job"]
    bad = items[1]
    assert isinstance(bad, BadLine) and bad.line == 2


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_jobs(tmp_path / "nope.jsonl", defaults=DEFAULTS))
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "caf\xe9"}\n')
    with pytest.raises(InputError, match="UTF-8") as info:
        list(read_jobs(path, defaults=DEFAULTS))
    assert info.value.line is not None


def _run(store_path: Path, path: Path, *, skip_invalid: bool = False) -> int:
    from laneway.runs.config import RunConfig
    from laneway.runs.prepare import prepare

    store = open_store(str(store_path))
    try:
        run = prepare(store, path, RunConfig(defaults=DEFAULTS))
        return ingest(store, run, path, defaults=DEFAULTS, skip_invalid=skip_invalid)
    finally:
        store.close()


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"id": "a", "prompt": "x"}', '{"id": "b", "prompt": "y"}',
                            '{"id": "a", "prompt": "z"}'])
    with pytest.raises(InputError) as info:
        _run(tmp_path / "l.db", path)
    assert info.value.line == 3 and info.value.field == "custom_id"
    assert "duplicate id 'a' (first at line 1)" in str(info.value)


def test_duplicate_across_ingest_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import laneway.runs.ingest

    monkeypatch.setattr(laneway.runs.ingest, "CHUNK", 3)
    lines = [f'{{"id": "j{i}", "prompt": "p"}}' for i in range(7)] + ['{"id": "j1", "prompt": "q"}']
    with pytest.raises(InputError) as info:
        _run(tmp_path / "l.db", write(tmp_path, lines))
    assert info.value.line == 8
    assert "first at line 2" in str(info.value)


def test_duplicate_with_skip_invalid_becomes_errored(tmp_path: Path) -> None:
    path = write(tmp_path, ['{"id": "a", "prompt": "x"}', '{"id": "a", "prompt": "z"}'])
    assert _run(tmp_path / "l.db", path, skip_invalid=True) == 2
    store = open_store(str(tmp_path / "l.db"))
    try:
        (run,) = store.list_runs()
        counts = store.counts(run.id)
        assert (counts.total, counts[JobStatus.PENDING], counts[JobStatus.ERRORED]) == (2, 1, 1)
        # The first "a" is the job; the second line is recorded as an errored bad line,
        # named by its line, with the duplicate as its error.
        ((custom_id, result),) = list(store.iter_results(run.id))
        assert custom_id == "invalid-line-2"
        assert result["type"] == "errored"
        assert "duplicate id 'a' (first at line 1)" in json.dumps(result)
    finally:
        store.close()


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no jobs"):
        _run(tmp_path / "l.db", write(tmp_path, ["", "   "]))


def test_write_results_is_atomic_and_ordered(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.jsonl"
    rows = [("b", {"type": "expired"}), ("a", {"type": "canceled"})]
    assert write_results(out, rows) == 2
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == ["b", "a"]
    assert list(tmp_path.joinpath("sub").iterdir()) == [out]  # no temp file left behind
