"""What a model's server says about itself — llama.cpp's `/props` (the context it was started with), Ollama's
`/api/show` (the model's trained context and any `num_ctx` it sets) — beside litellm's table, and what follows:
the context the agent can count on, the `num_ctx` to ask Ollama for instead of its small default, and a warning when
the agent's first prompt does not fit."""

from __future__ import annotations

import os
import re

import httpx
from pydantic import BaseModel, Field

OLLAMA_DEFAULT_CONTEXT = 2048  # what Ollama gives a request that names no num_ctx (before 0.6; later 4096)
OLLAMA_WANTED_CONTEXT = 16384  # what we ask Ollama for when the model was trained for at least that much
PROBE_TIMEOUT_S = 3.0


class ModelProfile(BaseModel):
    """What is known about a model and its server, and where each fact came from."""

    model: str
    server: str = "unknown"  # llama.cpp | ollama | unknown
    base_url: str | None = None
    context: int | None = None  # tokens a request can use, as served
    trained_context: int | None = None  # what the model was trained for (Ollama's model_info)
    num_ctx: int | None = None  # what to ask Ollama for
    table_context: int | None = None  # litellm's table
    parameters: int | None = None  # the model's size, as its server says (llama.cpp n_params, Ollama parameter_count)
    priced: bool = False
    found: list[str] = Field(default_factory=list)  # one line per fact, with its source
    problems: list[str] = Field(default_factory=list)

    def window(self) -> int | None:
        """The context the agent can count on: the served one when the server says, else litellm's table."""
        return self.num_ctx or self.context or self.table_context

    def too_small(self, prompt_tokens: int) -> str | None:
        """One line when ``prompt_tokens`` (the agent's first request) would not leave room to work, else None."""
        window = self.window()
        if window is None or prompt_tokens < window * 0.6:
            return None
        return (
            f"{self.model}'s context is {window:,} tokens ({self.server}) but the agent's first request is about "
            f"{prompt_tokens:,}: replies will be cut or fail — start the server with a larger context "
            "(llama-server -c, Ollama num_ctx) or use a shorter agent prompt"
        )


PROXY_PROVIDERS = ("openai", "litellm_proxy")  # APIs a proxy in front of a hosted model speaks


def table_name(model: str) -> str | None:
    """The name litellm's price table knows ``model`` by: itself, or (for a model served through another
    provider's API, e.g. openai/claude-sonnet-4-5 behind a proxy) its name without the provider; None when neither."""
    import litellm

    provider, _, bare = model.partition("/")
    for name in (model, bare if provider in PROXY_PROVIDERS else None):
        if name:
            try:
                litellm.get_model_info(name)
                return name
            except Exception:  # not in litellm's table
                continue
    return None


def model_facts(model: str) -> tuple[int | None, bool]:
    """(context window in tokens or None, whether litellm knows the model's price)."""
    import litellm  # seconds to import: only when a model is first looked up

    litellm.suppress_debug_info = True
    known = table_name(model)
    if known is None:
        return None, False
    info = litellm.get_model_info(known)
    window = info.get("max_input_tokens") or info.get("max_tokens")
    priced = bool(info.get("input_cost_per_token") or info.get("output_cost_per_token"))
    return (int(window) if window else None), priced


def base_url(model: str, api_base: str | None = None, environ: dict[str, str] | None = None) -> str | None:
    """Where the model is served: the agent's api_base, else the provider's variable (OPENAI_API_BASE for
    openai/..., OLLAMA_API_BASE or localhost:11434 for ollama/..., LLAMAFILE_API_BASE or 127.0.0.1:8080 for
    llamafile/..., else the embedded local model's announced address); without a trailing /v1."""
    environ = dict(os.environ) if environ is None else environ
    provider = model.split("/", 1)[0] if "/" in model else ""
    url = api_base
    if url is None and provider in ("ollama", "ollama_chat"):
        url = environ.get("OLLAMA_API_BASE") or "http://localhost:11434"
    if url is None and provider in ("openai", "hosted_vllm"):
        url = environ.get("OPENAI_API_BASE") or environ.get("OPENAI_BASE_URL")
    if url is None and provider == "llamafile":
        from tasks_lib.agent.local_endpoint import served_base

        url = environ.get("LLAMAFILE_API_BASE") or served_base() or "http://127.0.0.1:8080/v1"
    return re.sub(r"/v1/?$", "", url.rstrip("/")) if url else None


