"""One session's page, /sessions/<id>: who and what, the decision forms, the summary, the diff, checks,
the history of iterations and reviews, and the step log. Everything shown is escaped: it is the agent's
(untrusted) text or comes from the store, which masks secrets before it keeps anything."""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from tasks_lib.domain.request import trigger_line
from tasks_lib.review.render import markdown_html
from tasks_lib.web.diffview import View, diff_section
from tasks_lib.web.forms import DecisionForm
from tasks_lib.web.layout import Watch, age, esc, nav, shell, stamp, status_badge

ARGUMENT_CHARS = 2000  # of a tool call's arguments shown in the log
RESULT_CHARS = 4000  # of a tool call's result
CHECK_CHARS = 4000  # of a check's output


class Banner(BaseModel):
    """A message at the top of the page: the outcome of a decision, or why it was refused."""

    kind: Literal["info", "error"]
    text: str


def _cut(text: str, limit: int, session_id: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters: agent-tasks show {session_id[:8]} --log]"


def _header(s: dict[str, Any]) -> str:
    title = (s.get("instructions") or "Session").strip().splitlines()[0][:160]
    tokens = f"{s.get('prompt_tokens', 0)}+{s.get('completion_tokens', 0)} tokens"
    if s.get("cached_tokens"):
        tokens += f" ({s['cached_tokens']} cached)"
    cost = f"${s['cost_usd']:.4f}" if s.get("cost_usd") is not None else "cost unknown"
    ui = s.get("ui_url") or "-"
    prefect = (
        f'<a href="{esc(ui)}" rel="noreferrer" id="prefect-run">Prefect UI run</a>'
        if ui != "-"
        else '<span class="meta">no Prefect UI address configured</span>'
    )
    trigger = (s.get("request") or {}).get("trigger")
    meta = [
        ("Session", f"<code>{esc(s['id'])}</code>"),
        ("Repository", f"{esc(s.get('repository'))}@{esc(s.get('branch') or 'default branch')}"),
        ("Work branch", f"<code>{esc(s.get('work_branch') or '-')}</code>"),
        ("Reviewer", esc(s.get("reviewer") or "anyone")),
        ("Agent", esc(s.get("agent"))),
        ("Model", esc(s.get("model") or "-")),
        ("Workflow", esc(s.get("workflow") or "-")),
        ("Iteration", f'<span id="iteration">{esc(s.get("iteration", 1))}</span>'),
        ("Usage", f"{esc(s.get('steps_used', 0))} steps · {esc(tokens)} · {esc(cost)}"),
        ("Created", f"{esc(stamp(s.get('created_at')))} ({esc(age(s.get('created_at')))} ago)"),
    ]
    if s.get("delivered_to"):
        meta.append(("Delivered", esc(s["delivered_to"])))
    if trigger:
        meta.append(("Started by", esc(trigger_line(trigger))))
    items = " · ".join(f"<b>{name}</b> {value}" for name, value in meta)
    return (
        f"<header>{nav()}<h1>{esc(title)}</h1>"
        f'<p id="status" data-status="{esc(s["status"])}">{status_badge(s["status"])} '
        f'<span class="meta">{esc(s.get("status_reason") or "")}</span> · {prefect}</p>'
        f'<p class="meta">{items}</p>'
        + (
            f"<details><summary>Instructions</summary><pre>{esc(s.get('instructions'))}</pre></details>"
            if "\n" in (s.get("instructions") or "") or len(s.get("instructions") or "") > 160
            else ""
        )
        + "</header>"
    )


