"""`network: off | allow | on` as people write it, and the egress proxy's decisions: deny first, subdomains, ports,
private addresses after resolution only when listed exactly, read-only methods, presets. The proxy and the sandbox
against real servers are in tests/flow/test_egress.py."""

from __future__ import annotations

import pytest

from tasks_lib.domain.egress import Egress, parse_host_entry
from tasks_lib.security.egress import EgressPolicy, presets_for


def test_host_entries_read_as_people_write_them():
    assert parse_host_entry("PyPI.org").model_dump() == {"host": "pypi.org", "port": None, "subdomains": False}
    assert parse_host_entry("*.npmjs.org:8443").model_dump() == {"host": "npmjs.org", "port": 8443, "subdomains": True}
    assert parse_host_entry("[fd00::1]:443").host == "fd00::1" and parse_host_entry("10.0.0.5:3141").is_address
    for bad, why in [("http://x.org", "not a host"), ("x.org:http", "port must be a number"), ("a:0", "1 to 65535")]:
        with pytest.raises(ValueError, match=why):
            parse_host_entry(bad)
    with pytest.raises(ValueError, match="'pypi org' is not a host"):
        Egress.model_validate({"allow": ["pypi org"]})


def test_deny_wins_subdomains_are_subdomains_and_a_bare_host_means_the_web_ports():
    policy = EgressPolicy(
        Egress(allow=["*.example.com", "api.test.org", "mirror.test.org:3141"], deny=["bad.example.com"])
    )
    assert policy.refuse_name("a.example.com", 443) is None and policy.refuse_name("a.b.example.com", 80) is None
    assert policy.refuse_name("example.com", 443) == "not in the allow-list"  # *.x is x's subdomains
    assert policy.refuse_name("bad.example.com", 443) == "denied"
    assert policy.refuse_name("api.test.org", 22) == "not in the allow-list"
    assert policy.refuse_name("mirror.test.org", 3141) is None and policy.refuse_name("mirror.test.org", 443)
    assert policy.refuse_name("api.test.org.evil.com", 443) == "not in the allow-list"


def test_private_loopback_and_link_local_addresses_pass_only_when_listed_exactly():
    policy = EgressPolicy(Egress(allow=["internal.test", "10.0.0.5:3141", "*.test"]))
    for address in ("127.0.0.1", "169.254.169.254", "10.0.0.5", "192.168.1.1", "::1", "fe80::1", "::ffff:127.0.0.1"):
        assert "private, loopback or link-local" in policy.refuse_address(address, 443), address
    assert policy.refuse_address("10.0.0.5", 3141) is None  # the internal mirror, listed with its port
    assert policy.refuse_address("10.0.0.5", 443) is not None  # ... on that port only
    assert policy.refuse_address("93.184.216.34", 443) is None
    assert EgressPolicy(Egress(allow=["*.test"], deny=["93.184.216.34"])).refuse_address("93.184.216.34", 443)


def test_read_only_allows_only_get_and_head_and_no_tunnels():
    policy = EgressPolicy(Egress(allow=["x.org"], methods="read-only"))
    assert policy.refuse_method("GET", tunnel=False) is None and policy.refuse_method("HEAD", tunnel=False) is None
    assert policy.refuse_method("POST", tunnel=False) == "read-only: POST is not allowed"
    assert "no tunnels" in policy.refuse_method("CONNECT", tunnel=True)
    assert EgressPolicy(Egress(allow=["x.org"])).refuse_method("POST", tunnel=False) is None


def test_presets_come_from_the_repositorys_manifests_and_the_workers_pip_index(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    (tmp_path / "package.json").write_text("{}")
    assert presets_for(tmp_path) == ["python", "node"]
    monkeypatch.setenv("PIP_INDEX_URL", "http://10.1.2.3:3141/root/pypi/+simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://user:pw@private.example/simple")  # has credentials: left out
    policy = EgressPolicy(Egress(presets=["python"]))
    assert policy.refuse_name("files.pythonhosted.org", 443) is None and policy.refuse_name("pypi.org", 443) is None
    assert policy.refuse_name("10.1.2.3", 3141) is None and policy.refuse_address("10.1.2.3", 3141) is None
    assert policy.refuse_name("private.example", 443) == "not in the allow-list"
    assert policy.refuse_name("registry.npmjs.org", 443) == "not in the allow-list"


def test_levels_add_hosts_and_narrow_methods_and_old_network_words_still_read():
    from tasks_lib.agent.spec import AgentSpec
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.environments.spec import SandboxSpec
    from tasks_lib.session.sandbox import session_sandbox

    agent = AgentSpec(name="a", network="allow", egress={"presets": ["python"], "allow": ["a.org"]})
    request = TaskRequest(repository="r", instructions="x", egress={"allow": ["b.org"], "methods": "read-only"})
    spec = session_sandbox(request, agent, "none")
    assert spec.network == "allow" and spec.setup_network == "allow"
    assert spec.egress.allow == ["a.org", "b.org"] and spec.egress.presets == ["python"]
    assert spec.egress.methods == "read-only"
    assert TaskRequest(repository="r", instructions="x", network=True).network == "on"
    assert TaskRequest(repository="r", instructions="x", network="off").network == "off"
    assert SandboxSpec.model_validate({"kind": "bwrap", "network": True}).network == "on"  # stored by older releases
    with pytest.raises(ValueError, match="'off', 'allow' or 'on'"):
        TaskRequest(repository="r", instructions="x", network="some")


def test_the_cli_keeps_network_and_no_network_as_flags():
    from tasks_lib.cli import network_words

    assert network_words(["run", ".", "--network", "-t", "x"]) == ["run", ".", "--network", "on", "-t", "x"]
    assert network_words(["run", ".", "--no-network"]) == ["run", ".", "--network", "off"]
    assert network_words(["run", ".", "--network", "allow", "--allow-host", "pypi.org"])[3] == "allow"
    assert network_words(["run", ".", "--network"]) == ["run", ".", "--network", "on"]
