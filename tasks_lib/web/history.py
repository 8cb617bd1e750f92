"""A session page's history: its iterations, every decision with who made it, how they were known, when and the
commit an accept produced, every decision refused (who tried, through what, why), who started the session, and its
status changes."""

from __future__ import annotations

from typing import Any

from tasks_lib.domain.people import VIA_WORDS
from tasks_lib.store import SessionRow, Store
from tasks_lib.store.people import list_people, refusals, session_starter
from tasks_lib.web.layout import esc, stamp

# How a decider was known, in words for the page.
HOW = {
    "token": "with their token (CLI)",
    "cookie": "signed in on this page",
    "proxy": "named by the trusted proxy",
    "local": "as the local user",
    "prefect-form": "through the Prefect form, no person",
}


def with_people(store: Store, row: SessionRow, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (from `session_json`) with who decided each review (``decided_by``, ``auth``, ``commit``), the
    decisions refused (``refused``: who tried, how, through what, why, when), who started the session (``starter``)
    and whether it needs an independent review (``independent_review``)."""
    reviews = store.reviews(row.id)
    for entry, review in zip(data.get("history", []), reviews, strict=False):
        entry.update(decided_by=review.decided_by, auth=review.auth, commit=review.commit)
    data["refused"] = [
        {
            "decision": r.action or None,
            "person": r.person,
            "auth": r.auth,
            "via": r.via,
            "reason": r.detail,
            "at": r.at.isoformat(),
        }
        for r in refusals(store, row.id)
    ]
    starter, independent = session_starter(store, row.id, list_people(store))
    data["starter"], data["independent_review"] = starter, independent
    return data


def decider_line(review: dict[str, Any]) -> str:
    """``by bob, signed in on this page`` for a decision (``by nobody known`` before deciders were recorded)."""
    auth = review.get("auth")
    if not auth:
        return "by nobody recorded"
    who = review.get("decided_by") or ("the local user" if auth == "local" else "nobody")
    how = HOW.get(auth, auth)
    return f"by {who}" + ("" if auth == "local" else f", {how}")


def _review(review: dict[str, Any]) -> list[str]:
    commit = f' · commit <code class="commit">{esc(review["commit"][:12])}</code>' if review.get("commit") else ""
    parts = [
        f'<div class="review" data-decider="{esc(review.get("decided_by") or "")}"'
        f' data-auth="{esc(review.get("auth") or "")}"><p><b>Iteration {review["iteration"]}: '
        f'{esc(review["decision"])}</b> <span class="decider">{esc(decider_line(review))}</span>'
        f' <span class="meta">{esc(stamp(review["decided_at"]))}{commit}</span></p>'
    ]
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
    return parts


def refused_section(refused: list[dict[str, Any]]) -> str:
    """The decisions refused, oldest first: what was tried, by whom (or unknown), through what, why, when."""
    if not refused:
        return ""
    parts = [f'<div id="refused"><h3>Refused decisions ({len(refused)})</h3>']
    for r in refused:
        via = VIA_WORDS.get(r["via"] or "", r["via"] or "")
        parts.append(
            f'<div class="refusal" data-person="{esc(r["person"] or "")}" data-via="{esc(r["via"] or "")}"><p>'
            f"<b>Refused: {esc(r['decision'] or 'a decision')}</b> "
            f'<span class="decider">by {esc(r["person"] or "unknown")}, through {esc(via)}</span> '
            f'<span class="meta">{esc(stamp(r["at"]))}</span></p><p class="meta">{esc(r["reason"])}</p></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def history_section(s: dict[str, Any]) -> str:
    """The history section: who started the session, the iterations, each decision, the status changes."""
    parts = ['<section id="history"><h2>History</h2>']
    if s.get("starter"):
        independent = " (needs an independent review: they may not accept it)" if s.get("independent_review") else ""
        parts.append(f'<p id="started-by">Started by <b>{esc(s["starter"])}</b>{esc(independent)}</p>')
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
        parts += _review(review)
    parts.append(refused_section(s.get("refused", [])))
    transitions = s.get("transitions", [])
    if transitions:
        parts.append(
            '<details><summary>Status changes</summary><div class="scroll"><table class="list"><thead><tr><th>at</th>'
            "<th>from</th><th>to</th><th>by</th><th>reason</th></tr></thead><tbody>"
        )
        parts += [
            f"<tr><td>{esc(stamp(t['at']))}</td><td>{esc(t['from'] or '')}</td><td>{esc(t['to'])}</td>"
            f"<td>{esc(t['by'])}</td><td>{esc(t['reason'])}</td></tr>"
            for t in transitions
        ]
        parts.append("</tbody></table></div></details>")
    parts.append("</section>")
    return "".join(parts)
