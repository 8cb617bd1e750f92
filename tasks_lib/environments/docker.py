"""The `docker` environment: a session's commands run in a container of a project image (its toolchain, not the
worker's), with the workspace bind-mounted at its own path, no network unless the session opens it, and the limits
held by Docker itself (memory and swap, processes, CPU time and file size as rlimits; disk watched as elsewhere).

One container per environment and network mode, started on the first command and removed when the environment
goes (or by the next environment on this host, if the worker died): `sleep` under Docker's init, every command a
`docker exec` in it. What a command sees: the image's file system read-only, the workspace writable (its `.git`
read-only), the session's private /tmp with `HOME=/tmp/home`, the mirror's objects read-only — and nothing else of
the host: no home, no store, no sockets, no other sessions. Every capability is dropped and no process may gain
privileges. Whatever a command leaves running is stopped when it ends, as in the bwrap sandbox.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

from tasks_lib.domain.egress import Egress
from tasks_lib.domain.fields import NetworkMode
from tasks_lib.domain.limits import Limits, seconds_text, size_text
from tasks_lib.environments.base import (
    DEFAULT_OUTPUT_CAP,
    Command,
    CommandResult,
    command_env,
    run_process,
    shown,
)
from tasks_lib.environments.egress import SOCKET_INSIDE, EgressGate, bridged
from tasks_lib.environments.limits import SIGXCPU, SIGXFSZ
from tasks_lib.environments.sandboxed import SANDBOX_HOME, SandboxedEnvironment
from tasks_lib.errors import AgentTasksError

DEFAULT_IMAGE = "agent-tasks-base:bookworm"  # what `agent-tasks image build` makes first
LABEL = "agent-tasks.sandbox"
EGRESS_DIR = str(Path(SOCKET_INSIDE).parent / "agent-tasks-egress")
# Runs the command, then stops whatever it left running (kill -1 spares the shell itself and the init).
AFTER = 'bash -c "$1"; code=$?; kill -9 -1 2>/dev/null; exit $code'
SH_AFTER = 'sh -c "$1"; code=$?; kill -9 -1 2>/dev/null; exit $code'
# The container's own cgroup counters (v1 and v2 paths), each line prefixed with its file's name.
COUNTERS = (
    "for f in memory/memory.oom_control memory.events pids/pids.events pids.events; do "
    '[ -r "/sys/fs/cgroup/$f" ] && while read -r k v; do echo "${f##*/} $k $v"; done < "/sys/fs/cgroup/$f"; '
    "done; true"
)
# The container's first process: immune to `kill -1` (a namespace's init), it reaps what commands orphan and ends
# by itself a week later, should nothing remove the container.
INIT = 'end=$(( $(date +%s) + 604800 )); while [ "$(date +%s)" -lt "$end" ]; do sleep 600 & wait $!; done'


class DockerUnavailable(AgentTasksError, RuntimeError):
    """Docker cannot run a session's commands here; the message says why and what to do."""


def describe_docker_limits(limits: Limits) -> str:
    """The limits in force in a session's container, and how each is held, in one line."""
    words = limits.words()

    def held(name: str, how: str) -> str:
        return f"{words[name]} ({how})" if getattr(limits, name) else "unlimited"

    return (
        f"memory {held('memory', 'Docker, swap included, per container')}, "
        f"processes {held('processes', 'Docker pids limit')}, CPU {held('cpu_time', 'rlimit per process')}, "
        f"file {held('file_size', 'rlimit')}, disk {held('disk', 'added to workspace and /tmp, watched')}, "
        f"/tmp {held('tmp', 'watched')}"
    )


def docker_binary() -> str | None:
    """The docker client on the PATH, if any."""
    return shutil.which("docker")


