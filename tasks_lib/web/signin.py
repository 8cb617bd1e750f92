"""Who is at the review pages: in team mode (the store has people) a person signed in with their token (a signed
cookie) or named by a trusted authenticating proxy; in single-user mode nobody, and the pages work as they always
did.

`SignInMiddleware` decides this once per request, before any route: it sets the viewer (for the pages' header and
for decisions, which carry the person to `decision_payload`), sends an anonymous visitor to /signin, and refuses
(403, one line) a proxy's user header from an address that is not the trusted proxy's. A decision it refuses (no
person, a forged, expired or outdated cookie, an untrusted or unknown proxy name) is recorded in the audit and counts
as a failed sign-in of its address. Whether a person may make a given decision is not decided here:
`decision_payload` checks it, and the review gate checks it again where the flow honours it.

Sign-in is rate-limited in the store, so every web process of a store shares the count: after
AGENT_TASKS_SIGNIN_MAX_FAILURES failures within AGENT_TASKS_SIGNIN_WINDOW seconds from one address, or with one
person's token id, sign-in is refused (429) until the oldest of them leaves the window, a right token included.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from tasks_lib.domain.people import Person
from tasks_lib.review.form import DECISIONS
from tasks_lib.security.cookies import COOKIE_LIFETIME_S, read_cookie, server_secret, sign_cookie
from tasks_lib.store import SessionNotFound, Store
from tasks_lib.store.people import (
    forget_signin_failures,
    note_signin_failure,
    person_by_name_or_email,
    person_signed_in,
    record_refusal,
    signin_keys,
    signin_wait,
    team_mode,
    token_id_for,
)
from tasks_lib.web.guard import SECURITY_HEADERS, Guard
from tasks_lib.web.layout import VIEWER, Viewer, esc, shell

COOKIE = "agent_tasks_session"
EMAIL_HEADER = "X-Forwarded-Email"
OPEN_PATHS = ("/healthz", "/favicon.ico", "/static/")  # answered to anyone, in any mode
SIGNIN_PATHS = ("/signin", "/signout")
DECIDE = re.compile(r"^/sessions/([^/]{1,64})/decide$")
NOT_SIGNED_IN = "not signed in"


class Identity(BaseModel):
    """The person behind a request in team mode, and how they were known."""

    model_config = ConfigDict(frozen=True)

    person: Person
    auth: Literal["cookie", "proxy"]


class SigninForm(BaseModel):
    """The sign-in form as posted: the person's token, where to go next, and the form's CSRF token."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(default="", max_length=400)
    next: str = Field(default="/sessions", max_length=2000)
    csrf: str = Field(default="", max_length=200)

    @classmethod
    def parse(cls, body: bytes) -> SigninForm:
        """The form from an ``application/x-www-form-urlencoded`` body (unknown fields ignored)."""
        values = parse_qs(body[:20_000].decode("utf-8", errors="replace"), keep_blank_values=True)
        return cls.model_validate({k: v[0] for k, v in values.items()})


