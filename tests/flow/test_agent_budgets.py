"""An agent's budgets on real flow runs: a token budget stops the session with its diff kept, a cost cap on an
unpriced model warns and counts tokens, and a long session shortens old tool outputs to stay in its context window.
"""

from __future__ import annotations

from tasks_lib.agent.context import COMPACTED_MARK, estimate_tokens
from tasks_lib.testing.scripted_server import calls, tool
from tests.flow.flow_logs import run_logs
from tests.helpers import commit_file, run_task, write_agent

FINISH = calls(tool("finish", summary="done"))


def test_token_budget_stops_the_session_with_the_diff_kept(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "tokens.md", "name: tokens\nmax_tokens: 1500")
    scripted(
        [
            dict(calls(tool("write_file", path="t.txt", content="t\n")), prompt_tokens=1000),
            dict(calls(tool("list_files", path=".")), prompt_tokens=1000),
            calls(tool("list_files", path=".")),
        ]
    )
    result = run_task(repo, "Use tokens", agent=str(agent))
    row = store.get_session(result.session_id)
    assert row.status == "stopped" and row.end_reason == "max_tokens" and row.steps_used == 2
    assert row.files_changed == 1
    assert "token limit reached (2020 of 1500 tokens)" in store.latest_summary(row.id).markdown


def test_cost_cap_on_an_unpriced_model_warns_and_counts_tokens(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "capped.md", "name: capped\nmax_cost_usd: 0.01")
    scripted([FINISH])
    result = run_task(repo, "Cheap work", agent=str(agent))
    row = store.get_session(result.session_id)
    assert row.cost_usd is None and row.prompt_tokens > 0
    assert any("litellm has no price for openai/scripted-model" in m for m in run_logs(row.flow_run_id))
    assert "**Cost:** unknown" in store.latest_summary(row.id).markdown


def test_a_long_session_shortens_old_tool_outputs_to_stay_in_the_context_window(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "small.md", "name: small\ncontext_window: 6000\nmax_steps: 20\nworkspace: read-only")
    commit_file(repo, "big.txt", "".join(f"line {i:04d} " + "x" * 60 + "\n" for i in range(60)))  # ~4.3k characters
    # Different line ranges each time (the same call with the same result would count as going round in circles).
    script = [calls(tool("read_file", path="big.txt", start_line=i + 1)) for i in range(12)] + [FINISH]
    server = scripted(script)
    result = run_task(repo, "Read a lot", agent=str(agent))

    assert result.status.value == "completed" and store.get_session(result.session_id).steps_used == 13
    sizes = [estimate_tokens(r["messages"]) for r in server.agent_requests()]
    assert max(sizes) <= 4500, sizes  # 75 % of the 6000-token window
    last = server.agent_requests()[-1]["messages"]
    tool_outputs = [m["content"] for m in last if m["role"] == "tool"]
    assert sum(COMPACTED_MARK in c for c in tool_outputs) >= 8
    assert COMPACTED_MARK not in tool_outputs[-1] and "line 0059" in tool_outputs[-1]
    assert sum(s.compacted for s in store.steps(result.session_id)) >= 8
