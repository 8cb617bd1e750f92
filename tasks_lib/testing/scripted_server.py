"""A small OpenAI-compatible chat-completions server on 127.0.0.1 that replies from a script.

Used by the tests and the benchmark instead of a real model: each test lists the replies (tool
calls, text or HTTP errors) and the agent talks to it through the real litellm HTTP client.
Requests without tools (the summary call) are answered from ``summaries`` or a fixed summary.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_SUMMARY = (
    "### What was done\nScripted summary.\n\n### Why\nBecause the script said so.\n\n### Key changes\n- scripted"
)
Reply = dict[str, Any]


def tool(name: str, **arguments: Any) -> tuple[str, dict[str, Any]]:
    """A scripted tool call."""
    return (name, arguments)


def calls(*tool_calls: tuple[str, dict[str, Any]], text: str = "", **extra: Any) -> Reply:
    """A scripted reply that makes the given tool calls."""
    return {"content": text, "tool_calls": list(tool_calls), **extra}


class ScriptedServer:
    """Serves scripted replies; ``requests`` keeps every request body received, in order."""

    def __init__(
        self,
        script: list[Reply] | None = None,
        summaries: list[Reply] | None = None,
        responder: Callable[[dict[str, Any]], Reply] | None = None,
    ):
        self.script: list[Reply] = list(script or [])
        self.summaries: list[Reply] = list(summaries or [])
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.usage_sent = {"prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        self._counter = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        """Base URL to give litellm (``api_base``)."""
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def agent_requests(self) -> list[dict[str, Any]]:
        """Requests that offered tools (agent steps)."""
        return [r for r in self.requests if r.get("tools")]

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self._counter += 1
            if self.responder is not None:
                return self.responder(body)
            if not body.get("tools"):
                return self.summaries.pop(0) if self.summaries else {"content": DEFAULT_SUMMARY}
            return self.script.pop(0) if self.script else {"content": "(script exhausted)"}

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content") or None}
        if reply.get("tool_calls"):
            message["tool_calls"] = [
                {
                    "id": f"call_{self._counter}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
                for i, (name, args) in enumerate(reply["tool_calls"])
            ]
        prompt = reply.get("prompt_tokens", len(json.dumps(body.get("messages", []))) // 4)
        completion = reply.get("completion_tokens", 10)
        with self._lock:
            self.usage_sent["prompt_tokens"] += prompt
            self.usage_sent["completion_tokens"] += completion
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if "cached_tokens" in reply:
            usage["prompt_tokens_details"] = {"cached_tokens": reply["cached_tokens"]}
        return {
            "id": f"chatcmpl-{self._counter}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.get("tool_calls") else "stop"}
            ],
            "usage": usage,
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes on a kept-alive connection: without this, Nagle
                # and the client's delayed ACK hold every reply back ~40 ms (and hide the product's own cost).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                reply = server._next(body)
                if reply.get("delay"):
                    time.sleep(reply["delay"])
                if reply.get("status"):
                    message = reply.get("message", f"scripted error {reply['status']}")
                    self._send(
                        reply["status"],
                        {"error": {"message": message, "type": "scripted", "code": str(reply["status"])}},
                    )
                    return
                self._send(200, server._completion(body, reply))

        return Handler