def docker(args: Sequence[str], timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the docker client with ``args``; its output captured as text."""
    binary = docker_binary()
    if binary is None:
        raise DockerUnavailable("the docker client is not installed (apt-get install docker.io)")
    base = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_") or k in ("PATH", "HOME")}
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})}, check=False
    )


def docker_version() -> str:
    """The Docker engine's version once it answers; DockerUnavailable otherwise."""
    try:
        done = docker(["version", "--format", "{{.Server.Version}}"], timeout=20)
    except subprocess.TimeoutExpired:
        raise DockerUnavailable("the Docker engine did not answer within 20 s") from None
    if done.returncode != 0:
        problem = (done.stderr.strip().splitlines() or ["no answer"])[-1]
        raise DockerUnavailable(f"the Docker engine does not answer ({problem}); start dockerd") from None
    return done.stdout.strip()


def image_present(image: str) -> bool:
    """True when the Docker engine holds ``image`` (nothing is pulled)."""
    return docker(["image", "inspect", "--format", "{{.Id}}", image], timeout=20).returncode == 0


def check_image(image: str) -> str:
    """The engine's version when it answers and holds ``image``; DockerUnavailable with what to do otherwise."""
    version = docker_version()
    if not image_present(image):
        hint = "agent-tasks image build" if image == DEFAULT_IMAGE else f"docker build or docker pull {image}"
        raise DockerUnavailable(f"the Docker engine has no image {image} ({hint})")
    return version


def process_space() -> str:
    """Where this process's pid means this process: the host name and the pid namespace. Containers on the host's
    network share its name but not its pids, so the name alone would let one judge another's worker gone."""
    try:
        space = os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        space = "?"
    return f"{socket.gethostname()}.{space}"


def sweep_orphans() -> int:
    """Remove sandbox containers this host (this pid namespace) started for workers that are gone; how many."""
    host = process_space()
    done = docker(
        ["ps", "-a", "--filter", f"label={LABEL}.host={host}", "--format", '{{.ID}} {{.Label "' + LABEL + '.pid"}}']
    )
    gone = []
    for line in done.stdout.split("\n") if done.returncode == 0 else []:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and not _alive(int(parts[1])):
            gone.append(parts[0])
    if gone:
        docker(["rm", "-f", *gone])
    return len(gone)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _counter(text: str, name: str) -> int:
    """The sum of the counters called ``name`` (`oom_kill`, or `FILE KEY`) in COUNTERS' output."""
    total = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and name in (parts[1], f"{parts[0]} {parts[1]}") and parts[2].isdigit():
            total += int(parts[2])
    return total


class _Container:
    """One running container of the environment (per network mode)."""

    def __init__(self, cid: str, shell_after: str):
        self.id, self.after = cid, shell_after
        self.oom_kills = 0
        self.pid_hits = 0


class DockerEnvironment(SandboxedEnvironment):
    """Runs each command of one session by `docker exec` in a container of ``image`` around its workspace."""

    name = "docker"

    def __init__(
        self,
        workspace: str | Path,
        scratch: str | Path,
        image: str = DEFAULT_IMAGE,
        read_only: bool = False,
        network: NetworkMode = "off",
        env_names: Sequence[str] = (),
        read_only_paths: Sequence[str | Path] = (),
        limits: Limits | None = None,
        egress: Egress | None = None,
    ):
        super().__init__(workspace, scratch, read_only, network, env_names, limits, egress)
        self.image = image
        self.read_only_paths = [str(Path(p).resolve()) for p in read_only_paths if Path(p).exists()]
        self.limits = limits or Limits()
        self.containers: dict[str, _Container] = {}
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _remove_all, self.containers, self.egress)

    def execute(
        self,
        command: Command,
        timeout_s: float,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        network: NetworkMode | None = None,
    ) -> CommandResult:
        """Run the command in this session's container (network ``on`` has a container of its own); whatever it
        starts is stopped when it ends, and a timeout or a limit stops all of it."""
        mode = self.network if network is None else network
        container = self.container("on" if mode == "on" else "off")
        setup = network is not None
        env = command_env(self.env_names, home=SANDBOX_HOME)
        del env["PATH"]  # the image's own PATH: the orchestrator's means nothing in there
        if mode == "allow":
            env.update(self.egress.variables(setup))
        inner = ["sh", "-c", container.after, "command", command if isinstance(command, str) else _quoted(command)]
        if mode == "allow":
            proxy = self.egress.proxy(setup=setup)
            inner = bridged("python3", inner)
            inner[inner.index(SOCKET_INSIDE)] = f"{EGRESS_DIR}/{proxy.socket_path.name}"
        names = sorted(env)
        args = [docker_binary() or "docker", "exec", "-w", str(self.workspace)]
        args += [part for name in names for part in ("-e", name)]  # values travel in the client's environment
        args += [container.id, *inner]
        client_env = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
        client_env.update(env)
        if self.disk is not None:
            self.disk.start()
        result = run_process(args, self.workspace, client_env, timeout_s, output_cap, shown(command))
        if result.timed_out:
            self._stop_all(container)
        limit = self._limit_hit(container, result)
        if limit is None and self.disk is not None:
            limit = self.disk.problem()
        if limit is not None:
            result.limit, result.exit_code = limit, None
        elif result.exit_code == 128 + SIGXFSZ and self.limits.file_size:
            result.note = (
                f"a process went over the file size limit ({size_text(self.limits.file_size)}) and was stopped"
            )
        elif result.exit_code == 128 + SIGXCPU and self.limits.cpu_time:
            result.note = f"a process used up its CPU time limit ({seconds_text(self.limits.cpu_time)}) and was stopped"
        if mode == "allow":
            result.blocked = [b.line() for b in self.egress.proxy(setup=setup).take_blocked()]
        return result

    def container(self, mode: str) -> _Container:
        """The running container for network ``mode`` (`off`: none at all; `on`: Docker's default bridge)."""
        with self._lock:
            if mode not in self.containers:
                self.containers[mode] = self._start(mode)
            return self.containers[mode]

    def _start(self, mode: str) -> _Container:
        sweep_orphans()
        (self.scratch / "home").mkdir(parents=True, exist_ok=True)
        ws = str(self.workspace)
        args = ["run", "-d", "--rm", "--read-only", "--cap-drop", "ALL"]
        args += ["--security-opt", "no-new-privileges", "--ipc", "private"]
        args += ["--user", f"{os.getuid()}:{os.getgid()}", "--network", "bridge" if mode == "on" else "none"]
        args += ["--label", LABEL, "--label", f"{LABEL}.host={process_space()}"]
        args += ["--label", f"{LABEL}.pid={os.getpid()}", "--label", f"{LABEL}.workspace={ws}"]
        args += ["--mount", f"type=bind,source={ws},target={ws}" + (",readonly" if self.read_only else "")]
        if (self.workspace / ".git").exists():
            args += ["--mount", f"type=bind,source={ws}/.git,target={ws}/.git,readonly"]
        args += ["--mount", f"type=bind,source={self.scratch},target=/tmp"]
        for path in self.read_only_paths:
            args += ["--mount", f"type=bind,source={path},target={path},readonly"]
        if self.network == "allow" or mode == "off":
            folder = self._egress_folder()
            args += ["--mount", f"type=bind,source={folder},target={EGRESS_DIR},readonly"]
        args += self._limit_arguments()
        args += ["--entrypoint", "sh", self.image, "-c", INIT]
        done = docker(args, timeout=120)
        if done.returncode != 0:
            problem = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise DockerUnavailable(f"the sandbox container of image {self.image} did not start: {problem}")
        cid = done.stdout.strip()
        has_bash = docker(["exec", cid, "sh", "-c", "command -v bash"]).returncode == 0
        container = _Container(cid, AFTER if has_bash else SH_AFTER)
        counters = docker(["exec", cid, "sh", "-c", COUNTERS]).stdout
        container.oom_kills, container.pid_hits = _counter(counters, "oom_kill"), _counter(counters, "pids.events max")
        return container

    def _egress_folder(self) -> Path:
        if self.egress.folder is None:
            import tempfile

            self.egress.folder = Path(tempfile.mkdtemp(prefix="agent-egress-"))
        return self.egress.folder

    def _limit_arguments(self) -> list[str]:
        limits, args = self.limits, []
        if limits.memory:
            args += ["--memory", str(limits.memory), "--memory-swap", str(limits.memory)]
        if limits.processes:
            args += ["--pids-limit", str(limits.processes)]
        if limits.cpu_time:
            args += ["--ulimit", f"cpu={limits.cpu_time}:{limits.cpu_time + 5}"]
        if limits.file_size:
            args += ["--ulimit", f"fsize={limits.file_size}"]
        return args

    def _stop_all(self, container: _Container) -> None:
        docker(["exec", container.id, "sh", "-c", "kill -9 -1"], timeout=30)

    def _limit_hit(self, container: _Container, result: CommandResult) -> str | None:
        if result.exit_code == 0:
            return None
        counters = docker(["exec", container.id, "sh", "-c", COUNTERS], timeout=30).stdout
        oom, hits = _counter(counters, "oom_kill"), _counter(counters, "pids.events max")
        grew_oom, grew_hits = oom > container.oom_kills, hits > container.pid_hits
        container.oom_kills, container.pid_hits = oom, hits
        if grew_oom:
            self._stop_all(container)
            return f"memory limit {size_text(self.limits.memory)}"
        if grew_hits:
            self._stop_all(container)
            return f"process limit {self.limits.processes:,} (processes and threads at once)"
        return None

    def close(self) -> None:
        """Remove the containers and stop the egress proxies (also done when the environment is collected); the
        next command starts a new container."""
        with self._lock:
            _remove_all(self.containers, self.egress)


def _remove_all(containers: dict[str, _Container], egress: EgressGate) -> None:
    ids = [c.id for c in containers.values()]
    containers.clear()
    if ids:
        try:
            docker(["rm", "-f", *ids], timeout=60)
        except (DockerUnavailable, subprocess.TimeoutExpired, OSError):
            pass
    egress.stop()


def _quoted(command: Sequence[str]) -> str:
    import shlex

    return shlex.join(command)


def wait_gone(container_id: str, timeout_s: float = 20) -> bool:
    """True once the container no longer exists (for tests and clean-up checks)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if docker(["inspect", container_id]).returncode != 0:
            return True
        time.sleep(0.2)
    return False
