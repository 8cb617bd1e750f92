"""Model profiles from the server: a stub llama.cpp `/props` and a stub Ollama `/api/show` (and `/api/generate`,
reached through litellm's real HTTP path) — the context the agent counts on, the num_ctx Ollama is asked for, and
`agent-tasks models check`'s report and warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def stub(routes: dict[str, dict]):
    """An HTTP server on 127.0.0.1 answering each path with its JSON; it keeps the bodies it was sent."""
    seen: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, body: dict | None):
            seen.append((self.path, body or {}))
            reply = routes.get(self.path)
            data = json.dumps(reply).encode()
            self.send_response(200 if reply is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._answer(None)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(json.loads(self.rfile.read(length) or b"{}"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.seen = seen
    server.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def llama_cpp():
    server = stub({"/props": {"default_generation_settings": {"n_ctx": 1024}, "total_slots": 1}})
    yield server
    server.shutdown()


@pytest.fixture
def ollama():
    server = stub(
        {
            "/api/show": {"model_info": {"qwen2.context_length": 32768}, "parameters": "stop <|im_end|>"},
            "/api/generate": {
                "model": "qwen2.5-coder:1.5b",
                "response": "hello",
                "done": True,
                "prompt_eval_count": 7,
                "eval_count": 2,
            },
        }
    )
    yield server
    server.shutdown()


def test_llama_cpp_says_its_context_and_a_prompt_too_big_for_it_is_named(llama_cpp):
    from tasks_lib.agent.profile import read_profile

    profile = read_profile("openai/qwen-local", f"{llama_cpp.url}/v1")
    assert (profile.server, profile.context, profile.window()) == ("llama.cpp", 1024, 1024)
    assert profile.found == ["llama.cpp /props: context 1,024 tokens (1 slot)"]
    assert profile.too_small(400) is None
    assert "context is 1,024 tokens (llama.cpp) but the agent's first request is about 900" in profile.too_small(900)


def test_ollama_is_asked_for_a_context_that_fits_instead_of_its_default(ollama):
    from tasks_lib.agent.model import LitellmModel
    from tasks_lib.agent.profile import read_profile

    profile = read_profile("ollama/qwen2.5-coder:1.5b", ollama.url)
    assert (profile.server, profile.trained_context, profile.context, profile.num_ctx) == ("ollama", 32768, 2048, 16384)
    assert ("/api/show", {"model": "qwen2.5-coder:1.5b"}) in ollama.seen
    model = LitellmModel("ollama/qwen2.5-coder:1.5b", api_base=ollama.url, profile=profile)
    assert model.facts()[0] == 16384
    reply = model.query([{"role": "user", "content": "hi"}])
    assert reply.text == "hello"
    (sent,) = [body for path, body in ollama.seen if path == "/api/generate"]
    assert sent["options"]["num_ctx"] == 16384, sent


def test_a_server_that_is_not_there_is_a_problem_line_not_a_crash():
    from tasks_lib.agent.profile import read_profile

    profile = read_profile("ollama/qwen", "http://127.0.0.1:9")
    assert profile.server == "unknown" and profile.window() is None
    assert profile.problems and "/api/show: ConnectError" in profile.problems[0]


def test_models_check_prints_what_it_found_and_warns(llama_cpp):
    env = {**os.environ, "OPENAI_API_BASE": f"{llama_cpp.url}/v1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "models", "check", "openai/qwen-local"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"openai/qwen-local: llama.cpp server at {llama_cpp.url}" in proc.stdout
    assert "context the agent counts on: 1,024 tokens" in proc.stdout
    assert "warning: openai/qwen-local's context is 1,024 tokens (llama.cpp)" in proc.stdout  # the default agent
