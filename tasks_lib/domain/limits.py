"""Resource limits of an agent's commands (`limits:` in agent files and workflows): how people write them and the
defaults that fit a 2-core / 24 GB worker running a few sessions at once."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3}
UNITS.update({"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "tb": 1000**4, "t": 1000**4})
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$")


def parse_size(value: Any) -> Any:
    """`4GiB`, `512 MB`, `1g` or a number of bytes as bytes; None, `unlimited` and `none` as None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip().lower()
    if text in ("", "none", "unlimited", "off"):
        return None
    match = SIZE.match(text)
    if not match or match.group(2) not in UNITS:
        raise ValueError(f"{value!r} is not a size (write e.g. 4GiB, 512MiB, 1G or a number of bytes)")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def parse_seconds(value: Any) -> Any:
    """`10m`, `90s`, `1h` or a number of seconds as seconds; None, `unlimited` and `none` as None."""
    if value is None or isinstance(value, bool) or isinstance(value, int | float):
        return value
    text = str(value).strip().lower()
    if text in ("", "none", "unlimited", "off"):
        return None
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a duration (write e.g. 10m, 90s, 1h or a number of seconds)")
    scale = {"m": 60, "min": 60, "h": 3600}.get(match.group(2) or "s", 1)
    return int(float(match.group(1)) * scale)


def unlimited_words(value: Any) -> Any:
    """`unlimited` and `none` (as people write "no limit") as None."""
    return None if isinstance(value, str) and value.strip().lower() in ("none", "unlimited", "off") else value


Positive = Annotated[int, Field(ge=1)]
Size = Annotated[Positive | None, BeforeValidator(parse_size)]
Seconds = Annotated[Positive | None, BeforeValidator(parse_seconds)]
Count = Annotated[Positive | None, BeforeValidator(unlimited_words)]
GiB = 1024**3


def size_text(value: int | None) -> str:
    """Bytes as a person reads them (2 GiB, 512 MiB)."""
    if value is None:
        return "unlimited"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= scale:
            number = value / scale
            return f"{number:.0f} {unit}" if number == int(number) else f"{number:.1f} {unit}"
    return f"{value} bytes"


def seconds_text(value: int | None) -> str:
    """Seconds as a person reads them (10 min, 90 s)."""
    if value is None:
        return "unlimited"
    return f"{value // 60} min" if value % 60 == 0 and value >= 60 else f"{value} s"


class Limits(BaseModel):
    """What one agent command (and everything it starts) may use; None: no limit. Fields left out of a file
    keep the level below (run → workflow → agent → AGENT_TASKS_LIMITS → these defaults)."""

    model_config = ConfigDict(extra="forbid")

    memory: Size = Field(default=4 * GiB, description="Memory of the command and all it starts, together.")
    processes: Count = Field(default=1024, description="Processes and threads alive at once.")
    cpu_time: Seconds = Field(default=1800, description="CPU time of each process.")
    file_size: Size = Field(default=1 * GiB, description="The largest file a command may write.")
    disk: Size = Field(default=4 * GiB, description="What the session may add to its workspace and /tmp together.")
    tmp: Size = Field(default=2 * GiB, description="What the sandbox's /tmp may hold.")

    def over(self, layer: dict[str, Any] | None) -> Limits:
        """These limits with the fields ``layer`` sets replacing them (validated)."""
        return Limits.model_validate({**self.model_dump(), **(layer or {})})

    def words(self) -> dict[str, str]:
        """Each limit as a person reads it."""
        return {
            "memory": size_text(self.memory),
            "processes": "unlimited" if self.processes is None else f"{self.processes:,}",
            "cpu_time": seconds_text(self.cpu_time),
            "file_size": size_text(self.file_size),
            "disk": size_text(self.disk),
            "tmp": size_text(self.tmp),
        }


def limits_layer(value: Any) -> Any:
    """A `limits:` mapping as written (only the fields it sets), validated field by field; None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("limits: expected a mapping such as {memory: 2GiB, processes: 512}")
    unknown = set(value) - set(Limits.model_fields)
    if unknown:
        raise ValueError(
            f"limits: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(Limits.model_fields)}"
        )
    Limits().over(value)  # raises with the field's problem
    return dict(value)


# `limits:` as an agent file, a workflow or a request writes it: only the fields it sets.
LimitsLayer = Annotated[dict[str, Any] | None, BeforeValidator(limits_layer)]
