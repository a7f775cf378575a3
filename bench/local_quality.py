"""Benchmark: what the embedded ``smollm2`` engine answers, through the official SDK.

1. Sampling defaults: "What is the capital of France? One sentence." asked of ``laneway
   ask --provider local`` in ``--fresh`` new processes (default 10), each with a new
   server and the engine's defaults (no temperature sent): how many say Paris.
2. Structured outputs: 50 requests, 10 prompts on each of 5 JSON schemas (nested
   objects, arrays, enums, required fields; four as ``output_config.format``, one as a
   forced tool call), 8 at a time against one in-process server: how many are valid
   JSON against their schema (``jsonschema``), and how they stopped.
3. Articles: ``laneway run examples/articles.jsonl`` on the embedded default, as the
   README's first command runs it: each summary must be one or two sentences naming the
   article's subject (the keywords below), and none may run to ``max_tokens``.
4. Grammar cost: one greedy stream, decode ms per token with and without a schema
   (the engine called directly: same prompt, same number of tokens), and the time the
   grammar itself takes per token (its own clock: on a loaded machine the wall-clock
   difference drowns in noise).
5. Rubric: the articles, the README's examples and a dozen short instructions, scored
   on a fixed rubric (loops, length, on topic, ends cleanly) under each decoding
   variant (repetition penalty, loop stop, a brief system prompt), with tokens/s: see
   ``bench/local_rubric.py``.

    .venv/bin/python bench/local_quality.py [--fresh 10] [--only rubric]

Prints tables and writes ``bench/results/local_quality.json`` (``--only`` keeps the
other parts' last figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import anthropic
import jsonschema

from _common import RESULTS, print_table, save
from laneway.local import LocalConfig, start_local
from laneway.local.engines.base import Prompt, SamplingParams
from laneway.local.engines.smollm2 import SmolLM2Engine
from local_rubric import rubric

QUESTION = "What is the capital of France? One sentence."
PEOPLE = ["Marie, 34, an engineer in Lyon who speaks French and English",
          "Tom, 52, a baker in Leeds", "Aiko, 27, a pilot in Osaka who speaks Japanese",
          "Carlos, 41, a teacher in Seville", "Greta, 65, a retired nurse in Hamburg",
          "Omar, 30, a chef in Cairo who speaks Arabic and French",
          "Lena, 19, a student in Vienna", "Raj, 45, a doctor in Mumbai",
          "Sofia, 38, an architect in Milan", "Ben, 23, a musician in Austin"]
SCHEMAS: dict[str, dict[str, Any]] = {
    "person (nested object, array of enums)": {
        "type": "object",
        "properties": {
            "name": {"type": "string"}, "age": {"type": "integer"},
            "languages": {"type": "array",
                          "items": {"enum": ["English", "French", "German", "Japanese",
                                             "Arabic", "Spanish", "Italian", "Hindi"]}},
            "address": {"type": "object",
                        "properties": {"city": {"type": "string"},
                                       "country": {"type": "string"}},
                        "required": ["city", "country"]}},
        "required": ["name", "age", "address"]},
    "sentiment (enum, number)": {
        "type": "object",
        "properties": {"sentiment": {"enum": ["positive", "neutral", "negative"]},
                       "confidence": {"type": "number"}},
        "required": ["sentiment", "confidence"]},
    "tags (array of strings)": {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"},
                                "minItems": 1, "maxItems": 5}},
        "required": ["tags"]},
    "event (array of objects, booleans)": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "attendees": {"type": "array",
                          "items": {"type": "object",
                                    "properties": {"name": {"type": "string"},
                                                   "confirmed": {"type": "boolean"}},
                                    "required": ["name", "confirmed"]}}},
        "required": ["title", "attendees"]},
}
TOOL = {"name": "record_person", "description": "Record a person's name, age and job.",
        "input_schema": {"type": "object",
                         "properties": {"name": {"type": "string"},
                                        "age": {"type": "integer"},
                                        "job": {"type": "string"}},
                         "required": ["name", "age", "job"]}}


def prompt_for(schema_name: str, i: int) -> str:
    if schema_name.startswith("person") or schema_name == "tool":
        return f"Describe {PEOPLE[i]}."
    if schema_name.startswith("sentiment"):
        return f"How does this review feel? 'Review {i}: the {PEOPLE[i].split(',')[0]} " \
               "bakery was lovely, the bread was fresh.'"
    if schema_name.startswith("tags"):
        return f"Tags for an article about {PEOPLE[i].split(', ')[-1]}."
    return f"A dinner with {PEOPLE[i].split(',')[0]} and two friends, one not sure yet."


def fresh_asks(n: int) -> dict[str, Any]:
    answers = []
    for _ in range(n):
        done = subprocess.run(
            [sys.executable, "-m", "laneway", "ask", "--provider", "local", QUESTION],
            capture_output=True, text=True, timeout=120)
        answers.append(done.stdout.strip())
    paris = sum("Paris" in a for a in answers)
    print_table("laneway ask, fresh processes", ["asked", "said Paris", "first answer"],
                [[n, paris, answers[0][:60] if answers else ""]])
    return {"asked": n, "paris": paris, "answers": answers}


async def structured() -> dict[str, Any]:
    running = start_local(LocalConfig(engine="smollm2"))
    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for name, schema in SCHEMAS.items():
        for i in range(10):
            cases.append((name, schema, {"output_config": {"format": {
                "type": "json_schema", "schema": schema}}, "prompt": prompt_for(name, i)}))
    for i in range(10):
        cases.append(("tool", TOOL["input_schema"], {
            "tools": [TOOL], "tool_choice": {"type": "tool", "name": TOOL["name"]},
            "prompt": prompt_for("tool", i)}))
    gate = asyncio.Semaphore(8)
    try:
        async with anthropic.AsyncAnthropic(base_url=running.base_url, api_key="x",
                                            max_retries=0, timeout=300) as client:
            async def one(schema: dict[str, Any], extra: dict[str, Any]) -> tuple[bool, str]:
                extra = dict(extra)
                text = extra.pop("prompt")
                async with gate:
                    message = await client.messages.create(
                        model="local", max_tokens=400, extra_body=extra,
                        messages=[{"role": "user", "content": text}])
                block: Any = message.content[0]
                value = block.input if block.type == "tool_use" else json.loads(block.text)
                try:
                    jsonschema.validate(value, schema)
                    return True, str(message.stop_reason)
                except jsonschema.ValidationError:
                    return False, str(message.stop_reason)

            started = time.monotonic()
            results = await asyncio.gather(*(one(s, e) for _, s, e in cases),
                                           return_exceptions=True)
            elapsed = time.monotonic() - started
    finally:
        running.stop()
    rows, by_schema = [], {}
    for name in [*SCHEMAS, "tool"]:
        mine = [r for (n, _, _), r in zip(cases, results, strict=True) if n == name]
        valid = sum(1 for r in mine if isinstance(r, tuple) and r[0])
        stops = sorted({r[1] if isinstance(r, tuple) else type(r).__name__ for r in mine})
        by_schema[name] = {"requests": len(mine), "valid": valid, "stop_reasons": stops}
        rows.append([name, len(mine), valid, ", ".join(stops)])
    total_valid = sum(v["valid"] for v in by_schema.values())
    rows.append(["all", len(cases), total_valid, f"{elapsed:.1f} s"])
    print_table("structured outputs (smollm2)", ["schema", "requests", "valid", "stop"], rows)
    return {"requests": len(cases), "valid": total_valid, "seconds": elapsed,
            "by_schema": by_schema}


async def grammar_cost() -> dict[str, Any]:
    engine = SmolLM2Engine(slots=2, slot_ctx=1024)
    prompt = Prompt(system="Reply with JSON.", turns=(("user", f"Describe {PEOPLE[0]}."),))
    schema = json.dumps(SCHEMAS["event (array of objects, booleans)"])

    async def per_token(json_schema: str | None) -> tuple[float, int]:
        params = SamplingParams(max_tokens=120, temperature=0.0, json_schema=json_schema)
        stamps = [time.perf_counter() async for _ in engine.generate(prompt, params)]
        return (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1) * 1000, len(stamps)

    try:
        await per_token(None)  # warm up
        plain = [await per_token(None) for _ in range(3)]
        before = dict(engine.decoder.grammars.stats)
        constrained = [await per_token(schema) for _ in range(3)]
        after = engine.decoder.grammars.stats
    finally:
        await engine.aclose()
    plain_ms = min(ms for ms, _ in plain)
    grammar_ms = min(ms for ms, _ in constrained)
    tokens = after["tokens"] - before["tokens"]
    own_ms = (after["us"] - before["us"]) / 1000 / max(1, tokens)
    masks = after["masks"] - before["masks"]
    print_table("grammar cost per token (one greedy stream)",
                ["decoding", "ms/token", "tokens", "grammar ms/token", "full masks"],
                [["plain", f"{plain_ms:.2f}", plain[0][1], "", ""],
                 ["JSON schema", f"{grammar_ms:.2f}", constrained[0][1], f"{own_ms:.2f}",
                  f"{masks} of {tokens}"]])
    return {"plain_ms_per_token": plain_ms, "schema_ms_per_token": grammar_ms,
            "grammar_own_ms_per_token": own_ms, "full_masks": masks,
            "constrained_tokens": tokens}


#: Words a faithful summary of each article names (any one of them, case-insensitive).
SUBJECTS: dict[str, tuple[str, ...]] = {
    "tides": ("tide",), "photosynthesis": ("photosynth",), "printing-press": ("print",),
    "vaccines": ("vaccin", "immun"), "plate-tectonics": ("plate", "tecton"),
    "honeybees": ("bee",), "compound-interest": ("interest",),
    "black-death": ("black death", "plague"), "internet-packets": ("packet",),
    "coral-reefs": ("coral", "reef"), "steam-engine": ("steam",), "sleep": ("sleep",),
    "roman-roads": ("road",), "black-holes": ("black hole",),
    "fermentation": ("ferment",), "antibiotic-resistance": ("antibiotic",),
    "water-cycle": ("water",), "great-wall": ("wall",), "batteries": ("batter",),
    "migration-birds": ("migrat", "bird", "tern"),
}


def sentences(text: str) -> int:
    """Sentences in ``text``: runs ended by . ! or ? (a trailing fragment counts)."""
    import re

    parts = [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p.strip()]
    return len(parts)


def articles() -> dict[str, Any]:
    import os
    import tempfile

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "laneway", "run", str(root / "examples/articles.jsonl"),
             "-o", str(out), "--db", str(Path(tmp) / "l.db"), "-q"],
            env=env, capture_output=True, text=True, timeout=1200)
        wall = time.monotonic() - started
        rows = [json.loads(line) for line in out.read_text().splitlines()] \
            if out.exists() else []
    checked = []
    for row in rows:
        message = row["result"].get("message") or {}
        text = "".join(b.get("text", "") for b in message.get("content", []))
        words = SUBJECTS.get(row["custom_id"], ())
        checked.append({
            "id": row["custom_id"], "text": text, "sentences": sentences(text),
            "names_subject": any(w in text.lower() for w in words),
            "stop_reason": message.get("stop_reason")})
    good = [c for c in checked if c["names_subject"] and 1 <= c["sentences"] <= 2
            and c["stop_reason"] != "max_tokens"]
    print_table("articles on the embedded default", ["id", "sentences", "subject", "stop"],
                [[c["id"], c["sentences"], c["names_subject"], c["stop_reason"]]
                 for c in checked])
    print(f"{len(good)} of {len(checked)} faithful; "
          f"{sum(c['stop_reason'] == 'max_tokens' for c in checked)} ran to max_tokens; "
          f"exit {proc.returncode}, {wall:.0f} s")
    return {"exit": proc.returncode, "wall_s": round(wall, 1), "jobs": len(checked),
            "faithful": len(good), "max_tokens": sum(c["stop_reason"] == "max_tokens"
                                                     for c in checked),
            "answers": checked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", type=int, default=10, help="fresh `laneway ask` processes")
    parser.add_argument("--only", choices=("ask", "structured", "articles", "grammar",
                                           "rubric"), help="run one part")
    args = parser.parse_args()
    parts = {"ask": lambda: fresh_asks(args.fresh),
             "structured": lambda: asyncio.run(structured()),
             "articles": articles, "grammar": lambda: asyncio.run(grammar_cost()),
             "rubric": lambda: asyncio.run(rubric(SUBJECTS))}
    kept = RESULTS / "local_quality.json"
    results = json.loads(kept.read_text()) if args.only and kept.exists() else {}
    results.pop("machine", None)
    results.update({name: run() for name, run in parts.items()
                    if args.only in (None, name)})
    save("local_quality", results)


if __name__ == "__main__":
    main()
