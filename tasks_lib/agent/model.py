"""The model: one chat-completion call through litellm, with retries for transient errors.

litellm takes seconds to import, so it is imported on first use only.
"""

from __future__ import annotations

import random
import re
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field

from tasks_lib.errors import AgentTasksError

if TYPE_CHECKING:
    from tasks_lib.agent.profile import ModelProfile
    from tasks_lib.agent.spec import AgentSpec
    from tasks_lib.config import Settings


CREDENTIALS_ERROR = re.compile(
    r"missing credentials|api[_ ]key (?:is )?(?:missing|not set|required)|no (?:api )?key is set|"
    r"incorrect api key|invalid api key",
    re.IGNORECASE,
)
CONTEXT_ERROR = re.compile(
    r"context[ _](length|window|size)|maximum context|too many tokens|exceeds? the available "
    r"context|prompt is too long|input is too long",
    re.IGNORECASE,
)


class ModelError(AgentTasksError):
    """A model call that failed for good; ``permanent`` tells a bad request from an outage.

    ``context_exceeded`` marks a request the provider refused because the conversation is too long.
    """

    def __init__(self, message: str, permanent: bool, retries: int = 0, context_exceeded: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.retries = retries
        self.context_exceeded = context_exceeded


class ToolCall(BaseModel):
    """A tool call asked for by the model; arguments as the raw JSON text it sent."""

    id: str
    name: str
    arguments: str


class ModelReply(BaseModel):
    """One completion: text, tool calls, usage and timing."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    retries: int = 0

    def assistant_message(self) -> dict[str, Any]:
        """The reply as a message to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return message


class Model(Protocol):
    """Anything that answers a conversation, optionally with tool calls."""

    name: str

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelReply: ...

    def facts(self) -> tuple[int | None, bool]:
        """(its context window in tokens, or None when unknown; whether its price is known)."""
        ...


def label(model: Model) -> str:
    """The model as steps record it: its name, and its temperature when it was set (two rungs of a ladder may be the
    same model at two temperatures)."""
    temperature = getattr(model, "temperature", None)
    return model.name if temperature is None else f"{model.name} at temperature {temperature:g}"


def litellm():
    """The litellm module, imported on first use and kept quiet."""
    import litellm as _litellm

    _litellm.suppress_debug_info = True
    return _litellm


def check_model_name(model: str) -> None:
    """Raise ValueError when litellm cannot tell which provider serves ``model``."""
    try:
        litellm().get_llm_provider(model)
    except Exception as exc:  # litellm raises its own BadRequestError subclasses here
        raise ValueError(
            f"unknown model {model!r}: litellm cannot tell its provider; use provider/model, "
            "e.g. openai/gpt-4o, anthropic/claude-sonnet-4-5, ollama/llama3"
        ) from exc


def missing_key(model: str) -> str | None:
    """A line saying which provider key ``model`` needs and the environment lacks, or None when nothing is missing.

    Only API keys count: a provider's address (OLLAMA_API_BASE) has a default, and cloud credentials (AWS, Google
    ADC) may come from files litellm cannot see from here.
    """
    try:
        found = litellm().validate_environment(model)
    except Exception:  # a provider litellm cannot check: the first call will say
        return None
    keys = [k for k in found.get("missing_keys") or [] if k.endswith("_API_KEY")]
    if found.get("keys_in_environment") or not keys:
        return None
    names = " or ".join(keys)
    return (
        f"{model} needs {names}, which is not set: export {keys[0]}=... before starting "
        "(any value for a self-hosted server that checks none); or, with no key, serve the local model: "
        "agent-tasks up --local-model"
    )


def _transient_errors(lib) -> tuple[type[BaseException], ...]:
    return (
        lib.RateLimitError,
        lib.Timeout,
        lib.APIConnectionError,
        lib.InternalServerError,
        lib.ServiceUnavailableError,
        lib.BadGatewayError,
    )


MESSAGE_LIMIT = 240


def provider_message(exc: BaseException) -> str:
    """The provider's message without litellm's repeated class-name prefixes."""
    text = str(getattr(exc, "message", None) or exc)
    for _ in range(3):
        text = text.removeprefix("litellm.").strip()
        head, sep, rest = text.partition(": ")
        if sep and (head.endswith("Error") or head.endswith("Exception") or head == "Timeout"):
            text = rest
    text = re.sub(r"^\w+Exception - ", "", text.strip())
    if len(text) > MESSAGE_LIMIT:  # providers add paragraphs of advice: keep whole sentences up to the limit
        cut = text.rfind(". ", 0, MESSAGE_LIMIT)
        text = text[: cut + 1] if cut > 40 else text[:MESSAGE_LIMIT].rstrip() + "…"
    return f"{type(exc).__name__}: {text}"


class LitellmModel:
    """A litellm model string with its call settings."""

    def __init__(
        self,
        name: str,
        api_base: str | None = None,
        temperature: float | None = None,
        max_reply_tokens: int | None = None,
        timeout_s: float = 180,
        max_retries: int = 4,
        retry_delay_s: float = 2.0,
        max_retry_delay_s: float = 60.0,
        profile: ModelProfile | None = None,
    ):
        self.name = name
        self.profile = profile
        self.api_base = api_base
        self.temperature = temperature
        self.max_reply_tokens = max_reply_tokens
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s

    def facts(self) -> tuple[int | None, bool]:
        """(context window in tokens or None, whether litellm knows the model's price); the window as the server
        says when it does (llama.cpp, Ollama), else litellm's table."""
        if self.profile is not None:
            return self.profile.window(), self.profile.priced
        from tasks_lib.agent.profile import model_facts

        return model_facts(self.name)

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelReply:
        """One completion; transient errors are retried with exponential backoff and jitter."""
        lib = litellm()
        kwargs: dict[str, Any] = {"model": self.name, "messages": messages, "timeout": self.timeout_s, "max_retries": 0}
        if tools:
            kwargs["tools"] = tools
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_reply_tokens:
            kwargs["max_tokens"] = self.max_reply_tokens
        if self.profile is not None and self.profile.num_ctx:
            kwargs["num_ctx"] = self.profile.num_ctx  # Ollama: a context that fits the agent, not its 2k default
        transient = _transient_errors(lib)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = lib.completion(**kwargs)
            except transient as exc:
                if CREDENTIALS_ERROR.search(str(exc)):  # some providers report a missing key as a server error
                    raise ModelError(provider_message(exc), permanent=True, retries=attempt) from exc
                if attempt >= self.max_retries:
                    raise ModelError(
                        f"{provider_message(exc)} (gave up after {attempt + 1} attempts)",
                        permanent=False,
                        retries=attempt,
                    ) from exc
                delay = min(self.retry_delay_s * 2**attempt, self.max_retry_delay_s)
                time.sleep(delay * (0.5 + random.random() / 2))
                attempt += 1
                continue
            except Exception as exc:  # auth, unknown model, bad request: retrying cannot help
                too_long = isinstance(exc, lib.ContextWindowExceededError) or bool(CONTEXT_ERROR.search(str(exc)))
                raise ModelError(
                    provider_message(exc), permanent=True, retries=attempt, context_exceeded=too_long
                ) from exc
            return self._reply(lib, response, time.monotonic() - started, attempt)

    def _cost(self, lib, response, usage) -> float | None:
        """The call's price: as litellm prices the response, else by the model's name without its provider (a
        hosted model behind an OpenAI-compatible proxy); None when no price is known."""
        try:
            return float(lib.completion_cost(completion_response=response))
        except Exception:  # not priced under the name the response carries
            pass
        from tasks_lib.agent.profile import table_name

        known = table_name(self.name)
        if known is None or usage is None:
            return None
        try:
            prompt, completion = lib.cost_per_token(
                model=known,
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            )
        except Exception:  # priced in a way litellm cannot compute from tokens alone
            return None
        return float(prompt + completion)

    def _reply(self, lib, response, latency: float, retries: int) -> ModelReply:
        message = response.choices[0].message
        usage = getattr(response, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None)
        cost = self._cost(lib, response, usage)
        calls = [
            ToolCall(id=c.id or f"call_{i}", name=c.function.name or "", arguments=c.function.arguments or "{}")
            for i, c in enumerate(message.tool_calls or [])
        ]
        return ModelReply(
            text=message.content or "",
            tool_calls=calls,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cached_tokens=getattr(details, "cached_tokens", 0) or 0,
            cost_usd=cost,
            latency_s=latency,
            retries=retries,
        )


@lru_cache(maxsize=32)
def served_profile(model_name: str, api_base: str | None) -> ModelProfile | None:
    """What a self-hosted model's server says about itself (read once per process); None for hosted models."""
    from tasks_lib.agent.profile import base_url, read_profile

    if base_url(model_name, api_base) is None:
        return None
    return read_profile(model_name, api_base)


def litellm_model(agent: AgentSpec, model_name: str, settings: Settings) -> LitellmModel:
    """The litellm model a session uses: the agent's call settings, the process's timeouts and retries, and what
    its server says about itself (the embedded local model at the address its server announced)."""
    from tasks_lib.agent.local_endpoint import local_api_base

    api_base = agent.api_base or local_api_base(model_name)
    return LitellmModel(
        model_name,
        api_base=api_base,
        temperature=agent.temperature,
        max_reply_tokens=agent.max_reply_tokens,
        timeout_s=settings.model_timeout_s,
        max_retries=settings.model_max_retries,
        retry_delay_s=settings.model_retry_delay_s,
        profile=served_profile(model_name, api_base),
    )
