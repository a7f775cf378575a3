"""The embedded model's text answers against a fixed rubric, under each decoding variant.

The prompts: the 20 example articles (``examples/articles.jsonl``, max_tokens 1024 as
``laneway run`` sends them), the README's examples and a dozen short instructions
(max_tokens 512 as ``laneway ask`` sends them), each with the words an on-topic answer
names. Every answer is scored on four checks, each 0 or 1:

- **no loop**: under 20% of its word 4-grams occurred earlier in it;
- **length**: 3 words or more, at most 60 (a summary) or 200 (an instruction), and not
  cut at max_tokens;
- **on topic**: it names one of the prompt's words;
- **ends cleanly**: not cut at max_tokens, and its last character ends a sentence (or a
  code block).

Variants, each over every prompt (the engine's defaults otherwise: temperature 0.2,
top_p 0.9, seed 0): ``plain`` (no penalty, no loop stop: the engine before issue 25),
``penalty`` (llama.cpp's repeat_penalty 1.1 over the last 64 tokens), ``loop stop`` (the
answer ends when its last 6 tokens come a 4th time), both, both with repeat_penalty
1.2, and both with a short system prompt asking for brief plain answers. Tokens/s: the
tokens every prompt of a variant generated, over its wall time (all prompts submitted
at once: the engine decodes 16 at a time), on a machine other work shares.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from _common import print_table
from laneway.local.engines.base import Prompt, SamplingParams
from laneway.local.engines.smollm2 import SmolLM2Engine

ROOT = Path(__file__).resolve().parent.parent
BRIEF = "You are a helpful assistant. Answer briefly, in plain words."

#: (variant, repeat_penalty, loop_ngram, system prompt)
VARIANTS: list[tuple[str, float, int, str]] = [
    ("plain", 1.0, 0, ""),
    ("penalty 1.1", 1.1, 0, ""),
    ("loop stop", 1.0, 6, ""),
    ("penalty 1.1 + loop stop", 1.1, 6, ""),
    ("penalty 1.2 + loop stop", 1.2, 6, ""),
    ("penalty 1.1 + loop stop + brief system", 1.1, 6, BRIEF),
]

#: The README's examples (the old first one, and candidates for the new first ones).
README: list[tuple[str, str, tuple[str, ...]]] = [
    ("readme-closures-js", "Explain closures in JavaScript", ("closure", "function")),
    ("readme-closures", "Explain closures", ("closure", "function")),
    ("readme-tides", "What causes the tides? Answer in two sentences.", ("moon", "gravit")),
    ("readme-capital", "What is the capital of France? One sentence.", ("paris",)),
    ("readme-haiku", "Write a haiku about autumn leaves.", ("leaves", "autumn", "fall")),
]

INSTRUCTIONS: list[tuple[str, str, tuple[str, ...]]] = [
    ("sleep-tips", "Give three tips for better sleep.", ("sleep", "bed")),
    ("good-morning", "Translate 'good morning' into French.", ("bonjour",)),
    ("haiku-sea", "Write a haiku about the sea.", ("sea", "wave", "ocean")),
    ("photosynthesis", "What is photosynthesis? Two sentences.", ("light", "plant")),
    ("colours", "Name the three primary colours.", ("red", "blue", "yellow")),
    ("decline", "Write a short, friendly reply declining a meeting invitation.",
     ("meeting", "thank", "sorry", "unfortunately")),
    ("meeting-moved", "Summarise in one sentence: The team meeting moved from Tuesday to "
     "Thursday because the projector in the main room was broken.", ("thursday",)),
    ("http", "What does HTTP stand for?", ("hypertext",)),
    ("blog-title", "Suggest a title for a blog post about saving money.", ("money", "sav")),
    ("variable", "Explain briefly what a variable is in programming.", ("variable", "value")),
    ("vitamin-c", "List three fruits that are high in vitamin C.",
     ("orange", "kiwi", "strawberr", "lemon", "guava")),
    ("recursion", "Explain recursion in one paragraph.", ("recurs", "itself")),
]


def prompts(subjects: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """Every prompt: ``id``, ``set``, ``text``, ``words``, ``max_tokens``, ``limit``."""
    out = []
    for line in (ROOT / "examples/articles.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.append({"id": row["id"], "set": "articles", "text": row["prompt"],
                    "words": subjects[row["id"]], "max_tokens": 1024, "limit": 60})
    for group, items in (("readme", README), ("instructions", INSTRUCTIONS)):
        for pid, text, words in items:
            out.append({"id": pid, "set": group, "text": text, "words": words,
                        "max_tokens": 512, "limit": 200})
    return out


def repeated_share(text: str, n: int = 4) -> float:
    """The share of the text's word n-grams that occurred earlier in it."""
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    again = 0
    for g in grams:
        again += g in seen
        seen.add(g)
    return again / len(grams)


