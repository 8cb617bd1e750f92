"""What keeps other web pages away from the review app: Host and Origin checks, a CSRF token, strict headers.

The app listens on 127.0.0.1, but any page the reviewer's browser opens can send requests there, and a
domain that re-resolves to 127.0.0.1 (DNS rebinding) can even read the answers. So every request must name
this app in its ``Host`` header, a request that changes something must come from the app's own pages
(``Origin``/``Sec-Fetch-Site``, when the browser sends them) and carry the token those pages embed, and
every page forbids inline scripts, framing and foreign resources.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Same-origin form posts keep their Origin header (with no-referrer the browser would send "null").
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def _is_loopback_or_any(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return address.is_loopback or address.is_unspecified


class Guard:
    """The addresses this app answers to and the secret its forms are signed with."""

    def __init__(self, host: str, port: int, public_url: str | None = None, secret: bytes | None = None):
        names = {f"[{host}]" if ":" in host else host}
        if _is_loopback_or_any(host):
            names |= set(LOOPBACK_NAMES)
        self.hosts = {f"{name}:{port}".lower() for name in names}
        self.origins = {f"http://{h}" for h in self.hosts}
        if public_url:  # where reviewers reach it (AGENT_TASKS_REVIEW_URL), e.g. through a proxy
            parts = urlsplit(public_url)
            if parts.netloc:
                self.hosts.add(parts.netloc.lower())
                self.origins.add(f"{parts.scheme}://{parts.netloc}".lower())
        self._secret = secret or secrets.token_bytes(32)

    def token(self, session_id: str) -> str:
        """The CSRF token the pages of ``session_id`` embed in their forms (valid until the app restarts)."""
        return hmac.new(self._secret, f"decide:{session_id}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, session_id: str, token: str) -> bool:
        """True when ``token`` is the one this app gave the session's page."""
        return hmac.compare_digest(self.token(session_id), token or "")

    def refusal(self, method: str, headers: dict[str, str]) -> str | None:
        """Why a request must be refused before any route sees it (None: let it through)."""
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return f"this app answers only to {', '.join(sorted(self.hosts))}, not to Host {host or '(none)'}"
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in self.origins:
            return f"a request from {origin} cannot act here: only this app's own pages can"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"a {site} request cannot act here: only this app's own pages can"
        return None


class GuardMiddleware:
    """ASGI middleware: refuse requests `Guard.refusal` names (403), add the security headers to every answer."""

    def __init__(self, app: ASGIApp, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.guard.refusal(scope["method"], headers)
        if refusal is not None:
            body = f"refused: {refusal}\n".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        *SECURITY_HEADERS,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
