"""Field types shared by requests, agent files and workflows: how people write them and what they mean."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

SandboxKind = Literal["auto", "bwrap", "docker", "none"]
OnAccept = Literal["branch", "merge", "pull_request"]
Decision = Literal["accept", "request_changes", "reject", "retry"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def network_word(value: Any) -> Any:
    """A network setting as people write it — on/off/allow, true/false, yes/no — as `on`, `off` or `allow`."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        word = value.strip().lower()
        return {"true": "on", "yes": "on", "false": "off", "no": "off", "": None}.get(word, word)
    return value


def env_names(value: Any) -> Any:
    """Names of variables to pass to agent commands: a list, or a comma-separated string; each a valid name."""
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else (value or [])
    for name in names:
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return [n for n in names if n]


# What an agent's commands may reach: nothing, only allowed hosts through the egress proxy, or everything.
NetworkMode = Literal["off", "allow", "on"]
# A network setting: off/allow/on (true/false for on/off); None leaves it to the next level (run → workflow → agent).
NetworkSetting = Annotated[NetworkMode | None, BeforeValidator(network_word)]
# Variables passed to agent commands (`env:`), by name.
EnvNames = Annotated[list[str], BeforeValidator(env_names)]