def safe_next(target: str | None) -> str:
    """``target`` when it is a path of this app (never another site: no scheme, no ``//``), else /sessions."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/sessions"
    return target


@dataclass
class SignIn:
    """The sign-in state of one app: its store, where the cookie secret lives, and the trusted proxy."""

    store: Store
    home: Path
    guard: Guard
    trusted_proxy: list[str] = field(default_factory=list)
    user_header: str = "X-Forwarded-User"
    _secret: bytes | None = None
    max_failures: int | None = None  # failed sign-ins per address or person within the window (None: settings)
    window_s: float | None = None  # the rate limit's window in seconds (None: settings)

    def __post_init__(self) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in self.trusted_proxy]
        if self.max_failures is None or self.window_s is None:
            from tasks_lib.config import load_settings

            settings = load_settings()
            self.max_failures = self.max_failures or settings.signin_max_failures
            self.window_s = self.window_s or settings.signin_window_s
        self.limit, self.window = int(self.max_failures), float(self.window_s)

    @property
    def secret(self) -> bytes:
        """The cookie-signing secret (made in the home, mode 0600, on first use)."""
        if self._secret is None:
            self._secret = server_secret(self.home)
        return self._secret

    def trusted(self, address: str | None) -> bool:
        """Whether ``address`` is the trusted proxy's."""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def proxy_names(self, headers: dict[str, str]) -> str | None:
        """The value of the proxy's user header, else of its email header (None when neither is sent)."""
        for name in (self.user_header, EMAIL_HEADER):
            value = headers.get(name.lower(), "").strip()
            if value:
                return value
        return None

    def identify(self, address: str | None, headers: dict[str, str], cookie: str | None) -> Identity | str | None:
        """The person behind a team-mode request, the one line refusing it (a proxy header from an untrusted
        address, or naming nobody known), or None (anonymous)."""
        named = self.proxy_names(headers)
        if named is not None:
            if not self.trusted(address):
                sent = self.user_header if headers.get(self.user_header.lower()) else EMAIL_HEADER
                trust = (
                    f"AGENT_TASKS_TRUSTED_PROXY ({', '.join(self.trusted_proxy)})"
                    if self.trusted_proxy
                    else "AGENT_TASKS_TRUSTED_PROXY, which is not set"
                )
                return f"a {sent} header is honoured only from the trusted proxy, {trust}; not from {address}"
            person = person_by_name_or_email(self.store, named)
            if person is None:
                return f"the proxy names {named!r}, who is not a person of this store (`agent-tasks users add`)"
            return Identity(person=person, auth="proxy")
        found = read_cookie(self.secret, cookie) if cookie else None
        signed = found and person_signed_in(self.store, found.person, found.token_id)
        return Identity(person=signed[0], auth="cookie") if signed else None

    def client(self, scope: Scope, headers: dict[str, str]) -> str:
        """The address a request came from: its peer's, or behind the trusted proxy the last address it forwarded
        for that is not the proxy's own (``X-Forwarded-For``)."""
        peer = (scope.get("client") or ("", 0))[0]
        if not self.trusted(peer):
            return peer
        hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
        untrusted = [h for h in hops if not self.trusted(h)]
        return untrusted[-1] if untrusted else hops[0] if hops else peer

    def cookie_problem(self, cookie: str | None) -> str:
        """Why ``cookie`` (of a request that found nobody) names no one, in words for the audit."""
        if not cookie:
            return NOT_SIGNED_IN
        if read_cookie(self.secret, cookie, now=0) is None:  # at time 0 nothing has expired: the signature fails
            return "a sign-in cookie this server did not sign, or altered (forged)"
        if read_cookie(self.secret, cookie) is None:
            return "an expired sign-in cookie"
        return "a sign-in cookie of a replaced token or a removed person"

    def sign_in(self, address: str, token: str) -> tuple[Person, str] | int | None:
        """The person of ``token`` and the cookie signing them in; or, when ``address`` or the token's person had
        too many failed sign-ins lately, the seconds to wait (checked first: a right token waits too); or None for
        a wrong token, which counts as a failure of both."""
        keys = signin_keys(self.store, address, token)
        wait = signin_wait(self.store, keys, self.limit, self.window)
        if wait is not None:
            return wait
        found = self.cookie_for(token)
        if found is None:
            note_signin_failure(self.store, keys, self.window)
            return None
        forget_signin_failures(self.store, keys[1:])  # the person proved who they are; their address keeps its count
        return found

    def refused_decision(self, session: str, body: bytes, address: str, reason: str) -> None:
        """Record a decision on ``session`` this app refused before any route (nobody known), unless the session
        does not exist or ``address`` is already over the sign-in limit; it counts as a failed sign-in."""
        try:
            session_id = self.store.get_session(session).id
        except SessionNotFound:
            return
        keys = [f"address:{address}"]
        if signin_wait(self.store, keys, self.limit, self.window) is not None:
            return  # a flood fills neither the audit nor the store
        note_signin_failure(self.store, keys, self.window)
        sent = parse_qs(body[:20_000].decode("utf-8", errors="replace")).get("decision", [""])[0]
        record_refusal(self.store, session_id, sent if sent in DECISIONS else None, reason, via="page")

    def cookie_for(self, token: str) -> tuple[Person, str] | None:
        """The person ``token`` belongs to and the cookie value signing them in, or None."""
        found = token_id_for(self.store, token)
        if found is None:
            return None
        person, token_id = found
        return person, sign_cookie(self.secret, person.name, token_id)

    def cookie_header(self, value: str, secure: bool) -> str:
        """The Set-Cookie value: HttpOnly, SameSite=Strict, 12 h, Secure over https (empty value: sign out)."""
        age = COOKIE_LIFETIME_S if value else 0
        flags = f"; Path=/; Max-Age={age}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        return f"{COOKIE}={value}{flags}"

    def over_https(self, scope: Scope, headers: dict[str, str]) -> bool:
        """Whether the browser reached the app over https (directly, or through the trusted proxy saying so)."""
        if scope.get("scheme") == "https":
            return True
        client = (scope.get("client") or ("", 0))[0]
        return self.trusted(client) and headers.get("x-forwarded-proto", "").lower() == "https"


def _cookie(headers: dict[str, str]) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


