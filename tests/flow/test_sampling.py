"""A small model answers greedily on a single attempt and keeps the server's sampling when best-of-N runs several
(the measurement behind it: README, *Sampling that pays*). What the model server receives is what is checked."""

from __future__ import annotations

from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import lanes, run_task, write_agent

SMALL = "openai/tiny-coder-1.5b"  # small by its name: 1.5B parameters


def _writes(name: str) -> list[dict]:
    return [calls(tool("write_file", path=name, content="x\n")), calls(tool("finish", summary=f"Wrote {name}."))]


def test_a_small_model_alone_is_asked_at_temperature_0(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "plain.md", "name: plain\nloop: tools")
    server = scripted(responder=lanes(_writes("a.txt")))
    result = run_task(repo, "Write a.txt", agent=str(agent), model=SMALL)
    assert result.status.value == "completed", result.reason
    bodies = server.agent_requests()
    assert bodies and all(b.get("temperature") == 0 for b in bodies)
    assert store.get_session(result.session_id).agent_spec["temperature"] == 0, "a resumed run goes on greedily"


def test_best_of_n_on_a_small_model_and_a_set_temperature_are_left_to_sample(repo, scripted, store, tmp_path):
    agent = write_agent(tmp_path / "plain.md", "name: plain\nloop: tools")
    server = scripted(responder=lanes(_writes("a.txt"), _writes("b.txt")))
    result = run_task(repo, "Write a file", agent=str(agent), model=SMALL, attempts=2)
    assert result.status.value == "completed", result.reason
    assert len(server.agent_requests()) == 4 and all("temperature" not in b for b in server.agent_requests())
    warm = write_agent(tmp_path / "warm.md", "name: warm\nloop: tools\ntemperature: 0.7")
    server.requests.clear()
    server.responder = lanes(_writes("c.txt"))
    result = run_task(repo, "Write c.txt", agent=str(warm), model=SMALL)
    assert result.status.value == "completed", result.reason
    assert {b.get("temperature") for b in server.agent_requests()} == {0.7}
