"""What an agent's first request costs a local model, in one run: its prompt tokens as the model's server counts them
(chat template and tool schemas included) and the time the server takes to read them, for the default agent with the
tool loop (what every model got before `loop: auto`), the default agent as `auto` sets it up for a small model (edit
loop, whole files), the built-in editor, and the default agent with the tool loop and `edit_format: whole`.

Needs the local model served (`agent-tasks models local serve`); the prompt cache is off for every request.

    python bench/bench_prompt.py [--api-base http://127.0.0.1:8089/v1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AGENT_TASKS_HOME", tempfile.mkdtemp(prefix="bench-prompt-"))

from tasks_lib.agent.catalog import find_agent  # noqa: E402
from tasks_lib.agent.edit_loop import CLOSING  # noqa: E402
from tasks_lib.agent.modes import choose_modes  # noqa: E402
from tasks_lib.agent.prompt import build_system_prompt, initial_messages, named_files  # noqa: E402
from tasks_lib.agent.tool_specs import tool_schema  # noqa: E402

TASK = "add() in calc.py returns a - b but must return a + b. Fix calc.py."
CALC = "def add(a, b):\n    return a - b\n\n\ndef multiply(a, b):\n    return a * b\n"
SMALL = "llamafile/qwen2.5-coder-1.5b"


def first_request(agent, workspace: Path) -> tuple[list[dict], list[dict]]:
    """(messages, tools) of the agent's first request on the task."""
    prompt, _ = build_system_prompt(agent, workspace)
    files = named_files(workspace, TASK)
    if agent.loop == "edit":
        return initial_messages(prompt, TASK, files, CLOSING), []
    return initial_messages(prompt, TASK, files), [tool_schema(n) for n in agent.tool_names]


def measure(base: str, messages: list[dict], tools: list[dict], rounds: int) -> tuple[int, float]:
    """(prompt tokens, median milliseconds the server took to read them)."""
    body: dict = {"model": "local", "messages": messages, "max_tokens": 1, "temperature": 0, "cache_prompt": False}
    if tools:
        body["tools"] = tools
    tokens, times = 0, []
    for _ in range(rounds):
        reply = httpx.post(f"{base}/chat/completions", json=body, timeout=600).json()
        tokens = reply["usage"]["prompt_tokens"]
        times.append(reply["timings"]["prompt_ms"])
    return tokens, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", default="http://127.0.0.1:8089/v1")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="bench-prompt-ws-"))
    (workspace / "calc.py").write_text(CALC)
    default = find_agent("default")
    cases = {
        "default agent, tool loop (before auto)": default.model_copy(
            update={"loop": "tools", "edit_format": "replace"}
        ),
        "default agent, auto on a 1.5B model": choose_modes(default, SMALL, None, named_files(workspace, TASK))[0],
        "default agent, tool loop, whole files": default.model_copy(update={"loop": "tools", "edit_format": "whole"}),
        "editor agent (loop: edit)": find_agent("editor"),
    }
    rows = []
    for name, agent in cases.items():
        messages, tools = first_request(agent, workspace)
        tokens, ms = measure(args.api_base, messages, tools, args.rounds)
        rows.append((name, agent.loop, len(tools), tokens, ms))
    base_tokens, base_ms = rows[0][3], rows[0][4]
    print(f"first request of the task {TASK!r}, prompt cache off, median of {args.rounds}")
    print(f"{'agent':42} {'loop':6} {'tools':>5} {'tokens':>7} {'read ms':>8} {'tokens x':>9} {'time x':>7}")
    for name, loop, tools, tokens, ms in rows:
        print(
            f"{name:42} {loop:6} {tools:>5} {tokens:>7} {ms:>8.0f} {base_tokens / tokens:>8.2f}x {base_ms / ms:>6.2f}x"
        )


if __name__ == "__main__":
    main()
