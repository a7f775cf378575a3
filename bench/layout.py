"""Benchmark: the package layout's figures (issue 27), read from the source alone.

- **units**: the top-level modules and packages of ``src/laneway`` (``__init__.py`` and
  ``__main__.py`` included); ``server/gateway`` counts as a unit of its own, as the
  gateway is a product of its own inside ``server/``.
- **arrows**: distinct pairs (A, B), A != B, where a module of unit A imports something of
  unit B. Every import counts, also those inside functions and under ``TYPE_CHECKING``
  (as ``import_cycles.py`` counts them).
- **circles**: groups of units that import each other (strongly connected, size > 1).
- **modules over 400 lines**, and the median module's length.
- **runs.status writers**: the places (module:line) outside ``store/`` that write a run's
  status: a call of ``set_run_status(...)``, or of ``update_run(...)`` with ``status=``;
  and the modules they are in.
- **cancel report types**: classes whose name says ``Cancel`` (what a cancel returns; the
  runs API's JSON shape ``CancelResult`` included).

    .venv/bin/python bench/layout.py [--src OTHER_CHECKOUT/src/laneway]

Prints the tables and writes ``bench/results/layout.json``. Reads the source only (imports
no laneway), in a second.
"""

from __future__ import annotations

import argparse
import ast
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import print_table, save

SRC = Path(__file__).resolve().parents[1] / "src" / "laneway"
#: Packages inside a unit that count as units of their own.
SUB_UNITS = ("server/gateway",)
MAX_MODULE_LINES = 400


def unit_of(rel: Path) -> str:
    """The unit a module belongs to: ``errors.py``, ``store/``, ``server/gateway/``."""
    posix = rel.as_posix()
    for sub in SUB_UNITS:
        if posix.startswith(sub + "/"):
            return sub + "/"
    return rel.parts[0] + "/" if len(rel.parts) > 1 else rel.name


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["laneway", *parts])


def imported_names(tree: ast.AST, me: str, is_pkg: bool, known: set[str]) -> Iterator[str]:
    """Every dotted name an import statement of the module reaches (relative ones made
    absolute): ``from X import y`` gives ``X.y`` when that is a module, else ``X``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = me.split(".") if is_pkg else me.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                yield f"{base}.{a.name}" if f"{base}.{a.name}" in known else base


def status_writes(tree: ast.AST) -> Iterator[int]:
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if name == "set_run_status" or (
                name == "update_run" and any(k.arg == "status" for k in node.keywords)):
            yield node.lineno


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def measure(src: Path) -> dict[str, Any]:
    files = {p.relative_to(src): p for p in sorted(src.rglob("*.py"))}
    by_name = {module_name(rel): rel for rel in files}
    graph: dict[str, set[str]] = {unit_of(rel): set() for rel in files}
    lines: dict[str, int] = {}
    writers: list[str] = []
    cancel_types: list[str] = []
    for rel, path in files.items():
        text = path.read_text(encoding="utf-8")
        lines[rel.as_posix()] = len(text.splitlines())
        tree = ast.parse(text)
        me = module_name(rel)
        for name in imported_names(tree, me, rel.name == "__init__.py", set(by_name)):
            while name and name not in by_name:  # the deepest module the name reaches
                name = name.rpartition(".")[0]
            if name and name != me and unit_of(by_name[name]) != unit_of(rel):
                graph[unit_of(rel)].add(unit_of(by_name[name]))
        if rel.parts[0] != "store":
            writers += [f"{rel.as_posix()}:{line}" for line in sorted(status_writes(tree))]
        cancel_types += [f"{rel.as_posix()}:{node.name}" for node in ast.walk(tree)
                         if isinstance(node, ast.ClassDef) and "Cancel" in node.name]
    arrows = sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps)
    return {
        "units": sorted(graph),
        "arrows": arrows,
        "circles": circles(graph),
        "modules": len(lines),
        "median_module_lines": statistics.median(lines.values()),
        "over_400_lines": {m: n for m, n in sorted(lines.items()) if n > MAX_MODULE_LINES},
        "status_writers": writers,
        "status_writer_modules": sorted({w.split(":")[0] for w in writers}),
        "cancel_report_types": sorted(cancel_types),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=SRC, help="the package's directory")
    args = parser.parse_args()
    m = measure(args.src.resolve())
    fan_in: dict[str, int] = {u: 0 for u in m["units"]}
    fan_out: dict[str, int] = {u: 0 for u in m["units"]}
    for arrow in m["arrows"]:
        a, b = arrow.split(" -> ")
        fan_out[a] += 1
        fan_in[b] += 1
    print_table("units (imports: out = units it imports, in = units importing it)",
                ["unit", "out", "in"], [[u, fan_out[u], fan_in[u]] for u in m["units"]])
    print_table("layout of src/laneway", ["figure", "value"], [
        ["top-level units", len(m["units"])],
        ["import arrows between them", len(m["arrows"])],
        ["import circles between them", len(m["circles"])],
        ["modules", m["modules"]],
        ["median module, lines", m["median_module_lines"]],
        ["modules over 400 lines", len(m["over_400_lines"])],
        ["runs.status writers outside store/", len(m["status_writers"])],
        ["modules writing runs.status", len(m["status_writer_modules"])],
        ["cancel report types", len(m["cancel_report_types"])],
    ])
    for group in m["circles"]:
        print("circle: " + ", ".join(group))
    for place in m["status_writers"]:
        print(f"runs.status written at {place}")
    for place in m["cancel_report_types"]:
        print(f"cancel report type {place}")
    save("layout", m)


if __name__ == "__main__":
    main()
