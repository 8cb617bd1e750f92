"""The diff on a session page: unified or side by side, one collapsible block per file, new-side line numbers
that open a comment box. A large diff renders its first files in full and the rest on demand, one file at a
time (`file_fragment`), so a 1,000-file change still opens in well under a second."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from tasks_lib.domain.records import files_stat
from tasks_lib.review.render import FileView, Row, file_head, file_view, patch_chunks
from tasks_lib.web.layout import esc

View = Literal["unified", "split"]
ROWS_IN_FULL = 3000  # diff rows rendered with the page; files after that are loaded when opened
FILES_IN_FULL = 200  # and at most this many files


def _no(number: int | None, commentable: bool) -> str:
    """A line-number cell: clickable (data-line) when it numbers a line a comment can name."""
    if not number:
        return '<td class="no"></td>'
    if commentable:
        return f'<td class="no n" data-line="{number}">{number}</td>'
    return f'<td class="no">{number}</td>'


def _unified_rows(rows: list[Row], old_side: bool) -> list[str]:
    out = []
    for row in rows:
        left, right = _no(row.left_no, old_side), _no(row.right_no, not old_side)
        if row.kind == "hunk":
            out.append(f'<tr class="hunk"><td class="no"></td><td class="no"></td><td>{esc(row.left)}</td></tr>')
        elif row.kind == "delete":
            out.append(f'<tr>{left}<td class="no"></td><td class="del">-{esc(row.left)}</td></tr>')
        elif row.kind == "insert":
            out.append(f'<tr><td class="no"></td>{right}<td class="ins">+{esc(row.right)}</td></tr>')
        else:
            out.append(f"<tr>{left}{right}<td> {esc(row.right)}</td></tr>")
    return out


def _split_rows(rows: list[Row], old_side: bool) -> list[str]:
    out = []
    for row in rows:
        if row.kind == "hunk":
            out.append(f'<tr class="hunk"><td class="no"></td><td colspan="3">{esc(row.left)}</td></tr>')
            continue
        left_cls = ' class="del"' if row.kind in ("change", "delete") else ""
        right_cls = ' class="ins"' if row.kind in ("change", "insert") else ""
        out.append(
            f"<tr>{_no(row.left_no, old_side)}<td{left_cls}>{esc(row.left)}</td>"
            f"{_no(row.right_no, not old_side)}<td{right_cls}>{esc(row.right)}</td></tr>"
        )
    return out


def file_table(view: FileView, mode: View) -> str:
    """One file's lines as a table in a box that scrolls sideways on its own (or a note for a binary file or
    one without lines). Line comments name the new side's numbers, or the old side's for a deleted file (what
    `tasks_lib.review.comments.commentable_lines` accepts)."""
    if view.binary:
        return '<p class="note">Binary file, contents not shown.</p>'
    if not view.rows:
        return '<p class="note">No lines changed (mode or name only).</p>'
    old_side = view.kind == "deleted"
    if mode == "split":
        head = '<table class="diff split"><colgroup><col class="no"><col><col class="no"><col></colgroup>'
        body = _split_rows(view.rows, old_side)
    else:
        head = '<table class="diff unified"><colgroup><col class="no"><col class="no"><col></colgroup>'
        body = _unified_rows(view.unified, old_side)
    return '<div class="scroll">' + head + "".join(body) + "</table></div>"


def _file_head(view: FileView) -> str:
    return (
        f'<summary><span class="path">{esc(view.path)}</span> <span class="meta">{esc(view.kind)} '
        f'<span class="add">+{view.added}</span> <span class="del-n">−{view.removed}</span></span></summary>'
    )


def diff_section(
    session_id: str, diff: dict[str, Any] | None, mode: View, files_url: str | None = None, commentable: bool = True
) -> str:
    """The whole diff section: stats, the view switch, every file (the first ones in full, the rest on demand
    from ``files_url``, default the session's latest diff)."""
    files_url = files_url or f"/sessions/{quote(session_id)}/files"
    if not diff:
        return '<section id="diff"><h2>Diff</h2><p class="meta">No diff stored yet.</p></section>'
    chunks = patch_chunks(diff.get("patch", ""))
    stats_only = [f for f in diff.get("files", []) if f.get("stats_only")]
    other = "split" if mode == "unified" else "unified"
    label = {"unified": "unified", "split": "side by side"}
    stat = files_stat(len(diff.get("files", [])), diff.get("added", 0), diff.get("removed", 0))
    base = str(diff.get("base_commit") or "")[:10]
    against = f" against <code>{esc(base)}</code>" if base else ""
    hint = '<span class="meta hint">Click a line number to comment on that line.</span>' if commentable else ""
    parts = [
        '<section id="diff"><div class="section-head"><h2>Diff</h2>',
        f'<span class="meta">{esc(stat)}{against}</span>',
        f'<span class="meta">{label[mode]} · <a href="?view={other}#diff">show {label[other]}</a></span>{hint}</div>',
    ]
    if stats_only:
        parts.append(
            '<p class="meta">Shown as stats only (over the diff limits; the workspace has the full change):</p><ul>'
        )
        parts += [
            f"<li><code>{esc(f['path'])}</code> +{f.get('added', 0)} −{f.get('removed', 0)}</li>" for f in stats_only
        ]
        parts.append("</ul>")
    rows_shown = 0
    for n, chunk in enumerate(chunks):
        in_full = rows_shown < ROWS_IN_FULL and n < FILES_IN_FULL
        view = file_view(chunk) if in_full else file_head(chunk)
        if view is None:
            continue
        attrs = f'class="file" id="f{n}" data-path="{esc(view.target)}"'
        if in_full:
            rows_shown += len(view.rows)
            parts.append(f"<details {attrs} open>{_file_head(view)}{file_table(view, mode)}</details>")
        else:
            src = f"{files_url}/{n}?view={mode}&path={quote(view.target)}"
            parts.append(
                f'<details {attrs} data-src="{esc(src)}">{_file_head(view)}<div class="lazy-body">'
                f'<p class="note"><a href="{esc(src)}">show this file</a></p></div></details>'
            )
    parts.append("</section>")
    return "".join(parts)


def file_fragment(patch: bytes, n: int, path: str, mode: View) -> str | None:
    """The table of the ``n``-th file of a patch, for a block opened on demand; None when that file is not
    ``path`` (a newer iteration replaced the diff since the page was made)."""
    chunks = patch_chunks(patch)
    view = file_view(chunks[n]) if 0 <= n < len(chunks) else None
    if view is None or view.target != path:
        return None
    return file_table(view, mode)
