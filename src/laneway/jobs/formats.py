"""Jobs in, results out: the JSONL formats laneway reads and writes.

An input line is either the Message Batches request form
``{"custom_id": "...", "params": {...}}`` or the short form ``{"id": "...", "prompt": "..."}``
(optional ``system``, ``model``, ``max_tokens`` beside it). :class:`JobDefaults` fills what a
line leaves out. Lines are read one at a time, never the whole file.

An output line is the Message Batches results form:
``{"custom_id": "...", "result": {"type": "succeeded", "message": {...}}}``, or ``errored``
(with the API's error body), ``canceled`` or ``expired``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from laneway.errors import InputError
from laneway.jobs.output import replacing
from laneway.wire.batches import result_line

#: Keys a short-form line may carry.
_SHORT_KEYS = frozenset({"id", "prompt", "system", "model", "max_tokens", "temperature",
                         "stop_sequences", "metadata"})


#: The model a request that names none goes to (``--model`` changes it).
DEFAULT_MODEL = "claude-haiku-4-5"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDefaults:
    """What fills the fields an input line leaves out (``--model``, ``--max-tokens``...)."""

    model: str = DEFAULT_MODEL
    max_tokens: int = 1024
    system: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One request to make: its id, the Messages API params, and where it came from."""

    custom_id: str
    params: dict[str, Any]
    line: int = 0


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not become a job (kept with ``--skip-invalid``)."""

    custom_id: str
    error: InputError
    line: int


#: The deepest nesting of arrays and objects a line may have. Python's JSON reader
#: recurses and fails near 1,000 (less in a deep call stack), as would writing it back.
MAX_NESTING = 100
_BRACKET_OR_STRING = re.compile(r'[\[\]{}]|"(?:[^"\\]|\\.)*"')


def _nested_too_deep(text: str) -> bool:
    """Whether ``text`` nests arrays and objects more than :data:`MAX_NESTING` deep.

    Brackets and strings are scanned as tokens (a bracket in a string does not count).
    """
    depth = 0
    for match in _BRACKET_OR_STRING.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return True
        elif token in "]}":
            depth -= 1
    return False


def check_params(params: dict[str, Any], err: Any) -> None:
    """Raise ``err(reason, field)`` for the first field laneway cannot send as given."""
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise err("must be a non-empty string", "params.model")
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise err("must be a whole number >= 1", "params.max_tokens")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise err("must be a non-empty list of messages", "params.messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise err("must be an object with role and content", f"params.messages.{i}")
        if msg.get("role") not in ("user", "assistant", "system"):
            raise err("must be 'user', 'assistant' or 'system'", f"params.messages.{i}.role")
        if not isinstance(msg.get("content"), str | list):
            raise err("must be a string or a list of content blocks",
                      f"params.messages.{i}.content")
    if params.get("stream"):
        raise err("streaming is chosen by laneway, not per job: remove it", "params.stream")


def parse_line(
    text: str, *, line: int, path: str | Path | None, defaults: JobDefaults
) -> Job:
    """Turn one input line into a :class:`Job`, or raise :class:`InputError`."""

    def err(reason: str, field: str | None = None) -> InputError:
        return InputError(reason, path=path, line=line, field=field)

    if text.count("[") + text.count("{") > MAX_NESTING and _nested_too_deep(text):
        raise err(f"invalid JSON (nested more than {MAX_NESTING} deep)")
    # Without its line break: the reader would skip it as blank space and place an error
    # at the end of the line (a missing closing brace) on "line 2, column 1".
    text = text.rstrip("\r\n")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}"
        if exc.pos >= len(text.rstrip()):
            where = f"the end of the line, {where}"
        raise err(f"invalid JSON ({exc.msg} at {where})") from None
    if not isinstance(obj, dict):
        raise err(f"expected a JSON object, got {type(obj).__name__}")

    if "params" in obj or "custom_id" in obj:
        custom_id, params = _long_form(obj, defaults, err)
    elif "prompt" in obj or "id" in obj:
        custom_id, params = _short_form(obj, defaults, err)
    else:
        raise err('expected {"custom_id", "params"} or {"id", "prompt"}')
    check_params(params, err)
    return Job(custom_id=custom_id, params=params, line=line)


def _long_form(obj: dict[str, Any], defaults: JobDefaults, err: Any
               ) -> tuple[str, dict[str, Any]]:
    """A ``{"custom_id", "params"}`` line (the Batches API's own request form)."""
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise err("must be a non-empty string", "custom_id")
    params = obj.get("params")
    if not isinstance(params, dict):
        raise err("must be an object of Messages API parameters", "params")
    params = dict(params)
    params.setdefault("model", defaults.model)
    params.setdefault("max_tokens", defaults.max_tokens)
    if defaults.system is not None:
        params.setdefault("system", defaults.system)
    return custom_id, params


def _short_form(obj: dict[str, Any], defaults: JobDefaults, err: Any
                ) -> tuple[str, dict[str, Any]]:
    """A ``{"id", "prompt"}`` line, with the defaults filled in."""
    custom_id = obj.get("id")
    if isinstance(custom_id, int) and not isinstance(custom_id, bool):
        custom_id = str(custom_id)
    if not isinstance(custom_id, str) or not custom_id:
        raise err("must be a non-empty string", "id")
    prompt = obj.get("prompt")
    if prompt is None:
        raise err("missing: a short-form line needs a prompt", "prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise err("must be a non-empty string", "prompt")
    unknown = sorted(set(obj) - _SHORT_KEYS)
    if unknown:
        raise err(f"unknown field (the short form takes {', '.join(sorted(_SHORT_KEYS))})",
                  unknown[0])
    params = {
        "model": obj.get("model", defaults.model),
        "max_tokens": obj.get("max_tokens", defaults.max_tokens),
        "messages": [{"role": "user", "content": prompt}],
    }
    system = obj.get("system", defaults.system)
    if system is not None:
        if not isinstance(system, str):
            raise err("must be a string", "system")
        params["system"] = system
    for key in ("temperature", "stop_sequences", "metadata"):
        if key in obj:
            params[key] = obj[key]
    return custom_id, params


def read_jobs(
    path: str | Path, *, defaults: JobDefaults, skip_invalid: bool = False,
    start_line: int = 0,
) -> Iterator[Job | BadLine]:
    """Yield the jobs of a JSONL file in order, one line at a time.

    Blank lines are skipped. A bad line raises :class:`InputError` (file, line, field),
    or with ``skip_invalid`` is yielded as a :class:`BadLine`. Duplicate ids are the
    store's to reject (it sees every id; this reader keeps no memory of them).
    ``start_line`` skips lines already ingested by an interrupted run.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    with handle:
        # Bytes, decoded line by line: a bad byte is blamed on its own line (a text-mode
        # reader decodes ahead in blocks and fails on a line before it is yielded).
        try:
            for lineno, raw in enumerate(handle, start=1):
                if lineno <= start_line:
                    continue
                try:
                    try:  # "-sig": editors on Windows start a file with a BOM
                        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                    except UnicodeDecodeError as exc:
                        raise _not_utf8(exc, path=path, line=lineno) from None
                    if not text.strip():
                        continue
                    item: Job | BadLine = parse_line(text, line=lineno, path=path,
                                                     defaults=defaults)
                except InputError as exc:
                    if not skip_invalid:
                        raise
                    item = BadLine(custom_id=f"invalid-line-{lineno}", error=exc, line=lineno)
                yield item
        except OSError as exc:  # an I/O error while reading
            raise InputError(f"cannot read: {exc.strerror}", path=path) from None


def _not_utf8(exc: UnicodeDecodeError, *, path: Path, line: int) -> InputError:
    return InputError(f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte "
                      f"{exc.start + 1} of the line)", path=path, line=line)


def result_text(result: dict[str, Any]) -> str:
    """The answer's text (for ``--format text``), or a short description of the failure."""
    if result.get("type") == "succeeded":
        blocks = result.get("message", {}).get("content", [])
        return "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    if result.get("type") == "errored":
        inner = result.get("error", {}).get("error", {})
        return f"[errored: {inner.get('type')}: {inner.get('message')}]"
    return f"[{result.get('type')}]"


def write_results(path: str | Path, rows: Iterable[tuple[str, dict[str, Any]]], *,
                  if_any: bool = False) -> int:
    """Write ``(custom_id, result)`` rows as results JSONL, atomically; returns the count.

    The file is written beside its final name and renamed into place, so a crash never
    leaves half a results file (see :func:`laneway.jobs.output.replacing`). With ``if_any``,
    no rows leave ``path`` untouched (0 is returned).
    """
    path = Path(path)
    it = iter(rows)
    first = next(it, None)
    if first is None and if_any:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as out:
        return dump_results(out, itertools.chain([] if first is None else [first], it))


def dump_results(out: TextIO, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
    count = 0
    for custom_id, result in rows:
        out.write(result_line(custom_id, result))
        out.write("\n")
        count += 1
    return count
