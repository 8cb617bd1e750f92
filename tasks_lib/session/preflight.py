"""Checks made before a run starts, so bad input fails in a second with one clear line."""

from __future__ import annotations

from typing import NamedTuple

from tasks_lib.agent.catalog import RepoReader, find_agent
from tasks_lib.agent.ladder import filled_ladder, on_rung
from tasks_lib.agent.local_endpoint import local_api_base
from tasks_lib.agent.model import check_model_name, missing_key
from tasks_lib.agent.profile import endpoint_problem
from tasks_lib.agent.spec import AgentFileError, AgentSpec
from tasks_lib.config import Settings, SettingsError, load_settings
from tasks_lib.domain.ladder import ModelRung
from tasks_lib.domain.request import BadRequest, TaskRequest
from tasks_lib.environments import SandboxRefused, SandboxSpec
from tasks_lib.git.cli import GitError, message, run_git
from tasks_lib.git.repo import REMOTE_URL, RepositoryError, default_branch, normalize_repository, update_mirror
from tasks_lib.session.sandbox import session_sandbox


def resolve_model(request: TaskRequest, agent: AgentSpec, settings: Settings) -> str:
    """The model string to start with: --model, then the agent file's model, then AGENT_TASKS_MODEL."""
    return resolve_ladder(request, agent, settings)[0].model


def _local() -> str | None:
    """The embedded local model, when this machine serves it (no model configured, no key needed)."""
    from tasks_lib.agent.local_endpoint import LOCAL_MODEL, served_base

    return LOCAL_MODEL if served_base() else None


def resolve_ladder(request: TaskRequest, agent: AgentSpec, settings: Settings) -> list[ModelRung]:
    """The models the session uses in turn, settings filled from the agent: the request's `models`, else its
    `model` alone, else the agent's `models`, else its `model`, else AGENT_TASKS_MODEL, else the local model when
    this machine serves it; each name checked."""
    rungs = request.models or ([ModelRung(model=request.model)] if request.model else None) or agent.models
    single = None if rungs else agent.model or settings.default_model or _local()
    rungs = rungs or ([ModelRung(model=single)] if single else None)
    if not rungs:
        raise BadRequest(
            "no model configured: pass --model (e.g. --model openai/gpt-4o), set 'model:' in the agent file, "
            "or set AGENT_TASKS_MODEL, with the provider's key in its usual variable (e.g. OPENAI_API_KEY); "
            "or, with no key, serve the local model: agent-tasks up --local-model (or agent-tasks models local serve)"
        )
    for rung in rungs:
        try:
            check_model_name(rung.model)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return filled_ladder(agent, rungs)


def check_branch(repository: str, branch: str | None) -> None:
    """Raise RepositoryError when the repository cannot be listed or has no such branch."""
    try:
        listed = run_git("ls-remote", "--heads", "--symref", repository, cwd="/", remote=True, check=False)
    except GitError as exc:
        raise RepositoryError(f"cannot read {repository}: {exc}") from None
    if listed.returncode != 0:
        raise RepositoryError(f"cannot read {repository}: {message(listed)}")
    heads = sorted(
        line.split("\t", 1)[1].removeprefix("refs/heads/")
        for line in listed.text.splitlines()
        if "\trefs/heads/" in line and not line.startswith("ref:")
    )
    if not heads:
        raise RepositoryError(f"{repository} has no branches (is it empty?)")
    if branch is not None and branch not in heads:
        raise RepositoryError(f"unknown branch {branch!r}; branches: {', '.join(heads)}")


def repository_reader(repository: str, branch: str | None, settings: Settings) -> RepoReader:
    """Reads files of the repository at the branch to start from, without a checkout (for agent lookup).

    A local repository is read in place; a remote one through its mirror (fetched on first use).
    """
    state: dict[str, str] = {}

    def ref() -> tuple[str, str]:
        if "ref" not in state:
            if REMOTE_URL.match(repository) and not repository.lower().startswith("file://"):
                mirror, _ = update_mirror(repository, settings.mirrors_dir)
                state["cwd"] = str(mirror)
                state["ref"] = f"refs/remotes/origin/{branch or default_branch(mirror)}"
            else:
                state["cwd"] = repository.removeprefix("file://")
                state["ref"] = branch or "HEAD"
        return state["cwd"], state["ref"]

    def read(rel: str) -> str | None:
        cwd, rev = ref()
        shown = run_git("show", "--no-textconv", f"{rev}:{rel}", cwd=cwd, check=False, timeout_s=60)
        return shown.stdout.decode("utf-8", errors="replace") if shown.returncode == 0 else None

    return read


class Plan(NamedTuple):
    """What a valid request resolves to before checkout."""

    agent: AgentSpec
    model: str
    repository: str
    sandbox: SandboxSpec


def prepare(request: TaskRequest, settings: Settings, verify_branch: bool = False) -> Plan:
    """Check what can be checked before checkout (repository, branch, agent, model, sandbox); cheap checks first.

    Runs started by an event read the repository's agent files from its default branch, never from
    the branch the event names (which may be anyone's pull request).
    """
    try:
        repository = normalize_repository(request.repository)
        if verify_branch:
            check_branch(repository, request.branch)
        agent_branch = None if request.event_started else request.branch
        reader = repository_reader(repository, agent_branch, settings)
        agent = find_agent(request.agent, reader, shadow_builtins=request.shadow_builtins)
    except (RepositoryError, AgentFileError) as exc:
        raise BadRequest(str(exc)) from None
    if request.temperature is not None:
        agent = agent.model_copy(update={"temperature": request.temperature})
    ladder = resolve_ladder(request, agent, settings)
    for rung in ladder:
        lacking = missing_key(rung.model)
        if lacking:
            raise BadRequest(lacking)
    agent, model = on_rung(agent, ladder[0], ladder[1:]), ladder[0].model
    try:
        sandbox = session_sandbox(
            request,
            agent,
            settings.sandbox,  # type: ignore[arg-type]
            settings.limits,
            settings.docker_image,
        )
    except SandboxRefused as exc:
        raise BadRequest(str(exc)) from None
    return Plan(agent, model, repository, sandbox)


def preflight(request: TaskRequest) -> Plan:
    """Validate a request before starting a run from the CLI (raises BadRequest)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise BadRequest(str(exc)) from None
    plan = prepare(request, settings, verify_branch=True)
    for rung in [ModelRung(model=plan.model), *(plan.agent.models or [])]:
        down = endpoint_problem(rung.model, plan.agent.api_base or local_api_base(rung.model))
        if down:  # asked here, by the person starting the run; a flow's own model calls retry an outage
            raise BadRequest(down)
    return plan
