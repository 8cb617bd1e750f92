"""Render a session's diff side by side (terminal and HTML) and a self-contained review page."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

import unidiff

from tasks_lib.domain.records import files_stat
from tasks_lib.domain.request import trigger_line
from tasks_lib.domain.words import literal_names


@dataclass
class Row:
    """One line of a side-by-side or unified view; kind is context, change, delete, insert or hunk."""

    kind: str
    left_no: int | None = None
    left: str = ""
    right_no: int | None = None
    right: str = ""


@dataclass
class FileView:
    """A file of the diff with its side-by-side rows (and its unified lines, in the patch's order)."""

    path: str  # as shown: 'old → new' for a rename
    kind: str
    added: int
    removed: int
    binary: bool
    rows: list[Row]
    target: str = ""  # the file's path in the change (the new path), as line comments name it
    unified: list[Row] = field(default_factory=list)


DIFF_HEADER = re.compile(r"^diff --git ", re.M)


def patch_chunks(patch: bytes | str) -> list[str]:
    """The patch cut into one piece per file (each starts with its ``diff --git`` line; any text before the
    first file, such as the ``agent-tasks omitted:`` lines, is left out). Cheap: no parsing of hunks."""
    text = patch.decode("utf-8", errors="replace") if isinstance(patch, bytes) else patch
    starts = [m.start() for m in DIFF_HEADER.finditer(text)]
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)])]


def _names(pf: Any) -> tuple[str, str, str]:
    """(path as shown, kind, path in the change) of a parsed file."""
    kind = (
        "added" if pf.is_added_file else "deleted" if pf.is_removed_file else "renamed" if pf.is_rename else "modified"
    )
    path = pf.path if not pf.is_rename else f"{pf.source_file.removeprefix('a/')} → {pf.path}"
    target = pf.target_file.removeprefix("b/") if pf.target_file != "/dev/null" else pf.path
    return path, kind, target


def file_head(chunk: str) -> FileView | None:
    """The name, kind and line counts of one file's piece of a patch, without its lines (no hunk is parsed:
    a fraction of `file_view`'s time, for files listed but not shown); None when it holds no file."""
    first_hunk = chunk.find("\n@@ ")
    if first_hunk < 0:
        return file_view(chunk)  # binary, or a change of mode or name only: nothing to skip
    parsed = unidiff.PatchSet(chunk[: first_hunk + 1])
    if not parsed:
        return None
    path, kind, target = _names(parsed[0])
    body = chunk[first_hunk:]
    return FileView(path, kind, body.count("\n+"), body.count("\n-"), False, [], target, [])


def file_view(chunk: str) -> FileView | None:
    """The view of one file's piece of a patch (from `patch_chunks`); None when it holds no file."""
    parsed = unidiff.PatchSet(chunk)
    if not parsed:
        return None
    pf = parsed[0]
    path, kind, target = _names(pf)
    rows: list[Row] = []
    unified: list[Row] = []
    for hunk in pf:
        header = f"@@ -{hunk.source_start},{hunk.source_length} +{hunk.target_start},{hunk.target_length} @@ {hunk.section_header}".rstrip()
        rows.append(Row("hunk", left=header))
        unified.append(Row("hunk", left=header))
        removed: list[Any] = []
        added: list[Any] = []
        for line in hunk:
            if line.is_removed:
                removed.append(line)
                unified.append(Row("delete", line.source_line_no, _text(line)))
            elif line.is_added:
                added.append(line)
                unified.append(Row("insert", right_no=line.target_line_no, right=_text(line)))
            elif line.is_context:
                _pair(rows, removed, added)
                rows.append(Row("context", line.source_line_no, _text(line), line.target_line_no, _text(line)))
                unified.append(rows[-1])
        _pair(rows, removed, added)
    return FileView(path, kind, pf.added, pf.removed, pf.is_binary_file, rows, target, unified)


