"""The review app: the routes of the inbox, the session pages and the decisions they post.

A decision goes through exactly what `agent-tasks review` uses (`decision_payload`, then `resume_review`):
the paused run resumes through the Prefect API, or the page says why not and nothing is resumed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tasks_lib.config import Settings, load_settings
from tasks_lib.domain.people import Decider
from tasks_lib.domain.session import TERMINAL_STATUSES
from tasks_lib.review.form import DECISIONS
from tasks_lib.session.data import diff_data, session_json
from tasks_lib.store import SessionNotFound, SessionRow, Store
from tasks_lib.web.assets import CSS, JS
from tasks_lib.web.diffview import View, file_fragment
from tasks_lib.web.forms import DecisionForm, FormError, InboxQuery, raw_token
from tasks_lib.web.guard import Guard, GuardMiddleware
from tasks_lib.web.history import with_people
from tasks_lib.web.inbox import inbox_page, inbox_rows
from tasks_lib.web.layout import Watch, esc, nav, shell
from tasks_lib.web.session_page import Banner, Teach, attempt_page, session_page
from tasks_lib.web.signin import Identity, SignIn, SignInMiddleware, add_signin_routes

DEFAULT_PORT = 8766
WORKING = ("pending", "running", "delivering")  # statuses whose page refreshes itself without a script
TERMINAL = {s.value for s in TERMINAL_STATUSES}  # statuses whose page need not watch for changes
LABELS = {"accept": "accept", "request_changes": "request changes", "reject": "reject", "retry": "retry"}
STATIC_CACHE = "public, max-age=31536000, immutable"  # the pages link them with a version in the address


def _view(value: str | None) -> View:
    return "split" if value == "split" else "unified"


def _not_found(message: str) -> HTMLResponse:
    body = f'<header>{nav()}<h1>Not found</h1></header><main><p class="banner error">{esc(message)}</p></main>'
    return HTMLResponse(shell("Not found — agent-tasks", body), status_code=404)


def create_app(
    store: Store | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    public_url: str | None = None,
    secret: bytes | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The review app for ``store`` (default: the configured one), answering as ``host:port`` (and as
    ``public_url``, default AGENT_TASKS_REVIEW_URL); ``secret`` signs its forms (default: random per start).

    In team mode (the store has people) every page needs a person: signed in with their token (a cookie signed with
    the secret kept in the home) or named by the trusted proxy (``settings``: AGENT_TASKS_TRUSTED_PROXY)."""
    if store is None:
        from tasks_lib.store import open_store

        store = open_store()
    settings = settings or load_settings()
    guard = Guard(host, port, public_url if public_url is not None else settings.review_url, secret)
    signin = SignIn(store, settings.home, guard, settings.trusted_proxy, settings.proxy_user_header)
    app = FastAPI(title="agent-tasks review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SignInMiddleware, signin=signin)  # inside the guard: Host and Origin are checked first
    app.add_middleware(GuardMiddleware, guard=guard)
    app.state.store, app.state.guard, app.state.signin = store, guard, signin
    add_signin_routes(app, signin)

    def find(session_id: str) -> SessionRow | None:
        try:
            return store.get_session(session_id)
        except SessionNotFound:
            return None

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        """Liveness, for `agent-tasks up`."""
        return "ok"

    @app.get("/")
    def root() -> RedirectResponse:
        """The inbox is the start page."""
        return RedirectResponse("/sessions", status_code=303)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """No icon (answered, so browsers do not log a missing one)."""
        return Response(status_code=204)

    @app.get("/static/review.css")
    def css() -> Response:
        """The pages' stylesheet."""
        return Response(CSS, media_type="text/css", headers={"cache-control": STATIC_CACHE})

    @app.get("/static/review.js")
    def js() -> Response:
        """The pages' script: line comments and files loaded on demand."""
        return Response(JS, media_type="text/javascript", headers={"cache-control": STATIC_CACHE})

    @app.get("/sessions", response_class=HTMLResponse)
    def inbox(request: Request) -> HTMLResponse:
        """The sessions, newest first, filtered by status, reviewer, repository and workflow, 50 a page."""
        try:
            query = InboxQuery.parse(dict(request.query_params))
        except FormError as exc:
            return HTMLResponse(inbox_page([], InboxQuery(), False, str(exc)), status_code=422)
        rows, more = inbox_rows(store, query)
        return HTMLResponse(inbox_page(rows, query, more))

    @app.get("/sessions/{session_id}", response_class=HTMLResponse)
    def session(session_id: str, request: Request) -> Response:
        """One session's page; a unique prefix of its id redirects to the page under the whole id."""
        row = find(session_id)
        if row is None:
            return _not_found(f"no session {session_id!r}")
        if row.id != session_id:
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/sessions/{row.id}{query}", status_code=307)
        params = request.query_params
        mode = _view(params.get("view"))
        data = with_people(store, row, session_json(store, row))
        banner, refresh = None, None
        here = f"/sessions/{row.id}?view={mode}"
        sent, key = params.get("sent"), params.get("key", "")
        if sent in DECISIONS:
            still_paused = data["status"] == "awaiting_review" and (data.get("review_key") or "") == key
            if still_paused:  # the run has not taken the decision up yet
                banner = Banner(kind="info", text=f"Sent: {LABELS[sent]}. Waiting for the run to take it up…")
                refresh = f"{here}&sent={sent}&key={quote(key)}"
            else:
                banner = Banner(kind="info", text=f"Sent: {LABELS[sent]}. The session is {data['status']} now.")
        elif params.get("proposed"):
            banner = Banner(kind="info", text=PROPOSED.format(params["proposed"][:8]))
        if refresh is None and data["status"] in WORKING:
            refresh = here
        watch = None
        if data["status"] not in TERMINAL:
            watch = Watch(f"/sessions/{row.id}/state", _state(row), here, refresh)
        teach = _kept_for(store, row, getattr(request.state, "identity", None))
        return HTMLResponse(session_page(data, guard.token(row.id), mode, banner, watch=watch, teach=teach))

    @app.get("/sessions/{session_id}/state", response_class=PlainTextResponse)
    def state(session_id: str) -> PlainTextResponse:
        """What the session page watches: a line that changes when the session's status or iteration does."""
        row = find(session_id)
        return PlainTextResponse(_state(row) if row else "gone", headers={"cache-control": "no-store"})

    @app.get("/sessions/{session_id}/files/{index}", response_class=HTMLResponse)
    def file(session_id: str, index: int, request: Request) -> HTMLResponse:
        """One file of the session's latest diff (the ``index``-th), for a file block opened on demand."""
        row = find(session_id)
        diff = store.latest_diff(row.id) if row else None
        if diff is None:
            return HTMLResponse('<p class="note">No such session or diff.</p>', status_code=404)
        fragment = file_fragment(
            diff.patch, index, request.query_params.get("path", ""), _view(request.query_params.get("view"))
        )
        if fragment is None:
            return HTMLResponse(
                '<p class="note">The diff changed since this page was made: reload the page.</p>', status_code=409
            )
        return HTMLResponse(fragment)

    def attempt_diff(row: SessionRow | None, attempt: int):
        """The stored diff of best-of-N attempt ``attempt`` of the session's current ranking, or None."""
        found = (row.candidates or {}) if row else {}
        if not any(c["attempt"] == attempt for c in found.get("ranked", [])):
            return None
        diff = store.latest_diff(row.id, scope=f"attempt-{attempt}")
        return diff if diff is not None and diff.iteration == found.get("iteration") else None

    @app.get("/sessions/{session_id}/attempts/{attempt}", response_class=HTMLResponse)
    def attempt(session_id: str, attempt: int, request: Request) -> HTMLResponse:
        """The diff of one best-of-N attempt, read-only, to compare it with the one in the workspace."""
        row = find(session_id)
        diff = attempt_diff(row, attempt)
        if row is None or diff is None:
            return _not_found(f"no attempt {attempt} of session {session_id!r}")
        page = attempt_page(session_json(store, row), attempt, diff_data(diff), _view(request.query_params.get("view")))
        return HTMLResponse(page)

    @app.get("/sessions/{session_id}/attempts/{attempt}/files/{index}", response_class=HTMLResponse)
    def attempt_file(session_id: str, attempt: int, index: int, request: Request) -> HTMLResponse:
        """One file of an attempt's diff, for a block opened on demand."""
        diff = attempt_diff(find(session_id), attempt)
        fragment = diff and file_fragment(
            diff.patch, index, request.query_params.get("path", ""), _view(request.query_params.get("view"))
        )
        if not fragment:
            return HTMLResponse('<p class="note">No such attempt or file.</p>', status_code=404)
        return HTMLResponse(fragment)

    @app.post("/sessions/{session_id}/decide")
    async def decide(session_id: str, request: Request) -> Response:
        """Send a decision: checked like `agent-tasks review`, then the paused run resumes through Prefect's API."""
        body = await request.body()
        identity: Identity | None = getattr(request.state, "identity", None)
        decider = Decider(person=identity.person.name, auth=identity.auth) if identity else None
        return await run_in_threadpool(_decide, store, guard, session_id, body, decider)

    @app.post("/sessions/{session_id}/propose-rules")
    async def propose_rules(session_id: str, request: Request) -> Response:
        """Start a session proposing the repository's conventions from the reviewer feedback kept for it."""
        body = await request.body()
        identity: Identity | None = getattr(request.state, "identity", None)
        return await run_in_threadpool(_propose_rules, store, guard, session_id, body, identity)

    return app


PROPOSED = (
    "Started from the page of session {}: this session proposes conventions from the reviewer feedback kept for "
    "its repository, and waits for review like any other."
)


def _posted_session(store: Store, guard: Guard, session_id: str, body: bytes, then: str) -> SessionRow | Response:
    """The session a form was posted for, when it exists and the form carries its token; else the answer to send
    (404 for no such session, 403 for a stale or foreign form, whose message ends with ``then``)."""
    try:
        row = store.get_session(session_id)
    except SessionNotFound:
        return _not_found(f"no session {session_id!r}")
    if not guard.token_ok(row.id, raw_token(body)):
        return PlainTextResponse(
            f"refused: this form is out of date or did not come from this app's session page; {then}\n",
            status_code=403,
        )
    return row


def _kept_for(store: Store, row: SessionRow, identity: Identity | None) -> Teach | None:
    """The feedback kept for the session's repository, for its page (None when there is none)."""
    from tasks_lib.review.teachings import run_address, start_refusal
    from tasks_lib.store.people import team_mode
    from tasks_lib.store.teachings import kept_feedback

    items = kept_feedback(store, repository=row.repository)
    if not items:
        return None
    return Teach(
        items=len(items),
        sessions=len({i.session_id for i in items}),
        command=f"agent-tasks rules propose --repo {run_address(items[0].repository)}",
        refusal=start_refusal(identity.person if identity else None, team_mode(store)),
    )


def _propose_rules(store: Store, guard: Guard, session_id: str, body: bytes, identity: Identity | None) -> Response:
    """Start the proposal for the session's repository as the served on-demand workflow's run, recorded as started
    by the signed-in person (team mode: only one whose role starts tasks); else the page again saying why not."""
    from tasks_lib.review.teachings import NoFeedback, ProposalNotStarted, draft_proposal, start_refusal, start_served
    from tasks_lib.store.people import team_mode

    row = _posted_session(store, guard, session_id, body, "reload the page")
    if isinstance(row, Response):
        return row
    person = identity.person if identity else None

    def again(message: str, status: int) -> HTMLResponse:
        data = with_people(store, row, session_json(store, row))
        teach = _kept_for(store, row, identity)
        banner = Banner(kind="error", text=f"Not started: {message}")
        return HTMLResponse(session_page(data, guard.token(row.id), banner=banner, teach=teach), status_code=status)

    refused = start_refusal(person, team_mode(store))
    if refused:
        return again(refused, 403)
    try:
        proposal = draft_proposal(store, row.repository)
        started = start_served(store, proposal, person.name if person else None)
    except NoFeedback as exc:
        return again(str(exc), 409)
    except ProposalNotStarted as exc:
        command = f"agent-tasks rules propose --repo {proposal.repository}"
        return again(f"{exc}; start it from a terminal instead: {command}", 503)
    return RedirectResponse(f"/sessions/{started}?proposed={quote(row.id)}", status_code=303)


def _state(row: SessionRow) -> str:
    return f"{row.status} {row.iteration} {row.status_reason}"


def _refused(
    store: Store, guard: Guard, row: SessionRow, message: str, status: int, draft: DecisionForm | None
) -> HTMLResponse:
    """The session page again, saying why the decision was not sent (with what was typed, to send again)."""
    data = with_people(store, row, session_json(store, store.get_session(row.id)))
    page = session_page(
        data, guard.token(row.id), banner=Banner(kind="error", text=f"Not sent: {message}"), draft=draft
    )
    return HTMLResponse(page, status_code=status)


def _decide(store: Store, guard: Guard, session_id: str, body: bytes, decider: Decider | None) -> Response:
    """Check and send a posted decision as ``decider`` (the signed-in or proxied person; None in single-user
    mode), or answer the page again saying why not."""
    from tasks_lib.review.comments import CommentError, check_comments
    from tasks_lib.review.resume import ResumeRefused, decision_payload, resume_review

    row = _posted_session(store, guard, session_id, body, "reload the page and decide again")
    if isinstance(row, Response):
        return row
    try:
        form = DecisionForm.parse(body)
    except FormError as exc:
        return _refused(store, guard, row, str(exc), 422, None)
    try:
        check_comments(store, row.id, form.comments)  # the check `agent-tasks review --comment` makes too
        payload: dict[str, Any] = decision_payload(
            store,
            row.id,
            form.decision,
            form.feedback,
            form.instructions,
            form.comments,
            form.candidate,
            decider=decider,
        )
    except (ResumeRefused, CommentError) as exc:
        waiting = store.get_session(row.id).status == "awaiting_review"
        return _refused(store, guard, row, str(exc), 422 if waiting else 409, form)
    try:
        resume_review(store, row.id, payload)
    except ResumeRefused as exc:
        return _refused(store, guard, row, str(exc), 409, form)
    return RedirectResponse(
        f"/sessions/{row.id}?sent={form.decision}&key={quote(row.review_key or '')}", status_code=303
    )
