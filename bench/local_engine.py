"""Benchmark: the ``smollm2`` engine behind the local API, against llama-cpp-python itself.

Starts the local API with the smollm2 engine in its own process (so the SDK client and
the server do not share a GIL) and measures, greedy throughout:

1. one stream: decode tokens/s and time to first token through the local API's SSE path
   (SDK ``messages.stream``) versus llama-cpp-python called directly in this process
   (``Llama(prompt, stream=True)`` on the same rendered prompt, same ``max_tokens``);
   goal: >= 0.9x the tokens/s, <= +50 ms TTFT;
2. throughput of 16 requests of 64 output tokens: one after another versus all 16 at
   once (batched decoding); goal: batched >= 1.4x;
3. head-of-line blocking: 8 streams started together, each one's TTFT; goal: < 1 s;
4. resident memory (VmRSS, VmHWM) of the serving process with the model loaded.

    .venv/bin/python bench/local_engine.py [--repeat 3] [--threads 2] [--gomp-spincount 1000]

llama-cpp-python's ``Llama`` is built with llama.cpp's extra buffer types off, as the
engine does: with them, llama.cpp repacks the weights for AMX on CPUs that have it, and
those kernels crash in llama-cpp-python 0.3.36 (see ``laneway/local/engines/smollm2.py``).
Both use the same ``GOMP_SPINCOUNT`` (``--gomp-spincount``, 1000 by default as the
engine sets it; ``default`` leaves GNU OpenMP's 300,000): with the default, llama.cpp's
threads spin at every barrier, and on a busy 2-core machine a decode step can take 5 to
10 times longer. The machine's load average is recorded with the results.

Prints a table and writes ``bench/results/local_engine.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "local_engine.json"
MODEL = "claude-sonnet-5"
STREAM_PROMPT = "Write a long story about a dragon who learns to sing."
TOPICS = [
    "a lighthouse keeper", "a robot gardener", "a lost city", "a time traveller",
    "a friendly ghost", "a pirate queen", "a talking cat", "a desert caravan",
    "a mountain village", "an underwater kingdom", "a clockmaker", "a space station",
    "a forgotten library", "a brave knight", "a winter festival", "a magic violin",
]
GREEDY = {"temperature": 0.0}


def _serve(port: int, threads: int) -> None:
    os.environ["LANEWAY_SMOLLM2_THREADS"] = str(threads)
    import uvicorn

    from laneway.local.app import create_app
    from laneway.local.config import LocalConfig

    app = create_app(LocalConfig(engine="smollm2"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- llama-cpp-python, called directly --------------------------------------------------
def _direct_llama(threads: int) -> Any:
    import llama_cpp

    from laneway.local.engines import model_file

    default_params = llama_cpp.llama_cpp.llama_model_default_params

    def no_extra_bufts() -> Any:
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama_cpp.llama_model_default_params = no_extra_bufts
    try:
        return llama_cpp.Llama(model_path=str(model_file.path()), n_ctx=2048, n_batch=512,
                               n_threads=threads, n_threads_batch=threads, verbose=False)
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = default_params


def _render(llm: Any, text: str) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    formatter = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                                    eos_token="<|im_end|>", bos_token="<|im_start|>")
    prompt: str = formatter(messages=_user(text)).prompt
    return prompt


def _direct_stream(llm: Any, prompt: str, max_tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    stamps: list[float] = []
    text = ""
    finish = None
    for chunk in llm(prompt, max_tokens=max_tokens, temperature=0.0, stream=True):
        piece = chunk["choices"][0]["text"]
        finish = chunk["choices"][0]["finish_reason"] or finish
        if piece or not stamps:
            stamps.append(time.perf_counter())
        text += piece
    llm.reset()  # no prompt-prefix reuse from one run to the next
    tokens = max_tokens if finish == "length" else len(
        llm.tokenize(text.encode(), add_bos=False, special=False))
    return _stream_stats(started, stamps, tokens, text)


def _stream_stats(started: float, stamps: list[float], tokens: int, text: str
                  ) -> dict[str, Any]:
    decode_s = stamps[-1] - stamps[0]
    return {
        "ttft_ms": (stamps[0] - started) * 1000,
        "tokens": tokens,
        "decode_tok_s": (tokens - 1) / decode_s if decode_s > 0 else float("nan"),
        "total_s": stamps[-1] - started,
        "text": text,
    }


# -- through the local API --------------------------------------------------------------
async def _api_stream(client: anthropic.AsyncAnthropic, text: str, max_tokens: int
                      ) -> dict[str, Any]:
    started = time.perf_counter()
    stamps: list[float] = []
    out = ""
    async with client.messages.stream(model=MODEL, max_tokens=max_tokens,
                                      messages=_user(text), extra_body=GREEDY) as s:
        async for event in s:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                stamps.append(time.perf_counter())
                out += event.delta.text
        final = await s.get_final_message()
    return _stream_stats(started, stamps, final.usage.output_tokens, out)


async def _api_create(client: anthropic.AsyncAnthropic, text: str, max_tokens: int) -> int:
    message = await client.messages.create(model=MODEL, max_tokens=max_tokens,
                                           messages=_user(text), extra_body=GREEDY)
    return message.usage.output_tokens


async def _wait_ready(client: anthropic.AsyncAnthropic, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await client.messages.count_tokens(model=MODEL, messages=_user("hi"))
            return
        except anthropic.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _throughput(client: anthropic.AsyncAnthropic, max_tokens: int) -> dict[str, Any]:
    prompts = [f"Write a long story about {topic}." for topic in TOPICS]
    started = time.perf_counter()
    sequential = [await _api_create(client, p, max_tokens) for p in prompts]
    seq_s = time.perf_counter() - started
    started = time.perf_counter()
    together = await asyncio.gather(*(_api_create(client, p, max_tokens) for p in prompts))
    batch_s = time.perf_counter() - started
    return {
        "requests": len(prompts),
        "sequential_tokens": sum(sequential), "sequential_s": seq_s,
        "sequential_tok_s": sum(sequential) / seq_s,
        "batched_tokens": sum(together), "batched_s": batch_s,
        "batched_tok_s": sum(together) / batch_s,
        "speedup": (sum(together) / batch_s) / (sum(sequential) / seq_s),
    }


async def _head_of_line(client: anthropic.AsyncAnthropic) -> dict[str, Any]:
    prompts = [f"Write a long story about {topic}." for topic in TOPICS[:8]]
    results = await asyncio.gather(*(_api_stream(client, p, 32) for p in prompts))
    ttfts = [r["ttft_ms"] for r in results]
    return {"streams": len(prompts), "ttft_ms": ttfts, "ttft_max_ms": max(ttfts),
            "ttft_p50_ms": statistics.median(ttfts)}


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, args.threads), daemon=True)
    server.start()
    assert server.pid is not None
    client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key="x",
                                      max_retries=0, timeout=600)
    try:
        await _wait_ready(client)  # count_tokens loads the model
        memory = _memory_kb(server.pid)
        await _api_stream(client, STREAM_PROMPT, 8)  # warm up the server's path

        llm = _direct_llama(args.threads)
        prompt = _render(llm, STREAM_PROMPT)
        _direct_stream(llm, prompt, 8)  # warm up
        direct: list[dict[str, Any]] = []
        api: list[dict[str, Any]] = []
        for _ in range(args.repeat):  # interleaved, so that load changes hit both alike
            direct.append(_direct_stream(llm, prompt, args.stream_tokens))
            api.append(await _api_stream(client, STREAM_PROMPT, args.stream_tokens))
        del llm
        throughput = await _throughput(client, args.batch_tokens)
        head = await _head_of_line(client)
        memory_after = _memory_kb(server.pid)
    finally:
        await client.close()
        server.terminate()
        server.join(10)
    stream = {
        "max_tokens": args.stream_tokens,
        "direct_tok_s": _median(direct, "decode_tok_s"),
        "api_tok_s": _median(api, "decode_tok_s"),
        "direct_ttft_ms": _median(direct, "ttft_ms"),
        "api_ttft_ms": _median(api, "ttft_ms"),
        "direct_tokens": [r["tokens"] for r in direct],
        "api_tokens": [r["tokens"] for r in api],
        "same_text": all(d["text"] == a["text"] for d, a in zip(direct, api, strict=True)),
        "runs": {"direct": [{k: v for k, v in r.items() if k != "text"} for r in direct],
                 "api": [{k: v for k, v in r.items() if k != "text"} for r in api]},
    }
    stream["tok_s_ratio"] = stream["api_tok_s"] / stream["direct_tok_s"]
    stream["ttft_delta_ms"] = stream["api_ttft_ms"] - stream["direct_ttft_ms"]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": os.cpu_count(), "threads": args.threads,
                    "gomp_spincount": args.gomp_spincount,
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "stream": stream, "throughput": throughput, "head_of_line": head,
        "memory_kb": {"loaded": memory, "after": memory_after},
    }


def _table(result: dict[str, Any]) -> Table:
    s, t, h = result["stream"], result["throughput"], result["head_of_line"]
    mem = result["memory_kb"]["after"]
    machine = result["machine"]
    table = Table(title=f"smollm2 engine (threads={machine['threads']}, GOMP_SPINCOUNT="
                        f"{machine['gomp_spincount']}, load average "
                        f"{machine['loadavg_before'][0]:.1f} -> {machine['loadavg_after'][0]:.1f})")
    for col in ("measure", "laneway local API", "baseline", "ratio / goal"):
        table.add_column(col)
    table.add_row(f"1 stream, decode tok/s ({s['max_tokens']} tok)",
                  f"{s['api_tok_s']:.1f}", f"{s['direct_tok_s']:.1f} (llama-cpp-python)",
                  f"{s['tok_s_ratio']:.2f}x  (>= 0.9x)")
    table.add_row("1 stream, TTFT ms", f"{s['api_ttft_ms']:.0f}",
                  f"{s['direct_ttft_ms']:.0f} (llama-cpp-python)",
                  f"{s['ttft_delta_ms']:+.0f} ms  (<= +50 ms)")
    table.add_row(f"{t['requests']} requests, output tok/s",
                  f"{t['batched_tok_s']:.1f} batched ({t['batched_tokens']} tok, "
                  f"{t['batched_s']:.1f} s)",
                  f"{t['sequential_tok_s']:.1f} sequential ({t['sequential_tokens']} tok, "
                  f"{t['sequential_s']:.1f} s)",
                  f"{t['speedup']:.2f}x  (>= 1.4x)")
    table.add_row(f"{h['streams']} streams together, TTFT ms",
                  f"max {h['ttft_max_ms']:.0f}, p50 {h['ttft_p50_ms']:.0f}",
                  " ".join(f"{v:.0f}" for v in h["ttft_ms"]), "each < 1000 ms")
    table.add_row("server RSS (model loaded)", f"{mem['VmRSS'] / 1024:.0f} MiB",
                  f"peak {mem['VmHWM'] / 1024:.0f} MiB", "")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--stream-tokens", type=int, default=128)
    parser.add_argument("--batch-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--gomp-spincount", default="1000")
    args = parser.parse_args()
    if "llama_cpp" in sys.modules:
        raise SystemExit("llama_cpp must not be imported before GOMP_SPINCOUNT is set")
    # (libgomp's own default is 300000: "default" stands for it)
    spin = "300000" if args.gomp_spincount == "default" else args.gomp_spincount
    os.environ["GOMP_SPINCOUNT"] = spin
    result = asyncio.run(_run(args))
    Console(width=150).print(_table(result))
    print(f"same greedy text through the API as llama-cpp-python: {result['stream']['same_text']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
