"""Benchmark: the official Python SDK's own examples against the local API.

Every ``*.py`` under ``examples/`` of the installed SDK's source distribution is run as
a user would run it (``python examples/NAME.py``), with ``ANTHROPIC_BASE_URL`` pointing
at ``laneway local`` (echo engine by default; ``--engine smollm2``) started in its own
process, or at any server given with ``--base-url``; ``--gateway`` runs every example
twice in one go, straight to that local API and through ``laneway serve`` in front of it
(the gateway is invisible when both columns agree). An example passes
when it exits 0 within ``--timeout-s``. The examples are not part of this repository:
they are downloaded (``pip download --no-binary :all: --no-deps anthropic==VERSION``,
the installed version) and unpacked into a temporary directory at run time, or taken
from ``--sdist`` (a ``.tar.gz``) or ``--examples`` (a directory).

What the harness gives an example is what its own text asks for: ``batch_results.py``
gets the id of a batch made on the server first (``argv[1]``), interactive ones get a
line or two on stdin. Each failure is shown with its last error line and, where it is
known, why it cannot pass against a local Messages API.

    .venv/bin/python bench/sdk_examples.py [--engine smollm2] [--only NAME] [--gateway]

Prints a table and writes ``bench/results/sdk_examples.json`` (with ``--gateway``,
``sdk_examples_gateway.json``: both sides).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import anthropic

from _common import local_api_process, print_table, save
from gateway import gateway as gateway_process

#: Input an interactive example reads (it stops at end of input either way).
STDIN = {
    "memory/basic.py": "My name is Ada and I like tea.\n/quit\n",
    "tools_runner_deferred_streaming.py": "n\n",
}
#: Why an example cannot pass against a local Messages API, whatever it answers.
CANNOT = {
    "images.py": "sends an image: no local engine sees images (a 400 naming the block)",
    "web_search.py": "web_search is a server tool: the local API runs none (a 400)",
    "web_search_stream.py": "web_search is a server tool: the local API runs none (a 400)",
    "mcp_tool_runner.py": "needs `anthropic[mcp]` and `npx` (an MCP filesystem server "
                          "fetched from npm)",
    "bedrock.py": "AnthropicBedrock: AWS credentials and Bedrock's own paths and signing",
    "vertex.py": "AnthropicVertex: Google credentials and Vertex's own paths",
    "google_cloud.py": "AnthropicGoogleCloud: anthropic[google_cloud], Google credentials",
    "azure.py": "AnthropicFoundry: ignores ANTHROPIC_BASE_URL, needs an Azure resource",
    "agents.py": "Managed Agents API (environments, agents, sessions): not a Messages API",
    "agents_comprehensive.py": "Managed Agents, vaults, skills and a GitHub MCP server",
    "agents_with_files.py": "Managed Agents and the Files API",
    "managed-agents-observe-tool-calls.py": "Managed Agents sessions and environments",
    "managed-agents-self-hosted-sandbox-worker.py": "Managed Agents environment workers",
    "managed-agents-streaming-deltas-manual.py": "Managed Agents session event streams",
    "managed-agents-worker-dispatch.py": "Managed Agents environment work items",
}


#: Why an example cannot pass on one engine (the echo engine passes it).
CANNOT_ON = {"smollm2": {
    "tools.py": "asserts a tool call under tool_choice auto: the smollm2 engine answers "
                "text unless a call is forced",
}}
#: What a pass proves little about.
NOTES = {
    "workload_identity.py": "sends no request: its main() is commented out",
    "fallbacks.py": "fallbacks accepted and never used: the local engines never refuse",
    "batch_results.py": "given the id of a batch made on the server first",
}


def fetch_examples(work: Path, *, sdist: Path | None, examples: Path | None) -> Path:
    """The examples directory of the installed SDK's source distribution."""
    if examples is not None:
        return examples
    if sdist is None:
        version = anthropic.__version__
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:",
                        "--no-deps", f"anthropic=={version}", "-d", str(work)], check=True)
        sdist = next(work.glob("anthropic-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    return next(work.glob("anthropic-*/examples"))


def make_batch(base_url: str) -> str:
    """A small ended batch on the server, for ``batch_results.py``."""
    client = anthropic.Anthropic(base_url=base_url, api_key="local")
    batch = client.messages.batches.create(requests=[{"custom_id": "q1", "params": {
        "model": "claude-sonnet-5", "max_tokens": 20,
        "messages": [{"role": "user", "content": "Hello there."}]}}])
    deadline = time.monotonic() + 30
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        if time.monotonic() > deadline:
            raise RuntimeError("the batch for batch_results.py did not end in 30 s")
        time.sleep(0.1)
    return batch.id


def run_example(path: Path, name: str, *, base_url: str, batch_id: str, cwd: Path,
                timeout_s: float, engine: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="local-key",
               PYTHONUNBUFFERED="1")
    args = [sys.executable, str(path)] + ([batch_id] if name == "batch_results.py" else [])
    started = time.monotonic()
    try:
        done = subprocess.run(args, input=STDIN.get(name, ""), capture_output=True, text=True,
                              env=env, cwd=cwd, timeout=timeout_s)
        rc, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stderr = None, f"timed out after {timeout_s:g} s\n{exc.stderr or ''}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return {"example": name, "passed": rc == 0, "exit_code": rc,
            "seconds": round(time.monotonic() - started, 1),
            "error": "" if rc == 0 else (lines[-1] if lines else "(no output)")[:300],
            "why_it_cannot": CANNOT.get(name) or CANNOT_ON.get(engine, {}).get(name, ""),
            "note": NOTES.get(name, "")}


def run_all(examples: Path, base_url: str, args: argparse.Namespace,
            work: Path) -> list[dict[str, Any]]:
    batch_id = make_batch(base_url)
    work = Path(tempfile.mkdtemp(dir=work))  # a side of its own (--gateway runs two)
    results = []
    for path in sorted(examples.rglob("*.py")):
        name = path.relative_to(examples).as_posix()
        if args.only and args.only not in name:
            continue
        cwd = work / "cwd" / name.replace("/", "_")
        cwd.mkdir(parents=True)
        result = run_example(path, name, base_url=base_url, batch_id=batch_id, cwd=cwd,
                             timeout_s=args.timeout_s, engine=args.engine)
        print(f"  {'pass' if result['passed'] else 'FAIL'}  {name}", flush=True)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="echo", choices=["echo", "smollm2"])
    parser.add_argument("--base-url", help="run against this server instead of starting one")
    parser.add_argument("--sdist", type=Path, help="the SDK's .tar.gz (else pip download)")
    parser.add_argument("--examples", type=Path, help="an unpacked examples/ directory")
    parser.add_argument("--only", help="run only the examples whose path contains this")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--gateway", action="store_true",
                        help="also through `laneway serve` in front of the local API")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="laneway-sdk-examples-") as tmp:
        work = Path(tmp)
        examples = fetch_examples(work, sdist=args.sdist, examples=args.examples)
        if args.base_url:
            results = run_all(examples, args.base_url, args, work)
        else:
            with local_api_process(engine=args.engine) as base_url:
                results = run_all(examples, base_url, args, work)
                if args.gateway:
                    with gateway_process(base_url) as (gateway_url, _pid):
                        print(f"through laneway serve at {gateway_url}:", flush=True)
                        relayed = run_all(examples, gateway_url, args, work)
    if args.gateway and not args.base_url:
        return _side_by_side(results, relayed, args.engine)
    passed = sum(r["passed"] for r in results)
    print_table(f"SDK {anthropic.__version__} examples against "
                f"{args.base_url or 'laneway local --engine ' + args.engine}: "
                f"{passed} of {len(results)} pass",
                ["example", "result", "s", "why not (or a note)"],
                [[r["example"], "pass" if r["passed"] else "FAIL", r["seconds"],
                  (r["note"] if r["passed"] else r["why_it_cannot"] or r["error"])[:90]]
                 for r in results])
    save("sdk_examples", {"sdk": anthropic.__version__,
                          "server": "given" if args.base_url else f"local/{args.engine}",
                          "passed": passed, "total": len(results), "examples": results})
    return 0


