"""What the two sandboxes (`bwrap` and `docker`) share: a session's workspace and private /tmp, its read-only and
network settings, the variables passed in, the egress proxies and the disk budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tasks_lib.domain.egress import Egress
from tasks_lib.domain.fields import NetworkMode
from tasks_lib.domain.limits import Limits
from tasks_lib.environments.egress import EgressGate
from tasks_lib.environments.limits import DiskBudget

SANDBOX_HOME = "/tmp/home"  # HOME inside a sandbox: in the session's private /tmp (``scratch``)


class SandboxedEnvironment:
    """The set-up common to the sandboxed environments; each subclass adds how its commands run."""

    def __init__(
        self,
        workspace: str | Path,
        scratch: str | Path,
        read_only: bool,
        network: NetworkMode,
        env_names: Sequence[str],
        limits: Limits | None,
        egress: Egress | None,
    ):
        self.workspace = Path(workspace).resolve()
        self.scratch = Path(scratch)
        self.read_only, self.network = read_only, network
        self.env_names = tuple(env_names)
        self.egress = EgressGate(egress or Egress(), self.workspace)
        self.disk = DiskBudget(limits, self.workspace, self.scratch) if limits else None
