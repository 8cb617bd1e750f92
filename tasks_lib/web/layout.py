"""The frame every review page shares, and the one escaping helper all HTML here goes through."""

from __future__ import annotations

import html
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any, NamedTuple

from tasks_lib.web.assets import CSS_VERSION, JS_VERSION


class Viewer(NamedTuple):
    """Who is looking at a page in team mode: the person, their role, how they were known (cookie or proxy), and
    the token of the sign-out form (cookie sign-ins only)."""

    person: str
    role: str
    auth: str
    signout_token: str = ""


# Set per request by the sign-in middleware (web/signin.py); None in single-user mode.
VIEWER: ContextVar[Viewer | None] = ContextVar("agent_tasks_viewer", default=None)


def esc(value: Any) -> str:
    """Text made safe for HTML content and quoted attributes (None is empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def age(when: str | datetime | None) -> str:
    """A short age like '5m', '3h', '2d' for a datetime or an ISO timestamp."""
    from tasks_lib.cli.common import age as short_age

    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return short_age(when)


def stamp(when: str | datetime | None) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM:SS UTC' (empty for none)."""
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def status_badge(status: str) -> str:
    """The status as a coloured label."""
    return f'<span class="status st-{esc(status)}">{esc(status)}</span>'


class Watch(NamedTuple):
    """How a page follows a session that may still change: the script asks ``state_url`` every few seconds
    and loads ``reload_url`` when the answer is no longer ``state``; without a script, ``noscript_refresh``
    (if any) is reloaded every few seconds."""

    state_url: str
    state: str
    reload_url: str
    noscript_refresh: str | None = None


def shell(title: str, body: str, *, script: bool = False, draft_key: str = "", watch: Watch | None = None) -> str:
    """A whole page: head (stylesheet, the refresh of `Watch` for browsers without script), body, script."""
    head = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f'<link rel="stylesheet" href="/static/review.css?v={CSS_VERSION}">',
    ]
    attrs = f' data-draft-key="{esc(draft_key)}"'
    if watch:
        if watch.noscript_refresh:
            head.append(
                f'<noscript><meta http-equiv="refresh" content="5;url={esc(watch.noscript_refresh)}"></noscript>'
            )
        attrs += (
            f' data-state-url="{esc(watch.state_url)}" data-state="{esc(watch.state)}"'
            f' data-reload-url="{esc(watch.reload_url)}"'
        )
    head.append(f"</head><body{attrs}>")
    tail = f'<script src="/static/review.js?v={JS_VERSION}" defer></script>' if script else ""
    return "".join(head) + body + tail + "</body></html>"


def nav() -> str:
    """The line of links at the top of every page, and in team mode who is signed in (with a sign-out button)."""
    links = '<a href="/sessions">All sessions</a><a href="/sessions?status=awaiting_review">Awaiting review</a>'
    viewer = VIEWER.get()
    if viewer is None:
        return f"<nav>{links}</nav>"
    how = "through the proxy" if viewer.auth == "proxy" else "signed in"
    who = (
        f'<span id="viewer" data-person="{esc(viewer.person)}">{esc(viewer.person)} ({esc(viewer.role)}), {how}</span>'
    )
    out = ""
    if viewer.signout_token:
        out = (
            '<form method="post" action="/signout" class="signout">'
            f'<input type="hidden" name="csrf" value="{esc(viewer.signout_token)}">'
            '<button type="submit" id="signout">Sign out</button></form>'
        )
    return f'<nav>{links}<span class="who">{who}{out}</span></nav>'
