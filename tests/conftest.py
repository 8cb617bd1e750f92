"""Test set-up shared by tests/unit and tests/flow: a private home, real git repositories, the store, PostgreSQL.

tests/unit/ needs no Prefect server and no HTTP (its conftest makes an accidental Prefect API call fail at once);
tests/flow/ has the Prefect test server and the scripted model (tests/flow/conftest.py). Each test is marked
`unit` or `flow` by its folder, so `pytest -m unit` and `pytest tests/unit` select the same tests.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="agent-tasks-tests-"))
# The embedded local model's real cache (weights, server build): tests/flow/test_real_model.py points back at it.
REAL_MODEL_CACHE = os.environ.get("AGENT_TASKS_MODEL_CACHE") or str(
    Path.home() / ".cache" / "agent-tasks" / "local-model"
)
os.environ.update(
    # Never fall back on a local model this machine happens to serve (`agent-tasks models local serve`).
    AGENT_TASKS_MODEL_CACHE=str(_TMP / "model-cache"),
    AGENT_TASKS_HOME=str(_TMP / "home"),
    PREFECT_HOME=str(_TMP / "prefect"),
    LITELLM_LOCAL_MODEL_COST_MAP="True",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    DO_NOT_TRACK="1",
    AGENT_TASKS_MODEL_RETRY_DELAY="0.01",
    AGENT_TASKS_MODEL_TIMEOUT="20",
    AGENT_TASKS_REVIEW_POLL="1",
    # Never attach to a developer's own `agent-tasks up` server (tests that want a local server say so).
    AGENT_TASKS_LOCAL_API="http://127.0.0.1:9/api",
    # A credential the agent must never see and that must never be stored or logged.
    OPENAI_API_KEY="sk-test-SECRET-4f9a8b7c6d5e",
)
os.environ.pop("AGENT_TASKS_MODEL", None)
os.environ.pop("AGENT_TASKS_DB_URL", None)

import pytest  # noqa: E402

from tests.topology import create_database, free_port, postgres  # noqa: E402,F401  (shared with the scale-out bench)

SECRET = os.environ["OPENAI_API_KEY"]
MODEL = "openai/scripted-model"
HERE = Path(__file__).resolve().parent
KINDS = ("unit", "flow")  # the folders under tests/, and the marker each one's tests get


def pytest_collection_modifyitems(config, items):
    """Mark each test `unit` or `flow` by its folder; a test file anywhere else under tests/ is an error."""
    misplaced = []
    for item in items:
        path = Path(str(item.path)).resolve()
        if not path.is_relative_to(HERE):
            continue
        kind = path.relative_to(HERE).parts[0]
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))
        else:
            misplaced.append(item.nodeid)
    if misplaced:
        raise pytest.UsageError(
            f"tests outside tests/unit and tests/flow (put them in one): {', '.join(misplaced[:5])}"
        )


def git(cwd: Path, *args: str) -> str:
    """Run git in cwd and return its stdout."""
    return subprocess.run(
        ["git", "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with a main and a dev branch."""
    path = tmp_path / "source"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# Demo\n\nHello world.\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("def greet(name):\n    return 'Hello ' + name\n\n\nprint(greet('world'))\n")
    (path / "obsolete.txt").write_text("remove me\n")
    (path / "logo.bin").write_bytes(b"\x00\x01\x02\x03binary")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "initial")
    git(path, "branch", "dev")
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """One throwaway PostgreSQL server (initdb in a temp dir) for the whole run: its base URL, without a database."""
    try:
        with postgres() as server:
            yield server
    except RuntimeError as exc:  # no server binaries
        pytest.fail(str(exc))


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A SQLAlchemy URL (psycopg driver) for a database of this test's own on the shared PostgreSQL server."""
    return f"postgresql+psycopg://{postgres_server}/{create_database(postgres_server)}"


@pytest.fixture
def store():
    """The store the flows write to."""
    from tasks_lib.store import open_store

    return open_store()
