"""One session's page, /sessions/<id>: who and what, the decision forms, the summary, the diff, checks,
the history of iterations and reviews, and the step log. Everything shown is escaped: it is the agent's
(untrusted) text or comes from the store, which masks secrets before it keeps anything.

Laid out like a pull request's "Files changed" with a side column: a compact head (title, status, one line of
facts), then the diff, with the decision forms and the summary beside it on a wide screen (above it on a
narrow one, the summary folded when long); checks, history and the step log follow the diff."""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from tasks_lib.domain.request import trigger_line
from tasks_lib.review.render import markdown_html
from tasks_lib.web.diffview import View, diff_section
from tasks_lib.web.forms import DecisionForm
from tasks_lib.web.history import history_section
from tasks_lib.web.layout import Watch, age, esc, nav, shell, stamp, status_badge

ARGUMENT_CHARS = 2000  # of a tool call's arguments shown in the log
RESULT_CHARS = 4000  # of a tool call's result
CHECK_CHARS = 4000  # of a check's output


class Banner(BaseModel):
    """A message at the top of the page: the outcome of a decision, or why it was refused."""

    kind: Literal["info", "error"]
    text: str


class Teach(BaseModel):
    """The reviewer feedback kept for the session's repository, for the *Propose rules from feedback* button."""

    items: int
    sessions: int
    command: str  # the same proposal from a terminal
    refusal: str | None = None  # why this viewer may not start it (team mode), else None


def _teach(s: dict[str, Any], token: str, teach: Teach | None) -> str:
    """What reviewers teach: how much feedback is kept for the repository, and the button proposing it as rules."""
    if teach is None or not teach.items:
        return ""
    kept = (
        f"{teach.items} feedback item{'s' * (teach.items != 1)} from {teach.sessions} "
        f"session{'s' * (teach.sessions != 1)} kept for this repository."
    )
    if teach.refusal:
        action = f'<p class="meta">{esc(teach.refusal)}</p>'
    else:
        action = (
            f'<form method="post" action="/sessions/{esc(s["id"])}/propose-rules">'
            f'<input type="hidden" name="csrf" value="{esc(token)}">'
            '<button type="submit" id="propose-rules">Propose rules from feedback</button></form>'
            '<p class="meta">Starts a session that drafts AGENTS.md from the feedback that recurs; it waits for '
            "review like any other, and nothing lands without an accept.</p>"
        )
    return (
        f'<section id="teach"><h2>What reviewers teach</h2><p class="meta">{kept}</p>{action}'
        f'<p class="meta">From a terminal: <code>{esc(teach.command)}</code></p></section>'
    )


def _cut(text: str, limit: int, session_id: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters: agent-tasks show {session_id[:8]} --log]"


def _field(label: str, value: str, title: str = "") -> str:
    """One labelled value of the header's line of facts."""
    hover = f' title="{esc(title)}"' if title else ""
    return f'<li{hover}><span class="label">{label}</span> {value}</li>'


