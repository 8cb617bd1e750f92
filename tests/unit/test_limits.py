"""Limits as people write them (agent files, workflows, AGENT_TASKS_LIMITS, the run's request), how they layer, and
how each is held on this host. What a command over a limit meets is in tests/flow/test_limits.py."""

from __future__ import annotations

import pytest

from tasks_lib.domain.limits import GiB, Limits
from tests.helpers import write_agent


def test_sizes_and_durations_read_as_people_write_them():
    limits = Limits().over({"memory": "2GiB", "file_size": "512 MB", "disk": 10_000_000, "cpu_time": "10m"})
    assert limits.memory == 2 * GiB and limits.file_size == 512_000_000 and limits.disk == 10_000_000
    assert limits.cpu_time == 600 and limits.processes == 1024  # untouched fields keep the level below
    assert Limits().over({"processes": "unlimited", "tmp": "none"}).processes is None
    words = Limits().over({"memory": "1536MiB"}).words()
    assert words["memory"] == "1.5 GiB" and words["processes"] == "1,024" and words["cpu_time"] == "30 min"
    with pytest.raises(ValueError, match="'lots' is not a size"):
        Limits().over({"memory": "lots"})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        Limits().over({"processes": 0})


def test_a_session_takes_the_runs_limits_over_the_agents_over_the_settings(tmp_path, monkeypatch):
    from tasks_lib.agent.files import read_agent_file
    from tasks_lib.config import load_settings
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.session.sandbox import session_sandbox

    monkeypatch.setenv("AGENT_TASKS_LIMITS", "memory=8GiB, processes=2048, cpu_time=1h")
    settings = load_settings()
    agent = read_agent_file(write_agent(tmp_path / "a.md", "name: a\nlimits:\n  processes: 256\n  file_size: 64MiB"))
    request = TaskRequest(repository="r", instructions="x", limits={"file_size": "16MiB"})
    limits = session_sandbox(request, agent, "none", settings.limits).limits
    assert (limits.memory, limits.processes, limits.cpu_time, limits.file_size) == (8 * GiB, 256, 3600, 16 * 2**20)
    assert limits.tmp == 2 * GiB  # the built-in default where no level sets it


def test_bad_limits_are_one_clear_line_wherever_they_are_written(tmp_path, monkeypatch):
    from tasks_lib.agent.files import read_agent_file
    from tasks_lib.agent.spec import AgentFileError
    from tasks_lib.config import SettingsError, load_settings
    from tasks_lib.domain.request import TaskRequest

    with pytest.raises(AgentFileError, match="field 'limits'.*unknown field.*memroy"):
        read_agent_file(write_agent(tmp_path / "a.md", "name: a\nlimits: {memroy: 2GiB}"))
    with pytest.raises(AgentFileError, match="field 'limits'.*'two' is not a size"):
        read_agent_file(write_agent(tmp_path / "b.md", "name: b\nlimits: {memory: two}"))
    with pytest.raises(ValueError, match="limits: expected a mapping"):
        TaskRequest(repository="r", instructions="x", limits="4GiB")
    monkeypatch.setenv("AGENT_TASKS_LIMITS", "memory")
    with pytest.raises(SettingsError, match="AGENT_TASKS_LIMITS.*name=value pairs"):
        load_settings()


def test_a_repositorys_own_agent_file_may_not_set_limits(repo):
    from tasks_lib.agent.spec import AgentFileError
    from tests.conftest import git
    from tests.helpers import repo_agent

    (repo / ".agent-tasks" / "agents").mkdir(parents=True)
    write_agent(repo / ".agent-tasks" / "agents" / "greedy.md", "name: greedy\nlimits: {memory: 64GiB}")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a greedy agent")
    with pytest.raises(AgentFileError, match="limits.*only the operator sets what an agent's commands may use"):
        repo_agent(repo, "greedy")


def test_a_workflow_hands_its_limits_to_the_runs_it_starts(tmp_path):
    from deployments.workflows import WorkflowError, load_workflows

    path = tmp_path / "workflows.yaml"
    path.write_text(
        "workflows:\n  - name: nightly\n    request: {repository: r, instructions: x}\n    limits: {memory: 1GiB}\n"
    )
    (workflow,) = load_workflows(path)
    assert workflow.request_parameters()["limits"] == {"memory": "1GiB"}
    path.write_text("workflows:\n  - name: bad\n    request: {repository: r, instructions: x}\n    limits: {ram: 1}\n")
    with pytest.raises(WorkflowError, match="workflow bad: limits: .*unknown field.*ram"):
        load_workflows(path)


def test_the_limits_line_says_how_each_limit_is_held_here():
    from tasks_lib.environments.cgroups import CgroupSupport
    from tasks_lib.environments.limits import describe_limits

    v1 = CgroupSupport(version=1, memory=tmp_dir(), pids=tmp_dir())
    line = describe_limits(Limits(), v1)
    assert line.startswith("memory 4 GiB (cgroup v1), processes 1,024 (cgroup v1), CPU 30 min per process (rlimit)")
    bare = describe_limits(
        Limits(), CgroupSupport(problem="the cgroup v1 memory and pids hierarchies are not writable")
    )
    assert "memory 4 GiB (rlimit on data, per process)" in bare
    assert "processes 1,024 (not enforced: the cgroup v1 memory and pids hierarchies are not writable)" in bare


def tmp_dir():
    import tempfile
    from pathlib import Path

    return Path(tempfile.gettempdir())


def test_cgroup_v2_is_used_where_delegated_and_v1_where_writable(tmp_path):
    """The detection and the files written, on folders laid out as the kernel lays them out (this machine runs v1;
    the kernel's own enforcement is in tests/flow/test_limits.py)."""
    from tasks_lib.environments.cgroups import CommandCgroup, find_support

    v2 = tmp_path / "v2"
    mine = v2 / "user.slice" / "me.scope"
    mine.mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    for name, text in (("cgroup.procs", ""), ("cgroup.subtree_control", "memory pids\n")):
        (mine / name).write_text(text)
    support = find_support(v2, {"": "/user.slice/me.scope"})
    assert (support.version, support.memory, support.pids) == (2, mine, mine)
    group = CommandCgroup(support, 2 * GiB, 64)
    assert (group.memory / "memory.max").read_text() == str(2 * GiB) and (group.pids / "pids.max").read_text() == "64"
    assert group.join_files == [str(group.memory / "cgroup.procs")]
    (mine / "cgroup.subtree_control").write_text("cpu\n")  # not delegated with memory and pids
    assert find_support(v2, {"": "/user.slice/me.scope"}).version is None

    v1 = tmp_path / "v1"
    for controller, own in (("memory", "process_api/x"), ("pids", "")):
        (v1 / controller / own).mkdir(parents=True, exist_ok=True)
        (v1 / controller / own / "cgroup.procs").write_text("")
    support = find_support(v1, {"memory": "/process_api/x", "pids": "/"})
    assert (support.version, support.memory, support.pids) == (1, v1 / "memory/process_api/x", v1 / "pids")
    group = CommandCgroup(support, GiB, 10)
    assert (group.memory / "memory.limit_in_bytes").read_text() == str(GiB)
    assert len(group.join_files) == 2
