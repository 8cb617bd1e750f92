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
READS_ALLOWED = {"tasks_lib/config.py", "tasks_lib/ops/warm/protocol.py", "tasks_lib/ops/warm/client.py",
                 "tasks_lib/ops/stack.py"}


def sources() -> dict[str, str]:
    """The project's code and deployment files, by path."""
    paths = [*ROOT.glob("tasks_lib/**/*.py"), *ROOT.glob("flows/*.py"), *ROOT.glob("deployments/*.py"),
             ROOT / "Dockerfile", ROOT / "prefect.yaml"]
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
    settings = load_settings({"AGENT_TASKS_HOME": "/srv/agents", "AGENT_TASKS_REVIEW_POLL": "2",
                              "AGENT_TASKS_SANDBOX": " BWRAP ", "AGENT_TASKS_SANDBOX_EXPOSE": "/opt/a::/opt/b",
                              "AGENT_TASKS_DIFF_MAX_BYTES": "6_000", "AGENT_TASKS_MODEL": "  "})
    assert settings.home == Path("/srv/agents") and settings.db_url == "sqlite:////srv/agents/agent-tasks.db"
    assert settings.review_poll_s == 2 and settings.sandbox == "bwrap" and settings.default_model is None
    assert settings.sandbox_expose == ["/opt/a", "/opt/b"] and settings.diff_max_bytes == 6000
    assert settings.model_timeout_s == 180 and settings.mirror_lock_timeout_s == 720


@pytest.mark.parametrize("variable, value, problem", [
    ("AGENT_TASKS_SANDBOX", "docker", "use auto, bwrap or none"),
    ("AGENT_TASKS_REVIEW_POLL", "soon", "valid integer"),
    ("AGENT_TASKS_MODEL_TIMEOUT", "-1", "greater than 0"),
    ("AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS", "maybe", "valid boolean"),
])
def test_a_value_that_cannot_be_used_is_one_line_naming_the_variable(variable, value, problem):
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    assert str(caught.value).startswith(f"{variable}={value!r}: ") and problem in str(caught.value)
    assert "\n" not in str(caught.value)