def _header(s: dict[str, Any]) -> str:
    """The page's head: the task's first line, the status, and one compact line of facts. A field without a
    value is left out (no '-' placeholders, no separator of nothing)."""
    first_line = ((s.get("instructions") or "").strip().splitlines() or ["Session"])[0]
    tokens = f"{s.get('prompt_tokens', 0)}+{s.get('completion_tokens', 0)} tokens"
    if s.get("cached_tokens"):
        tokens += f" ({s['cached_tokens']} cached)"
    cost = f"${s['cost_usd']:.4f}" if s.get("cost_usd") is not None else "cost unknown"
    steps = s.get("steps_used", 0)
    usage = f"{steps} step{'s' if steps != 1 else ''}, {tokens}, {cost}"
    repository = esc(s.get("repository"))
    branch = f"@{esc(s['branch'])}" if s.get("branch") else ""
    fields = [
        _field("Session", f"<code>{esc(s['id'][:8])}</code>", s["id"]),
        _field("Repository", f"{repository}{branch}", "" if branch else "the repository's default branch"),
    ]
    if s.get("work_branch"):
        fields.append(_field("Work branch", f"<code>{esc(s['work_branch'])}</code>"))
    fields.append(_field("Reviewer", esc(s.get("reviewer") or "anyone")))
    agent = esc(s.get("agent") or "default") + (f" on {esc(s['model'])}" if s.get("model") else "")
    fields.append(_field("Agent", agent))
    if s.get("workflow"):
        fields.append(_field("Workflow", esc(s["workflow"])))
    fields.append(_field("Iteration", f'<span id="iteration">{esc(s.get("iteration", 1))}</span>'))
    fields.append(_field("Usage", esc(usage)))
    if s.get("created_at"):
        fields.append(_field("Created", f"{esc(age(s['created_at']))} ago", stamp(s["created_at"])))
    if s.get("delivered_to"):
        fields.append(_field("Delivered", esc(s["delivered_to"])))
    trigger = (s.get("request") or {}).get("trigger")
    started = [esc(s["starter"])] if s.get("starter") else []
    if trigger:
        started.append(("via " if started else "") + esc(trigger_line(trigger)))
    if started:
        fields.append(_field("Started by", " ".join(started)))
    status = [status_badge(s["status"])]
    if s.get("status_reason"):
        status.append(f'<span class="meta">{esc(s["status_reason"])}</span>')
    ui = s.get("ui_url")
    if ui and ui != "-":
        status.append(f'<a href="{esc(ui)}" rel="noreferrer" id="prefect-run">Prefect UI run</a>')
    instructions = s.get("instructions") or ""
    more = (
        f'<details class="instructions"><summary>Instructions</summary><pre>{esc(instructions)}</pre></details>'
        if "\n" in instructions.strip() or len(instructions) > 160
        else ""
    )
    return (
        f'<header>{nav()}<h1 title="{esc(first_line)}">{esc(first_line[:300])}</h1>'
        f'<p id="status" data-status="{esc(s["status"])}">{" ".join(status)}</p>'
        f'<ul class="facts">{"".join(fields)}</ul>{more}</header>'
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
    """The decision controls, compact enough to sit beside the diff: accept and request changes in view,
    retry and reject one click away (open when a refused retry or reject brought back what was typed)."""
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

    more_open = " open" if draft and draft.decision in ("retry", "reject") else ""
    return "".join(
        [
            '<section id="decide"><h2>Decide</h2>',
            form(
                "accept",
                f'{_candidate_choice(s, draft)}<span class="meta">Commit the change and deliver it.</span>',
                "Accept",
            ),
            form(
                "request_changes",
                '<label for="feedback">Feedback for the agent</label>'
                f'<textarea id="feedback" name="feedback" rows="3">\n{feedback}</textarea>'
                f'<input type="hidden" name="comments" id="comments-field" value="{comments}">'
                '<p class="meta">Line comments: click a line number in the diff.</p><ul id="pending"></ul>',
                'Request changes<span id="pending-count"></span>',
                "request-changes",
            ),
            f'<details class="more"{more_open}><summary>Retry from the base, or reject</summary>',
            form(
                "retry",
                '<label for="instructions">Updated instructions (required)</label>'
                f'<textarea id="instructions" name="instructions" rows="3" required>\n{instructions}</textarea>'
                '<label for="retry-feedback">Notes (optional)</label>'
                f'<textarea id="retry-feedback" name="feedback" rows="2">\n{retry_feedback}</textarea>',
                "Retry from the base",
            ),
            form(
                "reject", '<span class="meta">Discard the change, the workspace and the work branch.</span>', "Reject"
            ),
            "</details></section>",
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
        '<section id="checks"><h2>Checks</h2><div class="scroll"><table class="list"><thead><tr><th>iteration</th>'
        "<th>fix round</th><th>command</th><th>result</th><th>exit</th><th>time</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


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


SUMMARY_HEADING = re.compile(r"\A\s*#{1,6}[ \t]+Summary[ \t#]*\n", re.IGNORECASE)
FACTS_HEADING = re.compile(r"^#{1,6}[ \t]+Facts[ \t#]*$", re.IGNORECASE | re.MULTILINE)
SHORT_SUMMARY = 900  # characters of narrative shown open on a narrow screen (wide screens show it beside the diff)


def split_summary(markdown: str) -> tuple[str, str]:
    """The summary's narrative and its facts section (empty when there is none), without the summary's own
    'Summary' heading: the page has one."""
    text = SUMMARY_HEADING.sub("", markdown, count=1)
    found = FACTS_HEADING.search(text)
    if found is None:
        return text.strip(), ""
    return text[: found.start()].strip(), text[found.end() :].strip()


def _summary(s: dict[str, Any]) -> str:
    """The summary once, under the page's own heading: the narrative (open when short; the script opens it
    on a wide screen, where it sits beside the diff), then the facts (open when one of them warns)."""
    narrative, facts = split_summary((s.get("summary") or {}).get("markdown") or "")
    short = len(narrative) <= SHORT_SUMMARY
    parts = [
        f'<section id="summary"><details class="summary" data-open-wide{" open" if short else ""}>'
        f'<summary><h2>Summary</h2></summary><div class="md">{markdown_html(narrative or "_No summary yet._")}</div>'
        "</details>"
    ]
    if facts:
        warn = " open" if "⚠" in facts else ""
        parts.append(
            f'<details class="summary facts"{warn}><summary><h3>Facts</h3></summary>'
            f'<div class="md">{markdown_html(facts)}</div></details>'
        )
    parts.append("</section>")
    return "".join(parts)


def session_page(
    s: dict[str, Any],
    token: str,
    mode: View = "unified",
    banner: Banner | None = None,
    draft: DecisionForm | None = None,
    watch: Watch | None = None,
    teach: Teach | None = None,
) -> str:
    """The page of one session (``s`` from `session_json`): a compact head, then the diff with a side column
    beside it on a wide screen (above it on a narrow one) holding the decision forms (only while the session
    awaits review), the summary, the ranked attempts and what reviewers teach (``teach``); then checks, history and
    the step log."""
    parts = [_header(s), "<main>"]
    if banner:
        parts.append(f'<p class="banner {banner.kind}" id="banner">{esc(banner.text)}</p>')
    side = [
        _decision_forms(s, token, draft) if s["status"] == "awaiting_review" else "",
        _summary(s),
        _attempts(s),
        _teach(s, token, teach),
    ]
    parts += [
        '<div class="review"><aside class="side">',
        *side,
        '</aside><div class="work">',
        diff_section(s["id"], s.get("diff"), mode, commentable=s["status"] == "awaiting_review"),
        _checks(s.get("checks", []), s["id"]),
        history_section(s),
        _steps(s.get("steps", []), s["id"]),
        "</div></div></main>",
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
