"""The project's import graph, read from the source: every import, including `TYPE_CHECKING` and function-local ones.

`python -m tests.import_graph` prints the rooms (modules per folder), the cycles, the forbidden edges and the
longest modules; `tests/unit/test_layers.py` holds the rules with it.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tasks_lib", "flows", "deployments")

# What each room may import (besides itself and the base modules every room may use).
BASE = {"tasks_lib", "tasks_lib.errors", "tasks_lib.progress"}
LOWER = {"domain", "security", "config"}
STORAGE = LOWER | {"git", "environments", "agent", "store"}
LIBRARY = STORAGE | {"steps", "session", "review"}
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "security": {"domain"},
    "config": {"domain", "security"},
    "git": LOWER,
    "environments": LOWER,
    "store": LOWER,
    "agent": LOWER | {"git", "environments"},
    "testing": STORAGE,
    "steps": STORAGE,
    "session": STORAGE | {"steps"},
    "review": STORAGE | {"steps", "session"},
    "flows": LIBRARY | {"evals"},  # flows/eval.py runs the eval harness
    "deployments": LIBRARY | {"flows"},
}
ANYTHING = {"cli", "ops", "web", "evals"}  # the front doors: may import anything
SHIMS = {"tasks_lib.warm": "ops"}  # `python -m tasks_lib.warm`, the command work pools are configured with


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts[:3] == ["tasks_lib", "evals", "bugfix"] and len(parts) > 3:  # the shipped suite's exercises
                continue
            found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            parent = parts if is_package else parts[:-1]
            parent = parent[: len(parent) - (node.level - 1)]
            base = ".".join(parent + ([base] if base else []))
        for alias in node.names:
            yield f"{base}.{alias.name}"
        yield base


def edges() -> dict[str, set[str]]:
    """For each module, the project modules it imports anywhere in its text."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = list(_imported(node, name, path.name == "__init__.py"))
            if isinstance(
                node, ast.ImportFrom
            ):  # `from pkg import mod` names the module, `from mod import x` the module
                base = names[-1]
                named = [n for n in names[:-1] if n in known]
                targets.update(named or ([base] if base in known else []))
            else:
                for n in names:
                    while n and n not in known:
                        n = n.rpartition(".")[0]
                    if n:
                        targets.add(n)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def room(module: str) -> str | None:
    """The room a module lives in (`domain`, `git`, `flows`, ...), None for a base module every room may use."""
    if module in BASE:
        return None
    if module in SHIMS:
        return SHIMS[module]
    parts = module.split(".")
    if parts[0] != "tasks_lib":
        return parts[0]
    if parts[1] == "config":
        return "config"
    return parts[1]


def forbidden(graph: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """Edges that break the rooms' rules: (importer, imported, why)."""
    bad = []
    for src, targets in sorted(graph.items()):
        src_room = room(src)
        if src_room is None or src_room in ANYTHING:
            continue
        for dst in sorted(targets):
            dst_room = room(dst)
            if dst_room is None or dst_room == src_room:
                continue
            allowed = ALLOWED.get(src_room)
            if allowed is None:
                bad.append((src, dst, f"{src_room} is not a room of the house"))
            elif dst_room not in allowed:
                bad.append((src, dst, f"{src_room} may not import {dst_room}"))
    return bad


def line_counts() -> dict[str, int]:
    """Lines of each module."""
    return {name: len(path.read_text().splitlines()) for name, path in modules().items()}


def folder_sizes() -> Counter[str]:
    """How many modules each folder of tasks_lib holds (its own files, not its subfolders')."""
    sizes: Counter[str] = Counter()
    for name, path in modules().items():
        if name.startswith("tasks_lib"):
            sizes[str(path.parent.relative_to(ROOT))] += 1
    return sizes


def main() -> None:
    """Print the house's figures: modules per folder, cycles, forbidden edges, longest modules."""
    graph = edges()
    print("modules per folder:")
    for folder, n in sorted(folder_sizes().items()):
        print(f"  {folder:34} {n}")
    found = cycles(graph)
    print(f"cycles: {len(found)}")
    for group in found:
        print("  " + " ↔ ".join(group))
    bad = forbidden(graph)
    print(f"forbidden edges: {len(bad)}")
    for src, dst, why in bad:
        print(f"  {src} → {dst} ({why})")
    counts = sorted(line_counts().items(), key=lambda kv: -kv[1])
    over = [(n, c) for n, c in counts if c > 400]
    print(f"modules over 400 lines: {len(over)}" + "".join(f"\n  {n} {c}" for n, c in over))
    print(f"longest module: {counts[0][0]} ({counts[0][1]} lines)")


if __name__ == "__main__":
    main()
