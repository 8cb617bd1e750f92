"""One session's run as a value: what it works on, with what, and where it stands, handed to every session and
review module in turn (nothing in the library reaches back into the flow).

The model and the environment come from factories: a flow test hands in a list model with `using_models`,
and no HTTP is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from logging import Logger, LoggerAdapter
from typing import Any

from tasks_lib.agent.budget import SharedBudget
from tasks_lib.agent.loop import Limits, LoopResult
from tasks_lib.agent.model import Model, litellm_model, served_profile
from tasks_lib.agent.prompt import build_system_prompt, initial_messages, named_files
from tasks_lib.agent.spec import AgentSpec
from tasks_lib.config import Settings
from tasks_lib.domain.records import CheckResult, Usage
from tasks_lib.domain.request import BadRequest, TaskRequest, parse_request
from tasks_lib.domain.session import SessionResult, SessionStatus, Workspace
from tasks_lib.environments import Environment, SandboxSpec, make_environment
from tasks_lib.security.secrets import Redactor, mask_variables
from tasks_lib.session.lifecycle import move
from tasks_lib.session.outcome import SessionFailed, session_result
from tasks_lib.store import Store


@dataclass
class Attempt:
    """Best-of-N: where one attempt works and the budget it shares with the others."""

    number: int
    path: str
    environment: Environment
    shared: SharedBudget


ModelFactory = Callable[[AgentSpec, str, Settings], Model]
_models: ContextVar[ModelFactory] = ContextVar("agent_tasks_models", default=litellm_model)


@contextmanager
def using_models(factory: ModelFactory) -> Iterator[None]:
    """Sessions started in this block talk to the models ``factory`` makes (``factory(agent, model_name, settings)``)."""
    token = _models.set(factory)
    try:
        yield
    finally:
        _models.reset(token)


def current_models() -> ModelFactory:
    """The model factory sessions started here use: litellm's, unless a caller chose another with `using_models`."""
    return _models.get()


