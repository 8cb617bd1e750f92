"""The same Exercism exercises through mini-swe-agent, judged as `agent-tasks eval` judges ours.

mini-swe-agent (https://github.com/SWE-agent/mini-swe-agent) with its default config (`mini.yaml`: the `litellm`
model class, one `bash` tool call per step), run in yolo mode with a step limit, against the same OpenAI-compatible
endpoint our eval uses (the local model: `agent-tasks models local serve`). Each exercise gets the prompt our eval
gives (`EvalTask.prompt()`), in a fresh copy of its starting files (tests withheld); afterwards the withheld tests
are put back and the exercise's check runs (`python3 -m unittest …`, unsandboxed here, with a timeout: mini-swe-agent
itself runs the model's commands unsandboxed). One attempt, no fix round. Prints a line per exercise (solved,
steps, tokens, seconds, how it ended) and the totals; --json keeps them.

mini-swe-agent pulls in datasets/pandas/pyarrow, so it lives in a venv of its own that can import this checkout:

    python3 -m venv /tmp/msa && /tmp/msa/bin/pip install mini-swe-agent
    /tmp/msa/bin/python bench/bench_mini_swe_agent.py ../shared/eval-data/exercism-python-edit \
        --tasks leap,grains --api-base http://127.0.0.1:8089/v1 [--step-limit 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MSWEA_COST_TRACKING", "ignore_errors")  # a local model has no price
os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")

from tasks_lib.evals.suite import EvalTask, copy_agent_files, load_suite, restore_withheld  # noqa: E402


def run_one(task: EvalTask, args: argparse.Namespace, work: Path) -> dict:
    """One exercise through mini-swe-agent; what it did and whether the withheld tests pass."""
    import litellm
    import yaml
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.config import builtin_config_dir
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models import get_model

    litellm.suppress_debug_info = True  # its "Provider List" banner for a model without a price
    config = yaml.safe_load((builtin_config_dir / "mini.yaml").read_text())
    repo = work / task.name
    repo.mkdir(parents=True)
    copy_agent_files(task, repo)
    model_config = dict(config.get("model") or {})
    model_config["model_kwargs"] = {
        **model_config.get("model_kwargs", {}),
        "api_base": args.api_base,
        "api_key": "not-needed",
        "temperature": args.temperature,
    }
    model = get_model(args.model, model_config)
    env = LocalEnvironment(**{**(config.get("environment") or {}), "cwd": str(repo), "timeout": 60})
    agent_config = {k: v for k, v in config["agent"].items() if k != "mode"}  # DefaultAgent runs without confirming
    agent_config |= {"step_limit": args.step_limit, "cost_limit": 0, "wall_time_limit_seconds": args.wall_limit}
    if args.trajectories:
        agent_config["output_path"] = Path(args.trajectories) / f"{task.name}.traj.json"
    agent = DefaultAgent(model, env, **agent_config)
    started = time.monotonic()
    try:
        result = agent.run(task.prompt())
        ended = str(result.get("exit_status", "?"))
    except Exception as exc:  # noqa: BLE001 - the bench reports how each run ended
        ended = f"{type(exc).__name__}: {exc}"[:120]
    seconds = time.monotonic() - started
    prompt_tokens = completion_tokens = 0
    for message in agent.messages:
        usage = ((message.get("extra") or {}).get("response") or {}).get("usage") or {}
        prompt_tokens += usage.get("prompt_tokens") or 0
        completion_tokens += usage.get("completion_tokens") or 0
    restore_withheld(task, repo)
    try:
        check = subprocess.run(task.check, shell=True, cwd=repo, capture_output=True, text=True, timeout=60)
        solved = check.returncode == 0
    except subprocess.TimeoutExpired:
        solved = False
    return {
        "task": task.name,
        "solved": solved,
        "steps": agent.n_calls,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "seconds": round(seconds, 1),
        "ended": ended,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--tasks", help="comma-separated exercise names (default: all)")
    parser.add_argument("--model", default="openai/qwen2.5-coder-1.5b")
    parser.add_argument("--api-base", default="http://127.0.0.1:8089/v1")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--step-limit", type=int, default=15)
    parser.add_argument("--wall-limit", type=int, default=900, help="seconds per exercise (mini-swe-agent's own limit)")
    parser.add_argument("--trajectories", help="keep mini-swe-agent's trajectory of each exercise in this folder")
    parser.add_argument("--json")
    args = parser.parse_args()
    tasks = load_suite(args.suite, args.tasks.split(",") if args.tasks else None)
    work = Path(tempfile.mkdtemp(prefix="bench-msa-"))
    rows = []
    try:
        for task in tasks:
            row = run_one(task, args, work)
            rows.append(row)
            tokens = row["prompt_tokens"] + row["completion_tokens"]
            print(
                f"{row['task']:<28}{'solved' if row['solved'] else 'not solved':<12}{row['steps']:>3} steps "
                f"{tokens:>7} tokens {row['seconds']:>7.1f} s  ({row['ended']})",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    solved = [r for r in rows if r["solved"]]
    tokens = [r["prompt_tokens"] + r["completion_tokens"] for r in rows]
    print(
        f"solved {len(solved)} of {len(rows)}; median {statistics.median(tokens) if tokens else 0:.0f} tokens, "
        f"{statistics.median(r['seconds'] for r in rows) if rows else 0:.0f} s per exercise"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