def score(p: dict[str, Any], text: str, tokens: int) -> dict[str, Any]:
    cut = tokens >= p["max_tokens"]
    words = len(text.split())
    end = text.rstrip()
    checks = {
        "no_loop": repeated_share(text) < 0.2,
        "length": 3 <= words <= p["limit"] and not cut,
        "on_topic": any(w in text.lower() for w in p["words"]),
        "clean_end": not cut and (end.endswith(("```", ".", "!", "?", '"', ")", "'"))),
    }
    return {"id": p["id"], "set": p["set"], "tokens": tokens, "words": words,
            "score": sum(checks.values()) / 4, **checks, "text": text}


async def variant(engine: SmolLM2Engine, p_list: list[dict[str, Any]], system: str
                  ) -> tuple[list[dict[str, Any]], float]:
    async def one(p: dict[str, Any]) -> dict[str, Any]:
        params = SamplingParams(max_tokens=p["max_tokens"], temperature=0.2, top_p=0.9)
        pieces = [t async for t in engine.generate(
            Prompt(system=system, turns=(("user", p["text"]),)), params)]
        return score(p, "".join(pieces), len(pieces))

    started = time.monotonic()
    answers = await asyncio.gather(*(one(p) for p in p_list))
    return list(answers), time.monotonic() - started


async def rubric(subjects: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    p_list = prompts(subjects)
    engine = SmolLM2Engine()
    results: dict[str, Any] = {}
    rows = []
    try:
        await variant(engine, p_list[:2], "")  # load and warm up
        for name, penalty, ngram, system in VARIANTS:
            engine.repeat_penalty, engine.loop_ngram = penalty, ngram
            answers, wall = await variant(engine, p_list, system)
            tokens = sum(a["tokens"] for a in answers)
            by_set = {s: [a for a in answers if a["set"] == s]
                      for s in ("articles", "readme", "instructions")}
            mean = {s: round(sum(a["score"] for a in v) / len(v), 3)
                    for s, v in by_set.items()}
            good = {s: sum(a["score"] == 1 for a in v) for s, v in by_set.items()}
            cut = sum(a["tokens"] >= next(p["max_tokens"] for p in p_list
                                          if p["id"] == a["id"]) for a in answers)
            results[name] = {"repeat_penalty": penalty, "loop_ngram": ngram,
                             "system": system, "mean_score": mean, "all_four": good,
                             "cut_at_max_tokens": cut, "tokens": tokens,
                             "wall_s": round(wall, 1),
                             "tokens_per_s": round(tokens / wall, 1), "answers": answers}
            rows.append([name, mean["articles"], good["articles"], mean["readme"],
                         good["readme"], mean["instructions"], good["instructions"], cut,
                         tokens, f"{wall:.0f}", f"{tokens / wall:.1f}"])
            print(f"  {name}: done ({wall:.0f} s)", flush=True)
    finally:
        await engine.aclose()
    n = {s: sum(p["set"] == s for p in p_list) for s in ("articles", "readme", "instructions")}
    print_table("rubric (mean of 4 checks; all four = answers passing every check)",
                ["variant", "articles", f"/{n['articles']}", "readme", f"/{n['readme']}",
                 "instr.", f"/{n['instructions']}", "cut", "tokens", "wall s", "tok/s"],
                rows)
    return results
