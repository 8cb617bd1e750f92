"""Usage and cost on real flow runs: the stored sums match what the model server reported, a hosted model behind
an OpenAI-compatible proxy is priced by its own name, and `agent-tasks usage` sums by agent, workflow and day.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import run_task, write_agent

FINISH = calls(tool("finish", summary="done"))


def test_usage_sums_match_what_the_model_server_reported(repo, scripted, store):
    server = scripted(
        [
            dict(
                calls(tool("write_file", path="n.txt", content="n\n")),
                prompt_tokens=120,
                completion_tokens=7,
                cached_tokens=50,
            ),
            dict(calls(tool("read_file", path="README.md")), prompt_tokens=300, completion_tokens=11),
            dict(FINISH, prompt_tokens=450, completion_tokens=13),
        ],
        summaries=[{"content": "### What was done\nx", "prompt_tokens": 900, "completion_tokens": 60}],
    )
    result = run_task(repo, "Count tokens")
    row = store.get_session(result.session_id)
    assert (row.prompt_tokens, row.completion_tokens) == (
        server.usage_sent["prompt_tokens"],
        server.usage_sent["completion_tokens"],
    )
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (1770, 91, 50)
    summary = store.latest_summary(row.id)
    facts = summary.facts
    assert (facts["prompt_tokens"], facts["completion_tokens"]) == (1770, 91), "the facts say what the header says"
    assert "1,770 prompt, 91 completion, 50 cached" in summary.markdown
    steps = store.steps(row.id)
    assert [s.prompt_tokens for s in steps] == [120, 300, 450] and steps[0].cached_tokens == 50
    assert all(s.model_latency_s > 0 for s in steps)


def test_a_hosted_model_behind_an_openai_compatible_proxy_is_priced_by_its_own_name(repo, scripted, store):
    import litellm

    server = scripted(
        [
            dict(calls(tool("write_file", path="p.txt", content="p\n")), prompt_tokens=1000, completion_tokens=100),
            dict(FINISH, prompt_tokens=2000, completion_tokens=10),
        ],
        summaries=[{"content": "s", "prompt_tokens": 500, "completion_tokens": 50}],
    )
    result = run_task(repo, "Price me", model="openai/claude-sonnet-4-5")
    row = store.get_session(result.session_id)
    price = litellm.model_cost["claude-sonnet-4-5"]
    sent = server.usage_sent
    assert (sent["prompt_tokens"], sent["completion_tokens"]) == (3500, 160)
    expected = 3500 * price["input_cost_per_token"] + 160 * price["output_cost_per_token"]
    assert row.cost_usd == pytest.approx(expected), "not 'cost unknown'"
    assert store.latest_summary(row.id).facts["cost_usd"] == pytest.approx(expected)


def test_usage_command_sums_by_agent_workflow_and_day(repo, scripted, store, tmp_path):
    other = write_agent(tmp_path / "usage-other.md", "name: usage-other")
    change = dict(calls(tool("write_file", path="u.txt", content="u\n")), prompt_tokens=0, completion_tokens=0)
    scripted(
        [
            change,
            dict(FINISH, prompt_tokens=100, completion_tokens=5),
            change,
            dict(FINISH, prompt_tokens=200, completion_tokens=6),
        ],
        summaries=[{"content": "s", "prompt_tokens": 10, "completion_tokens": 1}] * 2,
    )
    run_task(repo, "Usage one")
    run_task(repo, "Usage two", agent=str(other))

    def usage(by: str) -> list[dict]:
        proc = subprocess.run(
            [sys.executable, "-m", "tasks_lib.cli", "usage", "--by", by, "--json"], capture_output=True, text=True
        )
        return json.loads(proc.stdout)

    by_agent = {g["key"]: g for g in usage("agent")}
    assert by_agent["usage-other"]["sessions"] == 1 and by_agent["usage-other"]["prompt_tokens"] == 210
    assert by_agent["usage-other"]["completion_tokens"] == 7
    all_rows = store.list_sessions(limit=1000)
    assert sum(g["prompt_tokens"] for g in usage("day")) == sum(r.prompt_tokens for r in all_rows)
    assert sum(g["sessions"] for g in usage("workflow")) == len(all_rows)
    assert "(manual)" in {g["key"] for g in usage("workflow")}
