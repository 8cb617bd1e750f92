"""The house holds: rooms import one way (no cycles, no forbidden edge), no module grows past 400 lines, the top of
tasks_lib holds only its base modules, and every error the project raises derives from AgentTasksError."""

from __future__ import annotations

import ast
import importlib
import inspect

from tests.import_graph import ROOT, cycles, edges, forbidden, line_counts, modules

TOP_LEVEL = {"tasks_lib", "tasks_lib.config", "tasks_lib.errors", "tasks_lib.progress", "tasks_lib.warm"}


def test_imports_run_one_way_with_no_cycle_and_no_forbidden_edge():
    graph = edges()
    assert graph["flows.agent_task"], "the walker reads the flow's imports"
    assert cycles(graph) == []
    assert forbidden(graph) == [], "\n".join(f"{src} → {dst}: {why}" for src, dst, why in forbidden(graph))


def test_the_walker_finds_a_cycle_and_a_forbidden_edge_where_there_is_one():
    graph = {
        "tasks_lib.domain.request": {"tasks_lib.session.context"},
        "tasks_lib.session.context": {"tasks_lib.domain.request", "flows.agent_task"},
        "flows.agent_task": {"tasks_lib.session.context", "tasks_lib.cli"},
        "tasks_lib.cli": set(),
    }
    assert cycles(graph) == [["flows.agent_task", "tasks_lib.domain.request", "tasks_lib.session.context"]]
    assert [(src, dst) for src, dst, _ in forbidden(graph)] == [
        ("flows.agent_task", "tasks_lib.cli"),
        ("tasks_lib.domain.request", "tasks_lib.session.context"),
        ("tasks_lib.session.context", "flows.agent_task"),
    ]


def test_the_walker_reads_type_checking_and_function_local_imports(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tasks_lib.store import Store\n"
        "def f():\n    from tasks_lib.git.repo import slugify\n"
    )
    names = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert {"tasks_lib.store", "tasks_lib.git.repo"} <= names
    assert "tasks_lib.store" in edges()["tasks_lib.session.reconcile"] | edges()["tasks_lib.review.gate"]


def test_no_module_is_over_400_lines():
    over = {name: n for name, n in line_counts().items() if n > 400}
    assert over == {}


def test_the_top_of_tasks_lib_holds_only_its_base_modules():
    top = {name for name in modules() if name.count(".") <= 1 and name.startswith("tasks_lib")}
    folders = {p.name for p in (ROOT / "tasks_lib").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top - {f"tasks_lib.{f}" for f in folders} == TOP_LEVEL


def test_every_error_the_project_defines_derives_from_agent_tasks_error():
    from tasks_lib.errors import AgentTasksError

    found = []
    for name in modules():
        if name.endswith("__main__") or name.startswith("tasks_lib.store.migrations.env"):
            continue
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found.append(cls)
    assert len(found) >= 25, "the walk finds the project's error classes"
    assert [c.__qualname__ for c in found if not issubclass(c, AgentTasksError)] == []


def test_the_cli_s_preflight_imports_no_prefect_before_it_picks_a_server():
    """`agent-tasks run` checks the request first, then points Prefect at a server: Prefect reads its settings when it
    is imported, so an import of Prefect by the checks would send the run to a throwaway server instead."""
    import subprocess
    import sys

    probe = "import sys, tasks_lib.session.preflight, tasks_lib.cli; print(sorted(m for m in sys.modules if m == 'prefect'))"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "[]"


def test_entry_points_set_the_quiet_defaults_before_anything_else_is_imported():
    """Importing tasks_lib turns telemetry off and keeps litellm off the network; Prefect and litellm read those
    settings when they are imported, so every entry point imports tasks_lib first (the formatter keeps it there)."""
    entries = [
        *ROOT.glob("flows/*.py"),
        ROOT / "deployments/relay.py",
        ROOT / "deployments/serve.py",
        ROOT / "tasks_lib/cli/__init__.py",
        ROOT / "tasks_lib/web/__main__.py",
    ]
    for path in entries:
        tree = ast.parse(path.read_text())
        imports = [
            n
            for n in tree.body
            if isinstance(n, (ast.Import, ast.ImportFrom))
            and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")
        ]
        if not imports:
            continue
        first = imports[0]
        assert isinstance(first, ast.Import) and first.names[0].name == "tasks_lib", path.relative_to(ROOT)
