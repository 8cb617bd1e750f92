"""The inbox page, /sessions: one line per session, newest first, with filters and paging.

It reads one page of sessions in one indexed query (no conversations, no patches, nothing per row).
"""

from __future__ import annotations

import os

from tasks_lib.domain.session import SessionStatus
from tasks_lib.store import Store
from tasks_lib.web.forms import PAGE_SIZE, InboxQuery
from tasks_lib.web.layout import age, esc, nav, shell, status_badge

TASK_CHARS = 120


def inbox_rows(store: Store, query: InboxQuery) -> tuple[list, bool]:
    """The sessions of this page, and whether there is a next one."""
    rows = store.list_sessions(
        limit=PAGE_SIZE + 1,
        status=query.status or None,
        reviewer=query.reviewer or None,
        repository=query.repository or None,
        workflow=query.workflow or None,
        offset=query.offset,
    )
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _filters(query: InboxQuery) -> str:
    options = ['<option value="">any</option>'] + [
        f'<option value="{esc(s.value)}"{" selected" if s.value == query.status else ""}>{esc(s.value)}</option>'
        for s in SessionStatus
    ]
    fields = "".join(
        f'<label>{name}<input name="{name}" value="{esc(getattr(query, name))}" size="14"></label>'
        for name in ("reviewer", "repository", "workflow")
    )
    return (
        f'<form class="filters" method="get" action="/sessions"><label>status<select name="status">{"".join(options)}'
        f'</select></label>{fields}<button type="submit">Filter</button><a href="/sessions">clear</a></form>'
    )


def _line(row) -> str:
    short = esc(row.id[:8])
    name = os.path.basename(row.repository.rstrip("/")) or row.repository
    task = (row.instructions or "").strip().splitlines()[0] if (row.instructions or "").strip() else ""
    task = task if len(task) <= TASK_CHARS else task[:TASK_CHARS] + "…"
    branch = f"@{esc(row.branch)}" if row.branch else ""
    return (
        f'<tr data-session="{esc(row.id)}"><td><a href="/sessions/{esc(row.id)}"><code>{short}</code></a></td>'
        f"<td>{status_badge(row.status)}</td>"
        f'<td title="{esc(row.repository)}">{esc(name)}{branch}</td>'
        f'<td class="wide-only">{esc(row.workflow or "")}</td><td class="wide-only">{esc(row.reviewer or "")}</td>'
        f'<td class="num wide-only">{row.iteration}</td>'
        f'<td class="num wide-only"><span class="add">+{row.lines_added}</span> '
        f'<span class="del-n">−{row.lines_removed}</span></td>'
        f'<td class="num">{esc(age(row.created_at))}</td><td class="task" title="{esc(task)}">{esc(task)}</td></tr>'
    )


def inbox_page(rows: list, query: InboxQuery, more: bool, error: str = "") -> str:
    """The inbox: filters, the sessions of this page, links to the newer and older pages."""
    parts = ["<header>", nav(), "<h1>Sessions</h1></header><main>", _filters(query)]
    if error:
        parts.append(f'<p class="banner error">{esc(error)}</p>')
    if rows:
        parts.append(
            '<div class="scroll"><table class="list" id="sessions"><thead><tr><th>id</th><th>status</th>'
            '<th>repository@branch</th><th class="wide-only">workflow</th><th class="wide-only">reviewer</th>'
            '<th class="wide-only">iter</th><th class="wide-only">+/−</th><th>age</th><th>task</th></tr></thead>'
            "<tbody>"
        )
        parts += [_line(row) for row in rows]
        parts.append("</tbody></table></div>")
    else:
        parts.append('<p class="meta">No sessions match.</p>')
    links = []
    if query.page > 1:
        links.append(f'<a href="{esc(query.href(page=query.page - 1))}" rel="prev">← newer</a>')
    first = query.offset + 1
    links.append(f'<span class="meta">{first}–{query.offset + len(rows)}</span>' if rows else "")
    if more:
        links.append(f'<a href="{esc(query.href(page=query.page + 1))}" rel="next">older →</a>')
    parts.append(f'<p class="pages">{" ".join(link for link in links if link)}</p></main>')
    return shell("Sessions — agent-tasks", "".join(parts))