@dataclass
class SessionContext:
    """A session's run: the store and settings it works with, its request, and — once it has started or been picked
    up again — its agent, model, sandbox, workspace and conversation."""

    store: Store
    session_id: str
    settings: Settings
    request: TaskRequest
    logger: Logger | LoggerAdapter
    models: ModelFactory = field(default_factory=current_models)
    redact: Redactor = field(default_factory=Redactor.from_env)
    # What the request resolved to and where the session works: set when it starts or is restored.
    agent: AgentSpec = field(init=False, repr=False)
    model_name: str = field(init=False, repr=False)
    repository: str = field(init=False, repr=False)
    sandbox: SandboxSpec = field(init=False, repr=False)
    ws: Workspace = field(init=False, repr=False)
    environment: Environment = field(init=False, repr=False)
    # Where the session stands: the iteration, its instructions and the agent's conversation.
    iteration: int = 1
    instructions: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    iteration_start: int | None = None  # where the current iteration began in the conversation
    fresh_start: bool = False  # best-of-N attempts run on fresh starts: the first iteration and retries
    check: CheckResult | None = None  # the latest iteration's check
    reuse_review_key: bool = False  # restored while waiting for review: wait again under the same key
    workspace_was: str = ""  # restored: "existing" or "rebuilt"

    @classmethod
    def open(
        cls,
        store: Store,
        session_id: str,
        settings: Settings,
        request: TaskRequest | dict[str, Any] | None,
        logger: Logger | LoggerAdapter,
    ) -> SessionContext:
        """The context of a claimed session; a request that cannot be read fails the session with one clear line."""
        try:
            parsed = parse_request(request if request is not None else {})
        except BadRequest as exc:
            reason = Redactor.from_env()(str(exc))
            move(store, session_id, SessionStatus.failed, reason)
            logger.error("session %s failed: %s", session_id, reason)
            raise SessionFailed(session_id, reason) from None
        return cls(store, session_id, settings, parsed, logger)

    # --- what the session works with -------------------------------------------------------------

    def model(self) -> Model:
        """The model this session talks to."""
        return self.models(self.agent, self.model_name, self.settings)

    def run_agent(
        self,
        messages: list[dict[str, Any]],
        prior: Usage,
        left: Limits,
        first_step: int,
        attempt: Attempt | None = None,
    ) -> LoopResult:
        """The agent loop on ``messages`` with the session's agent and model, in its workspace (or a best-of-N
        attempt's), from step ``first_step``, within ``left`` of the budget after ``prior`` usage."""
        from tasks_lib.steps.agent_loop import run_agent

        path, environment = (attempt.path, attempt.environment) if attempt else (self.ws.path, self.environment)
        return run_agent(
            self.store,
            self.session_id,
            path,
            environment,
            self.agent,
            self.model(),
            messages,
            self.iteration,
            prior,
            left,
            first_step,
            attempt.shared if attempt else None,
            attempt.number if attempt else None,
        )

    def make_environment(self, path: str | None = None, tmp: str = "tmp") -> Environment:
        """Where this session's commands run: its sandbox around the workspace (or another attempt's, at ``path``)."""
        return make_environment(
            self.sandbox,
            path or self.ws.path,
            self.settings.sandboxes_dir / self.session_id / tmp,
            read_only_paths=[f"{self.ws.mirror}/objects", *self.settings.sandbox_expose],
            hidden_paths=self.hidden_paths(),
        )

    def hidden_paths(self) -> list[str]:
        """What the agent's sandbox hides besides the usual: the home (store, mirrors, other sessions) and the
        hidden check's files."""
        check = self.request.hidden_check
        return [str(self.settings.home), *([check.files] if check else [])]

    def has_check(self) -> bool:
        """True when the agent's work is checked after its loop (its check_command, or the run's hidden check)."""
        return bool(self.agent.check_command or self.request.hidden_check)

    def announce_sandbox(self) -> None:
        """Say which sandbox is in force (a warning when commands run unconfined), and mask the agent's `env:` values."""
        mask_variables(self.sandbox.env)
        self.redact = Redactor.from_env()
        log = self.logger.warning if self.sandbox.kind == "none" else self.logger.info
        log("sandbox: %s", self.sandbox.describe())
        self.logger.info("limits: %s", self.sandbox.describe_limits())

    def settle_modes(self) -> None:
        """Settle an `auto` loop and edit format (and a small model's temperature) for the session's model and the
        files the task names, say what was chosen, and keep it on the session (a resumed run goes on the same way)."""
        from tasks_lib.agent.modes import choose_modes

        profile = served_profile(self.model_name, self.agent.api_base)
        named = named_files(self.ws.path, self.instructions)
        chosen, note = choose_modes(self.agent, self.model_name, profile, named, self.request.attempts)
        if note:
            self.logger.info("agent mode: %s", note)
        self.agent = chosen
        self.store.update_session(self.session_id, agent_spec=self.redact.deep(chosen.model_dump(mode="json")))

    def fresh_conversation(self) -> list[dict[str, Any]]:
        """The opening messages for the current instructions; reports what the conventions cap cut."""
        prompt, notes = build_system_prompt(self.agent, self.ws.path)
        for note in notes:
            self.logger.warning("system prompt: %s", note)
        files = named_files(self.ws.path, self.instructions)
        if self.agent.loop == "edit":
            from tasks_lib.agent.edit_loop import CLOSING

            return initial_messages(prompt, self.instructions, files, CLOSING)
        return initial_messages(prompt, self.instructions, files)

    # --- how it ends -----------------------------------------------------------------------------

    def fail(self, reason: str) -> SessionFailed:
        """End the session as failed; returns the exception to raise."""
        reason = self.redact(reason)
        move(self.store, self.session_id, SessionStatus.failed, reason)
        self.logger.error("session %s failed: %s", self.session_id, reason)
        return SessionFailed(self.session_id, reason)

    def finish(self, status: SessionStatus, reason: str) -> SessionResult:
        """End the session in a terminal status and return its result."""
        move(self.store, self.session_id, status, self.redact(reason))
        self.logger.info("session %s %s: %s", self.session_id, status.value, reason)
        return session_result(self.store, self.session_id)