def endpoint_problem(model: str, api_base: str | None = None, timeout_s: float = 2.0) -> str | None:
    """A line saying that a self-hosted model's server does not answer, with what to do; None when it answers (any
    HTTP reply counts) or the model is hosted (nothing is sent to a provider here)."""
    url = base_url(model, api_base)
    if url is None:
        return None
    try:
        httpx.get(f"{url}/v1/models", timeout=timeout_s)
    except httpx.HTTPError as exc:
        why = "nothing listens there" if isinstance(exc, httpx.ConnectError) else type(exc).__name__
        provider = model.split("/", 1)[0]
        where = {"ollama": "OLLAMA_API_BASE", "ollama_chat": "OLLAMA_API_BASE", "llamafile": "LLAMAFILE_API_BASE"}
        variable = where.get(provider, "OPENAI_API_BASE")
        return (
            f"the server of {model} at {url} does not answer ({why}): start it, or point {variable} (or the "
            "agent's api_base) at it; with no server, agent-tasks up --local-model serves one here"
        )
    return None


def read_profile(model: str, api_base: str | None = None, timeout_s: float = PROBE_TIMEOUT_S) -> ModelProfile:
    """Ask the model's server what it is, and litellm's table what it knows; never raises (problems are listed)."""
    profile = ModelProfile(model=model, base_url=base_url(model, api_base))
    profile.table_context, profile.priced = model_facts(model)
    if profile.table_context:
        profile.found.append(f"litellm's table: context {profile.table_context:,} tokens")
    if profile.base_url is None:
        return profile
    name = model.split("/", 1)[1] if "/" in model else model
    with httpx.Client(timeout=timeout_s) as client:
        if model.startswith(("ollama/", "ollama_chat/")):
            _ollama(client, profile, name)
        else:
            _llama_cpp(client, profile)
    return profile


def _llama_cpp(client: httpx.Client, profile: ModelProfile) -> None:
    try:
        reply = client.get(f"{profile.base_url}/props")
        props = reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        profile.problems.append(f"{profile.base_url}/props: {type(exc).__name__}")
        return
    if not isinstance(props, dict):
        return  # not llama.cpp (an OpenAI-compatible server without /props)
    settings = props.get("default_generation_settings") or {}
    n_ctx = settings.get("n_ctx") or props.get("n_ctx")
    if n_ctx:
        profile.server, profile.context = "llama.cpp", int(n_ctx)
        slots = props.get("total_slots") or 1
        profile.found.append(f"llama.cpp /props: context {int(n_ctx):,} tokens ({slots} slot{'s' * (slots != 1)})")
    try:
        listed = client.get(f"{profile.base_url}/v1/models").json()
        params = ((listed.get("data") or [{}])[0].get("meta") or {}).get("n_params")
    except (httpx.HTTPError, ValueError, AttributeError, IndexError):
        return
    if isinstance(params, int) and params > 0:
        profile.parameters = params
        profile.found.append(f"llama.cpp /v1/models: {params / 1e9:.1f}B parameters")


def _ollama(client: httpx.Client, profile: ModelProfile, name: str) -> None:
    try:
        reply = client.post(f"{profile.base_url}/api/show", json={"model": name})
        shown = reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        profile.problems.append(f"{profile.base_url}/api/show: {type(exc).__name__}")
        return
    if not isinstance(shown, dict):
        profile.problems.append(f"{profile.base_url}/api/show: the server does not know {name}")
        return
    profile.server = "ollama"
    info = shown.get("model_info") or {}
    trained = next((int(v) for k, v in info.items() if k.endswith(".context_length")), None)
    match = re.search(r"^num_ctx\s+(\d+)", shown.get("parameters") or "", re.MULTILINE)
    profile.trained_context = trained
    params = info.get("general.parameter_count")
    if isinstance(params, int) and params > 0:
        profile.parameters = params
        profile.found.append(f"ollama /api/show: {params / 1e9:.1f}B parameters")
    profile.context = int(match.group(1)) if match else OLLAMA_DEFAULT_CONTEXT
    where = "its Modelfile's num_ctx" if match else "Ollama's default for a request without num_ctx"
    profile.found.append(
        f"ollama /api/show: trained for {trained or 'an unknown number of'} tokens; {where} is {profile.context:,}"
    )
    if trained and trained > profile.context:
        profile.num_ctx = min(trained, OLLAMA_WANTED_CONTEXT)
        profile.found.append(f"each request will ask for num_ctx {profile.num_ctx:,}")