def _pair(rows: list[Row], removed: list[Any], added: list[Any]) -> None:
    """Add the pending removed and added lines to ``rows`` side by side (a change, a deletion or an insertion), and
    empty both lists."""
    for i in range(max(len(removed), len(added))):
        left = removed[i] if i < len(removed) else None
        right = added[i] if i < len(added) else None
        kind = "change" if left and right else "delete" if left else "insert"
        rows.append(
            Row(
                kind,
                left.source_line_no if left else None,
                _text(left) if left else "",
                right.target_line_no if right else None,
                _text(right) if right else "",
            )
        )
    removed.clear()
    added.clear()


def side_by_side(patch: bytes | str) -> list[FileView]:
    """Pair removed and added lines of each hunk so they can be shown in two columns."""
    return [view for view in map(file_view, patch_chunks(patch)) if view is not None]


def _text(line: Any) -> str:
    return line.value.rstrip("\n").replace("\t", "    ")


def render_terminal(views: list[FileView], console) -> None:
    """Print the side-by-side diff with rich."""
    from rich.table import Table
    from rich.text import Text

    styles = {"change": ("red", "green"), "delete": ("red", ""), "insert": ("", "green"), "context": ("", "")}
    for view in views:
        console.print(
            Text(
                f"{view.path}  ({view.kind}, +{view.added} -{view.removed}{', binary' if view.binary else ''})",
                style="bold",
            )
        )
        if view.binary:
            console.print("  binary file: contents not shown")
            continue
        table = Table(box=None, show_header=False, pad_edge=False, expand=True)
        table.add_column(justify="right", style="dim", no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        table.add_column(justify="right", style="dim", no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for row in view.rows:
            if row.kind == "hunk":
                table.add_row("", Text(row.left, style="cyan"), "", "")
                continue
            left_style, right_style = styles[row.kind]
            table.add_row(
                str(row.left_no or ""),
                Text(
                    ("- " if row.kind in ("change", "delete") else "  ") + row.left if row.left_no else "",
                    style=left_style,
                ),
                str(row.right_no or ""),
                Text(
                    ("+ " if row.kind in ("change", "insert") else "  ") + row.right if row.right_no else "",
                    style=right_style,
                ),
            )
        console.print(table)


PAGE_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
header,main{max-width:1400px;margin:auto;padding:0 20px}
header{border-bottom:1px solid #d0d7de;padding-bottom:8px}
.meta{color:#57606a} .meta b{color:#1f2328}
.status{display:inline-block;padding:2px 8px;border-radius:10px;background:#ddf4ff}
section{margin:24px 0}
table.sbs{width:100%;border-collapse:collapse;font:12px/1.4 ui-monospace,monospace;table-layout:fixed}
table.sbs td{padding:0 6px;vertical-align:top;white-space:pre-wrap;word-break:break-all}
table.sbs td.no{width:3.5em;color:#8c959f;text-align:right;user-select:none}
tr.hunk td{background:#ddf4ff;color:#0550ae}
td.del{background:#ffebe9} td.ins{background:#dafbe1}
.file{border:1px solid #d0d7de;border-radius:6px;margin:16px 0;overflow:hidden}
.file h3{margin:0;padding:8px 12px;background:#f6f8fa;border-bottom:1px solid #d0d7de;font-size:13px}
.step{border-left:3px solid #d0d7de;padding:4px 12px;margin:8px 0}
.step pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap}
.err{color:#cf222e} .ok{color:#1a7f37}
"""


def markdown_html(text: str) -> str:
    """Markdown to HTML (raw HTML in the text is escaped, not rendered; `__pycache__` stays a name, not bold)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(literal_names(text))


def review_page(session: dict[str, Any]) -> str:
    """A self-contained HTML page with the summary, the side-by-side diff and the step log."""
    e = html.escape
    diff = session.get("diff") or {}
    views = side_by_side(diff.get("patch", "")) if diff else []
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Session {e(session['id'][:8])} — {e(session['instructions'][:80])}</title>",
        f"<style>{PAGE_CSS}</style></head><body><header>",
        f"<h1>{e(session['instructions'].splitlines()[0][:120] if session['instructions'] else 'Session')}</h1>",
        f"<p class='meta'><span class='status'>{e(session['status'])}</span> {e(session.get('status_reason') or '')}</p>",
        "<p class='meta'>"
        f"<b>Session</b> {e(session['id'])} · <b>Agent</b> {e(session['agent'])} · <b>Model</b> {e(str(session.get('model')))}"
        f" · <b>Repository</b> {e(session['repository'])}@{e(str(session.get('branch')))}"
        f" · <b>Work branch</b> {e(str(session.get('work_branch')))} · <b>Reviewer</b> {e(str(session.get('reviewer') or 'anyone'))}"
        f" · <b>Iteration</b> {session.get('iteration', 1)}</p>",
        (
            f"<p class='meta'><b>Started by</b> {e(trigger_line(session['request']['trigger']))}</p>"
            if (session.get("request") or {}).get("trigger")
            else ""
        ),
        f"<p class='meta'>To decide: <code>agent-tasks review {e(session['id'][:8])} accept|request-changes|reject|retry</code></p>",
        "</header><main>",
        "<section id='summary'>",
        markdown_html((session.get("summary") or {}).get("markdown", "_No summary._")),
        "</section>",
        f"<section id='diff'><h2>Diff</h2><p>{files_stat(len(views), diff.get('added', 0), diff.get('removed', 0))}"
        f" against <code>{e(str(diff.get('base_commit', ''))[:10])}</code></p>",
    ]
    for view in views:
        parts.append(
            f"<div class='file'><h3>{e(view.path)} <span class='meta'>{view.kind} +{view.added} −{view.removed}</span></h3>"
        )
        if view.binary:
            parts.append("<p style='padding:8px 12px'>Binary file, contents not shown.</p></div>")
            continue
        parts.append(
            "<table class='sbs'><colgroup><col style='width:3.5em'><col style='width:50%'>"
            "<col style='width:3.5em'><col style='width:50%'></colgroup>"
        )
        for row in view.rows:
            if row.kind == "hunk":
                parts.append(f"<tr class='hunk'><td class='no'></td><td colspan='3'>{e(row.left)}</td></tr>")
                continue
            lcls = " class='del'" if row.kind in ("change", "delete") else ""
            rcls = " class='ins'" if row.kind in ("change", "insert") else ""
            parts.append(
                f"<tr><td class='no'>{row.left_no or ''}</td><td{lcls}>{e(row.left)}</td>"
                f"<td class='no'>{row.right_no or ''}</td><td{rcls}>{e(row.right)}</td></tr>"
            )
        parts.append("</table></div>")
    parts.append("</section><section id='log'><h2>Log</h2>")
    for step in session.get("steps", []):
        parts.append(
            f"<div class='step'><b>Step {step['index']}</b> <span class='meta'>{step['prompt_tokens']}+{step['completion_tokens']} tokens, {step['duration_s']:.2f}s</span>"
        )
        if step.get("text"):
            parts.append(f"<p><i>{e(step['text'])}</i></p>")
        for call in step.get("tool_calls", []):
            args = call["arguments"] if isinstance(call["arguments"], str) else json.dumps(call["arguments"], indent=1)
            mark = "<span class='ok'>✓</span>" if call["ok"] else "<span class='err'>✗</span>"
            parts.append(
                f"<p>{mark} <code>{e(call['name'])}</code></p><pre>{e(args[:4000])}</pre><pre>{e(call['result'][:8000])}</pre>"
            )
        if step.get("error"):
            parts.append(f"<p class='err'>{e(step['error'])}</p>")
        parts.append("</div>")
    parts.append("</section></main></body></html>")
    return "\n".join(parts)
