"""Which loop and edit format an agent left at `auto` uses with a given model.

Small models do best seeing the files a task names and answering with them whole, without tools (Aider's
measurements, and ours: the tool loop solved none of six exercises the edit loop solves with Qwen2.5-Coder-1.5B);
larger ones get the tool loop and exact replacements, which scale to large files and repositories.
"""

from __future__ import annotations

import re

from tasks_lib.agent.profile import ModelProfile
from tasks_lib.agent.spec import AgentSpec
from tasks_lib.domain.words import counted

SMALL_MODEL_BILLIONS = 10.0  # up to this size a model counts as small
EDIT_LOOP_MAX_LINES = 600  # the named files an edit-loop model rewrites whole, in all
SMALL_MODEL_REPLY_TOKENS = 1500  # a small model's reply cap unless the agent sets one: a whole short file fits, and
# a rambling reply stops after ~80 s on 2 CPU cores instead of running for minutes
SMALL_MODEL_TEMPERATURE = 0.0  # a small model's temperature for a single attempt unless the agent or run sets one:
# greedy beat one sample at llama.cpp's and Ollama's default of 0.8 (bench: README, "Sampling that pays"); best-of-N
# attempts keep the server's sampling, since three samples ranked by the check beat one greedy answer
_SIZE = re.compile(r"(?<![\w.])(?:(\d+)x)?(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)


def model_billions(model_name: str, profile: ModelProfile | None = None) -> tuple[float | None, str]:
    """(the model's size in billions of parameters, or None when unknown; where that came from)."""
    if profile is not None and profile.parameters:
        return profile.parameters / 1e9, f"{profile.server} says"
    name = model_name.split("/", 1)[-1]
    sizes = [float(m[1]) * (int(m[0]) if m[0] else 1) for m in _SIZE.findall(re.sub(r"[-_:]", " ", name))]
    return (max(sizes), "its name says") if sizes else (None, "unknown size")


def choose_modes(
    agent: AgentSpec,
    model_name: str,
    profile: ModelProfile | None,
    named: list[tuple[str, str]],
    attempts: int = 1,
) -> tuple[AgentSpec, str | None]:
    """The agent with its `auto` loop and edit format settled for ``model_name`` and the files the task names
    (``named``: (path, text)), and a small model's temperature when nothing set one and the run makes one attempt
    (``attempts``); and one line saying what was chosen and why (None when nothing was left to choose)."""
    billions, source = model_billions(model_name, profile)
    small = billions is not None and billions <= SMALL_MODEL_BILLIONS
    settling = agent.loop == "auto" or agent.edit_format == "auto"
    greedy = small and agent.temperature is None and attempts == 1
    if not settling and not greedy:
        return agent, None
    size = f"{billions:g}B parameters ({source})" if billions is not None else "size unknown"
    lines = sum(text.count("\n") + 1 for _, text in named)
    loop, why_loop = agent.loop, ""
    if loop == "auto":
        if not small:
            loop, why_loop = "tools", "not a small model"
        elif agent.read_only_workspace:
            loop, why_loop = "tools", "the agent does not write files"
        elif not named:
            loop, why_loop = "tools", "the task names no file to show it"
        elif lines > EDIT_LOOP_MAX_LINES:
            loop, why_loop = "tools", f"the files the task names hold {lines} lines (over {EDIT_LOOP_MAX_LINES})"
        else:
            loop, why_loop = "edit", f"a small model and {counted(len(named), 'named file')} of {lines} lines"
    edit_format = agent.edit_format
    if edit_format == "auto":
        edit_format = "whole" if small else "replace"
    reply_cap = agent.max_reply_tokens or (SMALL_MODEL_REPLY_TOKENS if small and settling else None)
    temperature = SMALL_MODEL_TEMPERATURE if greedy else agent.temperature
    chosen = agent.model_copy(
        update={"loop": loop, "edit_format": edit_format, "max_reply_tokens": reply_cap, "temperature": temperature}
    )
    parts = []
    if agent.loop == "auto":
        parts.append(f"loop {loop} ({why_loop})")
    if agent.edit_format == "auto":
        parts.append(f"edit format {edit_format}")
    if reply_cap != agent.max_reply_tokens:
        parts.append(f"replies capped at {reply_cap} tokens")
    if greedy:
        parts.append(f"temperature {temperature:g} (one attempt)")
    return chosen, f"{model_name}, {size}: {', '.join(parts)}"
