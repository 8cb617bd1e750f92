"""Field types shared by requests, agent files and workflows: how people write them and what they mean."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

SandboxKind = Literal["auto", "bwrap", "none"]
OnAccept = Literal["branch", "merge", "pull_request"]
Decision = Literal["accept", "request_changes", "reject", "retry"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def on_off(value: Any) -> Any:
    """`on`/`off` (as people write network settings) as True/False; anything else unchanged."""
    if isinstance(value, str) and value.strip().lower() in ("on", "off"):
        return value.strip().lower() == "on"
    return value


def env_names(value: Any) -> Any:
    """Names of variables to pass to agent commands: a list, or a comma-separated string; each a valid name."""
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else (value or [])
    for name in names:
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return [n for n in names if n]


# A network setting: true/false or on/off; None leaves it to the next level (run → workflow → agent).
NetworkSetting = Annotated[bool | None, BeforeValidator(on_off)]
# Variables passed to agent commands (`env:`), by name.
EnvNames = Annotated[list[str], BeforeValidator(env_names)]
