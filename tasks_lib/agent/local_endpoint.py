"""Where the embedded local model is served, if it is: `agent-tasks models local serve` (or `up --local-model`)
announces its address in a small file beside the cached weights, and sessions with no model configured use it.

It is reached through litellm's `llamafile/` provider (OpenAI-compatible, its own LLAMAFILE_API_BASE, no key), so
it never takes the place of a real OpenAI endpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

LOCAL_MODEL = "llamafile/qwen2.5-coder-1.5b"
DEFAULT_PORT = 8089


def cache_dir() -> Path:
    """Where the local model's weights and server build are cached, shared by every home on this machine."""
    from tasks_lib.config import load_settings

    return load_settings().model_cache


def _state_file() -> Path:
    return cache_dir() / "serving.json"


def announce(base: str) -> None:
    """Record that this process serves the local model at ``base`` (``http://127.0.0.1:PORT/v1``)."""
    _state_file().parent.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps({"pid": os.getpid(), "base": base, "model": LOCAL_MODEL}))


def withdraw() -> None:
    """Forget the announcement (the server stopped)."""
    _state_file().unlink(missing_ok=True)


def served_base() -> str | None:
    """The address of the local model as announced, when its process lives and the server answers; else None."""
    try:
        state = json.loads(_state_file().read_text())
        os.kill(int(state["pid"]), 0)
        base = str(state["base"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return base if answers(base) else None


def answers(base: str) -> bool:
    """True when the llama.cpp server at ``base`` (``…/v1``) says it is ready."""
    import httpx

    try:
        return httpx.get(f"{base.removesuffix('/v1')}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def local_api_base(model: str, environ: dict[str, str] | None = None) -> str | None:
    """For a `llamafile/` model with no LLAMAFILE_API_BASE set: the announced local server's address; else None."""
    environ = dict(os.environ) if environ is None else environ
    if not model.startswith("llamafile/") or environ.get("LLAMAFILE_API_BASE"):
        return None
    return served_base()
