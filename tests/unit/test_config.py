"""One typed configuration: every AGENT_TASKS_* variable is declared once in tasks_lib/config.py and read there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks_lib.config import Settings, SettingsError, load_settings, variables

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"AGENT_TASKS_[A-Z_]*[A-Z]")
# Read straight from the environment, with a reason: the warm client starts in milliseconds and imports nothing of
# ours; `up` passes its children a value and its own default.
READS_ALLOWED = {
    "tasks_lib/config.py",
    "tasks_lib/ops/warm/protocol.py",
    "tasks_lib/ops/warm/client.py",
    "tasks_lib/ops/stack.py",
}


def sources() -> dict[str, str]:
    """The project's code and deployment files, by path."""
    paths = [
        *ROOT.glob("tasks_lib/**/*.py"),
        *ROOT.glob("flows/*.py"),
        *ROOT.glob("deployments/*.py"),
        ROOT / "Dockerfile",
        ROOT / "prefect.yaml",
    ]
    return {str(p.relative_to(ROOT)): p.read_text() for p in paths}


def test_every_variable_the_code_names_is_declared_once_with_a_description():
    declared = variables()
    assert len(declared) == len(Settings.model_fields) >= 30
    named = {m for text in sources().values() for m in NAME.findall(text)}
    assert named - set(declared) <= {"AGENT_TASKS_WEBHOOK_SECRET_"}, "a variable the code names is not declared"
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 20, name


def test_only_the_configuration_reads_agent_tasks_variables_from_the_environment():
    reads = re.compile(r"environ(?:\.get\(|\[)\s*f?[\"']AGENT_TASKS_")
    found = sorted(path for path, text in sources().items() if reads.search(text))
    assert set(found) <= READS_ALLOWED, found
    assert "tasks_lib/ops/warm/protocol.py" in found, "the pattern finds the reads there are"


def test_settings_are_typed_defaulted_and_an_empty_variable_is_unset():
    settings = load_settings(
        {
            "AGENT_TASKS_HOME": "/srv/agents",
            "AGENT_TASKS_REVIEW_POLL": "2",
            "AGENT_TASKS_SANDBOX": " BWRAP ",
            "AGENT_TASKS_SANDBOX_EXPOSE": "/opt/a::/opt/b",
            "AGENT_TASKS_DIFF_MAX_BYTES": "6_000",
            "AGENT_TASKS_MODEL": "  ",
        }
    )
    assert settings.home == Path("/srv/agents") and settings.db_url == "sqlite:////srv/agents/agent-tasks.db"
    assert settings.review_poll_s == 2 and settings.sandbox == "bwrap" and settings.default_model is None
    assert settings.sandbox_expose == ["/opt/a", "/opt/b"] and settings.diff_max_bytes == 6000
    assert settings.model_timeout_s == 180 and settings.mirror_lock_timeout_s == 720


@pytest.mark.parametrize(
    "variable, value, problem",
    [
        ("AGENT_TASKS_SANDBOX", "podman", "use auto, bwrap, docker or none"),
        ("AGENT_TASKS_REVIEW_POLL", "soon", "valid integer"),
        ("AGENT_TASKS_MODEL_TIMEOUT", "-1", "greater than 0"),
        ("AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS", "maybe", "valid boolean"),
    ],
)
def test_a_value_that_cannot_be_used_is_one_line_naming_the_variable(variable, value, problem):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert str(caught.value).startswith(f"{variable}={value!r}: ") and problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_agent_tasks_config_shows_each_value_where_it_came_from_and_masks_secrets(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "AGENT_TASKS_HOME": str(tmp_path),
        "AGENT_TASKS_REVIEW_POLL": "3",
        "AGENT_TASKS_DB_URL": "postgresql+psycopg://ada:hunter2-pw@db.internal/agents",
        "AGENT_TASKS_WEBHOOK_SECRET": "whsec-0123456789",
    }
    shown = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "config", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    lines = {line["variable"]: line for line in json.loads(shown.stdout)}
    assert len(lines) == len(Settings.model_fields)
    assert (
        lines["AGENT_TASKS_REVIEW_POLL"]["value"] == "3" and lines["AGENT_TASKS_REVIEW_POLL"]["source"] == "environment"
    )
    assert lines["AGENT_TASKS_REVIEW_TIMEOUT"] == {
        "variable": "AGENT_TASKS_REVIEW_TIMEOUT",
        "value": "604800",
        "source": "default",
        "description": Settings.model_fields["review_timeout_s"].description,
    }
    assert lines["AGENT_TASKS_DB_URL"]["value"] == "postgresql+psycopg://ada:***@db.internal/agents"
    assert lines["AGENT_TASKS_WEBHOOK_SECRET"]["value"] == "***"
    assert "hunter2-pw" not in shown.stdout and "whsec-0123456789" not in shown.stdout
    table = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0 and "AGENT_TASKS_SANDBOX_EXPOSE" in table.stdout and "hunter2-pw" not in table.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "config"],
        env={**env, "AGENT_TASKS_SANDBOX": "podman"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        bad.returncode == 1
        and bad.stderr.strip() == "error: AGENT_TASKS_SANDBOX='podman': use auto, bwrap, docker or none"
    )


def test_the_readme_lists_every_setting_with_its_default_and_description():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration") : readme.index("## Benchmark")]
    special = {
        "home": "`~/.agent-tasks`",
        "model_cache": "`~/.cache/agent-tasks/local-model`",
        "image_cache": "`~/.cache/agent-tasks/images`",
        "db_url": "SQLite: `$AGENT_TASKS_HOME/agent-tasks.db`",
    }
    for name, field in Settings.model_fields.items():
        value = None if name in special else field.get_default()
        default = special.get(name) or (
            "—" if value in (None, [], "") else f"`{str(value).lower() if isinstance(value, bool) else value}`"
        )
        row = f"| `{field.json_schema_extra['env']}` | {default} | {field.description} |"
        assert row in section, f"README's configuration table lacks or differs on: {row}"
