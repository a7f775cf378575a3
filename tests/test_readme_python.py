"""The README's Python snippet runs as written (against the local API, echo engine), and
its streamed answer prints on one line (``on_text=print`` printed one token a line)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from laneway.local import RunningLocal

ROOT = Path(__file__).resolve().parent.parent


def snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### From Python", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "no Python snippet under 'From Python'"
    return found.group(1)


def test_the_python_snippet_streams_its_answer_on_one_line(
        tmp_path: Path, local_api: RunningLocal, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "articles.jsonl", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", local_api.base_url)
    exec(compile(snippet(), "README.md", "exec"), {"__name__": "readme"})
    lines = capsys.readouterr().out.splitlines()
    articles = len((tmp_path / "examples" / "articles.jsonl").read_text().splitlines())
    assert lines[0].split()[0] == str(articles)  # summary.succeeded, then the cost
    # The echo engine answers with the question: streamed token by token, on one line.
    assert lines[1:] == ["Explain closures"], lines
