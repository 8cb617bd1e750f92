"""Every setting of agent-tasks, declared once: its AGENT_TASKS_* variable, type, default and what it does.

`load_settings()` reads them from the environment (an empty variable counts as unset); `agent-tasks config` shows
the values in force and where each came from. A value that cannot be used is a SettingsError naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from tasks_lib.domain.limits import LimitsLayer
from tasks_lib.errors import AgentTasksError

LOCAL_API = "http://127.0.0.1:4200/api"  # where `agent-tasks up` serves by default
DIFF_MAX_FILES, DIFF_MAX_BYTES, DIFF_MAX_FILE_BYTES = 2000, 5_000_000, 1_000_000  # what a stored patch keeps
MIRROR_LOCK_TIMEOUT_S = 600 + 2 * 60  # longer than one holder's fetch (600 s) and setting its HEAD (2 × 60 s) can take


def setting(default: Any = None, *, env: str, about: str, secret: bool = False, **kwargs: Any) -> Any:
    """A field of Settings read from the variable ``env``, with a one-line description."""
    return Field(default, description=about, json_schema_extra={"env": env, "secret": secret}, **kwargs)


def _default_home() -> Path:
    return Path.home() / ".agent-tasks"


class Settings(BaseModel):
    """The configuration of one process, from its AGENT_TASKS_* variables."""

    # where things are kept
    home: Path = Field(
        default_factory=_default_home,
        description="Where the store, mirrors, workspaces and sandboxes live (default ~/.agent-tasks).",
        json_schema_extra={"env": "AGENT_TASKS_HOME", "secret": False},
    )
    db_url: str = setting(
        "",
        env="AGENT_TASKS_DB_URL",
        secret=True,
        about="The session store, a SQLAlchemy URL (postgresql+psycopg://...); empty: SQLite in the home.",
    )
    allow_sqlite_deployments: bool = setting(
        False,
        env="AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS",
        about="Let deployment runs use a SQLite store (every run on this machine).",
    )
    # the model
    default_model: str | None = setting(
        env="AGENT_TASKS_MODEL",
        about="The litellm model when neither the run nor the agent names one, e.g. openai/gpt-4o.",
    )
    model_timeout_s: float = setting(
        180, env="AGENT_TASKS_MODEL_TIMEOUT", gt=0, about="Seconds one model call may take."
    )
    model_max_retries: int = setting(
        4, env="AGENT_TASKS_MODEL_MAX_RETRIES", ge=0, about="Retries of a model call after a transient error."
    )
    model_retry_delay_s: float = setting(
        2, env="AGENT_TASKS_MODEL_RETRY_DELAY", ge=0, about="Seconds before the first retry (doubling, with jitter)."
    )
    model_cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "agent-tasks" / "local-model",
        description="Where the embedded local model's weights and llama-server build are cached, for every home on "
        "this machine (default ~/.cache/agent-tasks/local-model).",
        json_schema_extra={"env": "AGENT_TASKS_MODEL_CACHE", "secret": False},
    )
    image_cache: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "agent-tasks" / "images",
        description="Where `agent-tasks image build` keeps base file systems and wheelhouses between builds "
        "(default ~/.cache/agent-tasks/images).",
        json_schema_extra={"env": "AGENT_TASKS_IMAGE_CACHE", "secret": False},
    )
    default_context_window: int = setting(
        128_000,
        env="AGENT_TASKS_DEFAULT_CONTEXT_WINDOW",
        ge=1000,
        about="Tokens of context assumed for a model litellm does not know.",
    )
    # review
    review_timeout_s: int = setting(
        7 * 24 * 3600,
        env="AGENT_TASKS_REVIEW_TIMEOUT",
        gt=0,
        about="Seconds a session waits for a review decision before it expires.",
    )
    review_poll_s: int = setting(
        5, env="AGENT_TASKS_REVIEW_POLL", gt=0, about="Seconds between checks of a blocking pause for a decision."
    )
    max_change_rounds: int = setting(
        5, env="AGENT_TASKS_MAX_CHANGE_ROUNDS", ge=0, about="Change requests a session takes."
    )
    max_retry_rounds: int = setting(3, env="AGENT_TASKS_MAX_RETRY_ROUNDS", ge=0, about="Retries a session takes.")
    review_url: str | None = setting(
        env="AGENT_TASKS_REVIEW_URL", about="Base address of the review pages, for links (`agent-tasks up` sets it)."
    )
    token: str | None = setting(
        env="AGENT_TASKS_TOKEN",
        secret=True,
        about="Your personal token, when the store has people (from `agent-tasks users add` or `users token`); "
        "`agent-tasks login` keeps one in the home instead.",
    )
    trusted_proxy: list[str] = setting(
        [],
        env="AGENT_TASKS_TRUSTED_PROXY",
        about="Addresses or CIDRs (comma-separated) of the authenticating proxy whose user header names the person "
        "on the review pages; the header from any other address is refused.",
    )
    proxy_user_header: str = setting(
        "X-Forwarded-User",
        env="AGENT_TASKS_PROXY_USER_HEADER",
        about="The header the trusted proxy names the person in (X-Forwarded-Email is matched against emails too).",
    )
    signin_max_failures: int = setting(
        5,
        env="AGENT_TASKS_SIGNIN_MAX_FAILURES",
        ge=1,
        about="Failed sign-ins on the review pages, from one address or with one person's token, before sign-in is "
        "refused (429) for the rest of the window.",
    )
    signin_window_s: float = setting(
        300,
        env="AGENT_TASKS_SIGNIN_WINDOW",
        gt=0,
        about="Seconds the review pages count failed sign-ins over (the most a cool-down lasts).",
    )
    # the agent's commands
    sandbox: Literal["auto", "bwrap", "docker", "none"] = setting(
        "auto",
        env="AGENT_TASKS_SANDBOX",
        about="How agent commands are confined by default: auto, bwrap, docker or none.",
    )
    docker_image: str = setting(
        "agent-tasks-base:bookworm",
        env="AGENT_TASKS_DOCKER_IMAGE",
        about="The image agent commands run in with sandbox: docker, when the agent or workflow names none.",
    )
    sandbox_expose: list[str] = setting(
        [], env="AGENT_TASKS_SANDBOX_EXPOSE", about="Host paths (':'-separated) agents may read in the sandbox."
    )
    limits: LimitsLayer = setting(
        None,
        env="AGENT_TASKS_LIMITS",
        about="Default limits of agent commands, e.g. memory=8GiB,processes=2048 (see `limits:` in agent files).",
    )
    bwrap: str | None = setting(
        env="AGENT_TASKS_BWRAP", about="The bubblewrap executable (default: bwrap on the PATH)."
    )
    # git
    git_name: str = setting("agent-tasks", env="AGENT_TASKS_GIT_NAME", about="Author name of accepted commits.")
    git_email: str = setting(
        "agent-tasks@localhost", env="AGENT_TASKS_GIT_EMAIL", about="Author email of accepted commits."
    )
    github_api: str | None = setting(
        env="AGENT_TASKS_GITHUB_API",
        about="The GitHub API for pull requests (default: api.github.com, or HOST/api/v3 for GitHub Enterprise).",
    )
    mirror_lock_timeout_s: float = setting(
        MIRROR_LOCK_TIMEOUT_S,
        env="AGENT_TASKS_MIRROR_LOCK_TIMEOUT",
        ge=0,
        about="Seconds to wait for another process's fetch of the same mirror.",
    )
    diff_max_files: int = setting(
        DIFF_MAX_FILES,
        env="AGENT_TASKS_DIFF_MAX_FILES",
        ge=0,
        about="Files whose patch a stored diff keeps (others: stats only).",
    )
    diff_max_bytes: int = setting(
        DIFF_MAX_BYTES,
        env="AGENT_TASKS_DIFF_MAX_BYTES",
        ge=0,
        about="Bytes of patch a stored diff keeps (files past it: stats only).",
    )
    diff_max_file_bytes: int = setting(
        DIFF_MAX_FILE_BYTES,
        env="AGENT_TASKS_DIFF_MAX_FILE_BYTES",
        ge=0,
        about="Bytes of one file's patch a stored diff keeps (a bigger file: stats only).",
    )
    # workflows and serving
    workflows: Path | None = setting(
        env="AGENT_TASKS_WORKFLOWS", about="The workflows file (default: the shipped deployments/workflows.yaml)."
    )
    webhook_secret: str | None = setting(
        env="AGENT_TASKS_WEBHOOK_SECRET",
        secret=True,
        about="The GitHub webhook secret (AGENT_TASKS_WEBHOOK_SECRET_<NAME>: a named hook's).",
    )
    serve_limit: int = setting(4, env="AGENT_TASKS_SERVE_LIMIT", ge=1, about="Flow runs `serve` runs at once.")
    local_api: str = setting(
        LOCAL_API,
        env="AGENT_TASKS_LOCAL_API",
        about="The Prefect API of `agent-tasks up`, used when PREFECT_API_URL is not set.",
    )
    project_dir: Path | None = setting(
        env="AGENT_TASKS_PROJECT_DIR",
        about="This checkout, where prefect.yaml's deployments and workers find the flows.",
    )
    pool: str | None = setting(env="AGENT_TASKS_POOL", about="The work pool the worker image's default command serves.")
    warm_socket: str | None = setting(
        env="AGENT_TASKS_WARM_SOCKET",
        about="The warm engine's socket (default: "
        "warm.sock in the home). Read by the warm client itself, which starts in milliseconds.",
    )
    warm_verbose: bool = setting(
        False,
        env="AGENT_TASKS_WARM_VERBOSE",
        about="The warm client says when it falls back to a cold start. Read by the warm client itself.",
    )

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in ("auto", "bwrap", "docker", "none"):
                raise ValueError("use auto, bwrap, docker or none")
        return value

    @field_validator("trusted_proxy", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        import ipaddress

        if isinstance(value, str):
            value = value.split(",")
        found = [str(v).strip() for v in value or [] if str(v).strip()]
        for item in found:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an address or CIDR") from None
        return found

    @field_validator("proxy_user_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        value = value.strip()
        if not value or not all(c.isalnum() or c == "-" for c in value):
            raise ValueError("use a header name: letters, digits and '-'")
        return value

    @field_validator("sandbox_expose", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(":")
        return [str(Path(p.strip()).expanduser()) for p in value or [] if p.strip()]

    @field_validator("limits", mode="before")
    @classmethod
    def _limit_pairs(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        pairs = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in pairs if "=" not in p]
        if bad:
            raise ValueError(
                f"expected name=value pairs separated by commas, e.g. memory=8GiB,processes=2048: {bad[0]!r}"
            )
        return {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in pairs)} or None

    @field_validator("diff_max_files", "diff_max_bytes", "diff_max_file_bytes", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return value.replace("_", "") if isinstance(value, str) else value

    @field_validator("home", "workflows", "project_dir", mode="after")
    @classmethod
    def _expanded(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    def model_post_init(self, _context: Any) -> None:
        """The store defaults to SQLite in the home."""
        if not self.db_url:
            self.db_url = f"sqlite:///{self.home / 'agent-tasks.db'}"

    def review_page(self, session_id: str) -> str | None:
        """The address of one session's review page, when review pages are served."""
        return f"{self.review_url.rstrip('/')}/sessions/{session_id}" if self.review_url else None

    def named_webhook_secret(self, name: str, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret of the webhook ``name``: AGENT_TASKS_WEBHOOK_SECRET_<NAME> (dashes as underscores)."""
        environ = os.environ if environ is None else environ
        return environ.get(f"AGENT_TASKS_WEBHOOK_SECRET_{name.upper().replace('-', '_')}") or None

    @property
    def mirrors_dir(self) -> Path:
        """Directory holding one bare mirror per repository."""
        return self.home / "mirrors"

    @property
    def workspaces_dir(self) -> Path:
        """Directory holding one workspace (a checkout with its own git directory) per session."""
        return self.home / "workspaces"

    @property
    def sandboxes_dir(self) -> Path:
        """Directory holding each session's private /tmp and home for its sandboxed commands."""
        return self.home / "sandboxes"


class SettingsError(AgentTasksError, ValueError):
    """A setting in the environment that cannot be used; the message names it."""


def variables() -> dict[str, str]:
    """Each setting's field name by its variable."""
    return {field.json_schema_extra["env"]: name for name, field in Settings.model_fields.items()}  # type: ignore[index]


def given(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the environment sets (by field name), as written (empty variables are unset)."""
    environ = os.environ if environ is None else environ
    return {name: environ[env].strip() for env, name in variables().items() if (environ.get(env) or "").strip()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process from its AGENT_TASKS_* variables (or ``environ``), defaults for the rest."""
    values = given(environ)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        field = Settings.model_fields.get(name)
        env = field.json_schema_extra["env"] if field else "AGENT_TASKS_*"  # type: ignore[index]
        raise SettingsError(f"{env}={values.get(name, '')!r}: {err['msg'].removeprefix('Value error, ')}") from None


class SettingLine(BaseModel):
    """One setting as `agent-tasks config` shows it."""

    variable: str
    value: str  # secrets masked; "" when unset
    source: Literal["environment", "default"]
    description: str


def settings_in_force(environ: Mapping[str, str] | None = None) -> list[SettingLine]:
    """Every setting with the value in force, where it came from and what it does; secret values masked."""
    from tasks_lib.security.secrets import Redactor

    settings = load_settings(environ)
    chosen = given(environ)
    lines = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        value = getattr(settings, name)
        shown = (
            ":".join(value)
            if isinstance(value, list)
            else ""
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        if extra["secret"] and shown:  # type: ignore[index]
            shown = Redactor([])(shown) if "://" in shown else "***"  # a URL keeps its address, its password goes
        lines.append(
            SettingLine(
                variable=extra["env"],
                value=shown,
                description=field.description or "",  # type: ignore[index]
                source="environment" if name in chosen else "default",
            )
        )
    return lines


def deployment_store_problem(settings: Settings) -> str | None:
    """Why a deployment run must not use this store (a SQLite file only this machine sees), or None."""
    if not settings.db_url.startswith("sqlite") or settings.allow_sqlite_deployments:
        return None
    return (
        "this deployment run would record its session in a SQLite file only this machine sees "
        f"({settings.db_url.removeprefix('sqlite:///')}), so a review resumed on another worker would find nothing: "
        "set AGENT_TASKS_DB_URL to the team's PostgreSQL store, or AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS=1 when "
        "every run and review happens on this one machine"
    )