async def _body(receive: Receive, cap: int = 20_000) -> bytes:
    """The request's body, up to ``cap`` bytes."""
    chunks, size = [], 0
    while size < cap:
        message = await receive()
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    return b"".join(chunks)[:cap]


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *extra, *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SignInMiddleware:
    """ASGI middleware: in team mode, find who is behind each request (`SignIn.identify`), set the viewer, send
    anonymous visitors to /signin (a POST is refused with 403), refuse an untrusted proxy header (403)."""

    def __init__(self, app: ASGIApp, signin: SignIn):
        self.app, self.signin = app, signin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(OPEN_PATHS) or not team_mode(self.signin.store):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = (scope.get("client") or ("", 0))[0]
        found = self.signin.identify(client, headers, _cookie(headers))
        text = [(b"content-type", b"text/plain; charset=utf-8")]
        if isinstance(found, str):
            await self.audit(scope, receive, headers, found)
            await _answer(send, 403, f"refused: {found}\n".encode(), text)
            return
        if found is None and not path.startswith(SIGNIN_PATHS):
            if scope["method"] in ("GET", "HEAD"):
                query = scope.get("query_string", b"").decode("latin-1")
                here = quote(path + (f"?{query}" if query else ""), safe="")
                await _answer(send, 303, b"", [(b"location", f"/signin?next={here}".encode())])
            else:
                await self.audit(scope, receive, headers, self.signin.cookie_problem(_cookie(headers)))
                body = b"refused: sign in first (/signin): this store has people, so only one of them decides\n"
                await _answer(send, 403, body, text)
            return
        scope.setdefault("state", {})["identity"] = found
        viewer = None
        if found is not None:
            signout = self.signin.guard.token("signout") if found.auth == "cookie" else ""
            viewer = Viewer(found.person.name, found.person.role, found.auth, signout)
        reset = VIEWER.set(viewer)
        try:
            await self.app(scope, receive, send)
        finally:
            VIEWER.reset(reset)

    async def audit(self, scope: Scope, receive: Receive, headers: dict[str, str], reason: str) -> None:
        """Record a refused decision (a POST to a session's /decide) in the audit; other requests are not decisions."""
        decide = DECIDE.match(scope.get("path", ""))
        if decide is None or scope["method"] != "POST":
            return
        body = await _body(receive)
        address = self.signin.client(scope, headers)
        await run_in_threadpool(self.signin.refused_decision, decide.group(1), body, address, reason)


def signin_page(csrf: str, next_path: str, error: str | None = None, team: bool = True) -> str:
    """The sign-in page: one field for the person's token (what `agent-tasks users add/token` printed)."""
    if not team:
        body = (
            '<header><h1>Sign in</h1></header><main><p class="banner info">This store has no people '
            '(single-user mode): nobody signs in. <a href="/sessions">Go to the sessions</a>.</p></main>'
        )
        return shell("Sign in — agent-tasks", body)
    banner = f'<p class="banner error" id="banner">{esc(error)}</p>' if error else ""
    body = (
        "<header><h1>Sign in</h1></header><main>"
        f"{banner}"
        "<p>This store has people: sign in with your personal token (the last line of <code>agent-tasks users "
        "add</code> or <code>agent-tasks users token</code>).</p>"
        '<form method="post" action="/signin" class="signin">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<input type="hidden" name="next" value="{esc(safe_next(next_path))}">'
        '<label for="token">Token</label>'
        '<input type="password" id="token" name="token" autocomplete="current-password" required>'
        '<button type="submit" id="signin">Sign in</button></form></main>'
    )
    return shell("Sign in — agent-tasks", body)


def add_signin_routes(app: FastAPI, signin: SignIn) -> None:
    """GET/POST /signin (a token in, a signed cookie out) and POST /signout (the cookie cleared)."""
    guard = signin.guard

    @app.get("/signin", response_class=HTMLResponse)
    def signin_form(request: Request) -> HTMLResponse:
        """The sign-in page (in single-user mode, a note that nobody signs in)."""
        team = team_mode(signin.store)
        return HTMLResponse(signin_page(guard.token("signin"), request.query_params.get("next", ""), team=team))

    @app.post("/signin")
    async def signin_post(request: Request) -> Response:
        """Check the token; on success set the cookie and go where the visitor was going."""
        try:
            form = SigninForm.parse(await request.body())
        except ValidationError:
            return PlainTextResponse("refused: this is not the sign-in form (a field is too long)\n", status_code=422)
        if not guard.token_ok("signin", form.csrf):
            return PlainTextResponse("refused: this sign-in form is out of date; reload it\n", status_code=403)
        headers = {k.lower(): v for k, v in request.headers.items()}
        address = signin.client(request.scope, headers)
        found = await run_in_threadpool(signin.sign_in, address, form.token)  # scrypt: about 50 ms
        if isinstance(found, int):
            line = f"too many sign-in attempts; try again in {found} s"
            page = signin_page(guard.token("signin"), form.next, line)
            return HTMLResponse(page, status_code=429, headers={"retry-after": str(found)})
        if found is None:
            page = signin_page(
                guard.token("signin"),
                form.next,
                "That token is no person's: mistyped, replaced (`agent-tasks users token`) or its person removed.",
            )
            return HTMLResponse(page, status_code=401)
        _, value = found
        answer = RedirectResponse(safe_next(form.next), status_code=303)
        answer.headers["set-cookie"] = signin.cookie_header(value, signin.over_https(request.scope, headers))
        return answer

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        """Clear the cookie and show the sign-in page."""
        form = SigninForm.parse(await request.body())
        if not guard.token_ok("signout", form.csrf):
            return PlainTextResponse("refused: this sign-out form is out of date; reload the page\n", status_code=403)
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = RedirectResponse("/signin", status_code=303)
        answer.headers["set-cookie"] = signin.cookie_header("", signin.over_https(request.scope, headers))
        return answer