def _side_by_side(direct: list[dict[str, Any]], relayed: list[dict[str, Any]],
                  engine: str) -> int:
    """The two runs in one table; the examples whose result differs are listed."""
    through = {r["example"]: r for r in relayed}
    rows, differ = [], []
    for d in direct:
        g = through[d["example"]]
        if d["passed"] != g["passed"]:
            differ.append(d["example"])
        why = d["note"] if d["passed"] and g["passed"] else \
            d["why_it_cannot"] or (g["error"] if d["passed"] else d["error"])
        rows.append([d["example"], "pass" if d["passed"] else "FAIL", d["seconds"],
                     "pass" if g["passed"] else "FAIL", g["seconds"], why[:80]])
    passed = sum(r["passed"] for r in direct), sum(r["passed"] for r in relayed)
    print_table(f"SDK {anthropic.__version__} examples, laneway local --engine {engine}: "
                f"{passed[0]} of {len(direct)} pass direct, {passed[1]} of {len(relayed)} "
                f"through laneway serve; {len(differ)} differ",
                ["example", "direct", "s", "gateway", "s", "why not (or a note)"], rows)
    save("sdk_examples_gateway", {
        "sdk": anthropic.__version__, "server": f"local/{engine}",
        "direct": {"passed": passed[0], "total": len(direct), "examples": direct},
        "gateway": {"passed": passed[1], "total": len(relayed), "examples": relayed},
        "differ": differ})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