def _ranked(s: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """The best-of-N attempts of the session's current iteration, best first, and the one in the workspace."""
    found = s.get("candidates") or {}
    if found.get("iteration") != s.get("iteration") or not found.get("ranked"):
        return [], None
    return found["ranked"], found.get("chosen")


def _attempts(s: dict[str, Any]) -> str:
    ranked, chosen = _ranked(s)
    if not ranked:
        return ""
    from tasks_lib.session.attempts import Candidate

    items = []
    for c in ranked:
        here = (
            " <b>(in the workspace: the diff below)</b>"
            if c["attempt"] == chosen
            else f' · <a href="/sessions/{esc(s["id"])}/attempts/{c["attempt"]}">its diff</a>'
        )
        summary = (
            f"<details><summary>its summary</summary><pre>{esc(c.get('summary'))}</pre></details>"
            if c.get("summary")
            else ""
        )
        items.append(f"<li>{esc(Candidate.model_validate(c).headline())}{here}{summary}</li>")
    return (
        f'<section id="attempts"><h2>Attempts, ranked</h2><p class="meta">{len(ranked)} attempts at this iteration; '
        f"accept takes the one chosen in the form (the first-ranked by default).</p><ol>{''.join(items)}</ol></section>"
    )


def _candidate_choice(s: dict[str, Any], draft: DecisionForm | None) -> str:
    ranked, chosen = _ranked(s)
    if not ranked:
        return ""
    picked = draft.candidate if draft and draft.candidate else chosen
    options = "".join(
        f'<label><input type="radio" name="candidate" value="{c["attempt"]}"{" checked" if c["attempt"] == picked else ""}>'
        f" attempt {c['attempt']} (#{c['rank']})</label><br>"
        for c in ranked
    )
    return f"<fieldset><legend>Attempt to accept</legend>{options}</fieldset>"


def _decision_forms(s: dict[str, Any], token: str, draft: DecisionForm | None) -> str:
    action = f"/sessions/{esc(s['id'])}/decide"
    hidden = f'<input type="hidden" name="csrf" value="{esc(token)}">'
    feedback = esc(draft.feedback if draft and draft.decision == "request_changes" else "")
    retry_feedback = esc(draft.feedback if draft and draft.decision == "retry" else "")
    instructions = esc(draft.instructions if draft and draft.decision == "retry" else s.get("instructions") or "")
    comments = esc(draft.comments_json() if draft and draft.decision == "request_changes" else "[]")

    def form(decision: str, inner: str, button: str, form_id: str = "") -> str:
        ident = f' id="{form_id}"' if form_id else ""
        return (
            f'<form method="post" action="{action}" class="{decision}"{ident}>{hidden}'
            f'<input type="hidden" name="decision" value="{decision}">{inner}'
            f'<button type="submit" name="submit" value="{decision}">{button}</button></form>'
        )

    return "".join(
        [
            '<section id="decide"><h2>Decide</h2><div class="decide">',
            form("accept", f"<p>Commit the change and deliver it.</p>{_candidate_choice(s, draft)}", "Accept"),
            form(
                "request_changes",
                '<label for="feedback">Feedback for the agent</label>'
                f'<textarea id="feedback" name="feedback">\n{feedback}</textarea>'
                f'<input type="hidden" name="comments" id="comments-field" value="{comments}">'
                '<p class="meta">Line comments (click a line number in the diff):</p><ul id="pending"></ul>',
                'Request changes<span id="pending-count"></span>',
                "request-changes",
            ),
            form(
                "retry",
                '<label for="instructions">Updated instructions (required)</label>'
                f'<textarea id="instructions" name="instructions" required>\n{instructions}</textarea>'
                '<label for="retry-feedback">Notes (optional)</label>'
                f'<textarea id="retry-feedback" name="feedback">\n{retry_feedback}</textarea>',
                "Retry from the base",
            ),
            form("reject", "<p>Discard the change, the workspace and the work branch.</p>", "Reject"),
            "</div></section>",
        ]
    )


def _checks(checks: list[dict[str, Any]], session_id: str) -> str:
    if not checks:
        return ""
    rows = "".join(
        f"<tr><td>{c['iteration']}</td><td>{c['fix_round']}</td><td><code>{esc(c['command'])}</code></td>"
        f'<td class="{"ok" if c["passed"] else "err"}">{"passed" if c["passed"] else "failed"}</td>'
        f"<td>{esc(c['exit_code'])}</td><td>{c['duration_s']:.1f}s</td>"
        f"<td><details><summary>output</summary><pre>{esc(_cut(c['output_tail'] or '', CHECK_CHARS, session_id))}</pre>"
        "</details></td></tr>"
        for c in checks
    )
    return (
        '<section id="checks"><h2>Checks</h2><table class="list"><thead><tr><th>iteration</th><th>fix round</th>'
        f"<th>command</th><th>result</th><th>exit</th><th>time</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        "</section>"
    )


def _history(s: dict[str, Any]) -> str:
    parts = ['<section id="history"><h2>History</h2>']
    iterations = [i for i in s.get("iterations", []) if i["scope"] == "cumulative"]
    if iterations:
        parts.append('<table class="list"><thead><tr><th>iteration</th><th>files</th><th>+/−</th></tr></thead><tbody>')
        parts += [
            f'<tr><td>{i["iteration"]}</td><td>{len(i["files"])}</td><td class="num"><span class="add">+{i["added"]}'
            f'</span> <span class="del-n">−{i["removed"]}</span></td></tr>'
            for i in iterations
        ]
        parts.append("</tbody></table>")
    for review in s.get("history", []):
        parts.append(
            f'<div class="review"><p><b>Iteration {review["iteration"]}: {esc(review["decision"])}</b> '
            f'<span class="meta">{esc(stamp(review["decided_at"]))}</span></p>'
        )
        if review.get("feedback"):
            parts.append(f"<p>Feedback:</p><pre>{esc(review['feedback'])}</pre>")
        if review.get("instructions"):
            parts.append(f"<p>Instructions:</p><pre>{esc(review['instructions'])}</pre>")
        if review.get("comments"):
            parts.append(
                "<ul>"
                + "".join(
                    f"<li><code>{esc(c.get('path'))}:{esc(c.get('line'))}</code> {esc(c.get('body'))}</li>"
                    for c in review["comments"]
                )
                + "</ul>"
            )
        if review.get("outcome"):
            parts.append(f'<p class="meta">Outcome: {esc(review["outcome"])}</p>')
        parts.append("</div>")
    transitions = s.get("transitions", [])
    if transitions:
        parts.append(
            '<details><summary>Status changes</summary><table class="list"><thead><tr><th>at</th><th>from</th>'
            "<th>to</th><th>by</th><th>reason</th></tr></thead><tbody>"
        )
        parts += [
            f"<tr><td>{esc(stamp(t['at']))}</td><td>{esc(t['from'] or '-')}</td><td>{esc(t['to'])}</td>"
            f"<td>{esc(t['by'])}</td><td>{esc(t['reason'])}</td></tr>"
            for t in transitions
        ]
        parts.append("</tbody></table></details>")
    parts.append("</section>")
    return "".join(parts)


def _steps(steps: list[dict[str, Any]], session_id: str) -> str:
    parts = ['<section id="log"><h2>Steps and logs</h2>']
    if not steps:
        parts.append('<p class="meta">No steps yet.</p>')
    iteration = 0
    for step in steps:
        if step.get("iteration", 1) != iteration:
            iteration = step.get("iteration", 1)
            parts.append(f"<h3>Iteration {iteration}</h3>")
        calls = step.get("tool_calls", [])
        names = ", ".join(c["name"] for c in calls) or "no tool call"
        failed = any(not c["ok"] for c in calls) or step.get("error")
        mark = ' <span class="err">✗</span>' if failed else ""
        parts.append(
            f'<details class="step"{" open" if failed else ""}><summary><b>Step {step["index"]}</b> '
            f'{esc(names)} <span class="meta">{step["prompt_tokens"]}+{step["completion_tokens"]} tokens, '
            f"{step['duration_s']:.2f}s</span>{mark}</summary>"
        )
        if step.get("text"):
            parts.append(f"<pre>{esc(_cut(step['text'], RESULT_CHARS, session_id))}</pre>")
        for call in calls:
            args = call["arguments"] if isinstance(call["arguments"], str) else json.dumps(call["arguments"], indent=1)
            mark = '<span class="ok">✓</span>' if call["ok"] else '<span class="err">✗</span>'
            parts.append(
                f"<p>{mark} <code>{esc(call['name'])}</code></p>"
                f"<pre>{esc(_cut(args, ARGUMENT_CHARS, session_id))}</pre>"
                f"<pre>{esc(_cut(call.get('result') or '', RESULT_CHARS, session_id))}</pre>"
            )
        for note in step.get("notes", []):
            parts.append(f'<p class="meta">{esc(note)}</p>')
        if step.get("error"):
            parts.append(f'<p class="err">{esc(step["error"])}</p>')
        parts.append("</details>")
    parts.append("</section>")
    return "".join(parts)


def session_page(
    s: dict[str, Any],
    token: str,
    mode: View = "unified",
    banner: Banner | None = None,
    draft: DecisionForm | None = None,
    watch: Watch | None = None,
) -> str:
    """The page of one session (``s`` from `session_json`); the decision forms only while it awaits review."""
    summary = (s.get("summary") or {}).get("markdown") or "_No summary yet._"
    parts = [_header(s), "<main>"]
    if banner:
        parts.append(f'<p class="banner {banner.kind}" id="banner">{esc(banner.text)}</p>')
    if s["status"] == "awaiting_review":
        parts.append(_decision_forms(s, token, draft))
    parts += [
        f'<section id="summary"><h2>Summary</h2><div class="summary">{markdown_html(summary)}</div></section>',
        _attempts(s),
        diff_section(s["id"], s.get("diff"), mode),
        _checks(s.get("checks", []), s["id"]),
        _history(s),
        _steps(s.get("steps", []), s["id"]),
        "</main>",
    ]
    first_line = ((s.get("instructions") or "").strip().splitlines() or [""])[0]
    title = f"{s['id'][:8]} {s['status']} — {first_line[:60]}"
    draft_key = f"agent-tasks:{s['id']}:{s.get('review_key') or s.get('iteration')}"
    return shell(title, "".join(parts), script=True, draft_key=draft_key, watch=watch)


def attempt_page(s: dict[str, Any], attempt: int, diff: dict[str, Any], mode: View = "unified") -> str:
    """The diff of one best-of-N attempt (``diff`` as `session_json` gives a diff), to compare before accepting it."""
    ranked, chosen = _ranked(s)
    found = next((c for c in ranked if c["attempt"] == attempt), None)
    from tasks_lib.session.attempts import Candidate

    line = esc(Candidate.model_validate(found).headline()) if found else f"attempt {attempt}"
    back = f"/sessions/{esc(s['id'])}"
    note = (
        "it is in the workspace and on the session's page"
        if attempt == chosen
        else "to take it, choose it under <i>Attempt to accept</i> on the session's page"
    )
    parts = [
        _header(s),
        "<main>",
        f'<section id="attempt"><h2>Attempt {attempt} of {len(ranked)}</h2><p>{line}</p>'
        f'<p class="meta">Read-only: {note}. <a href="{back}">← back to the session</a></p>'
        + (
            f"<details open><summary>its summary</summary><pre>{esc(found.get('summary'))}</pre></details>"
            if found and found.get("summary")
            else ""
        )
        + "</section>",
        diff_section(
            s["id"], diff, mode, files_url=f"/sessions/{quote(s['id'])}/attempts/{attempt}/files", commentable=False
        ),
        "</main>",
    ]
    return shell(f"{s['id'][:8]} attempt {attempt}", "".join(parts), script=False)
