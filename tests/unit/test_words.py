"""Wording shared by the CLI and the pages (issue 22, item 8): plurals, a status said once, messages without
pydantic's prefixes."""

from __future__ import annotations

import pytest

from tasks_lib.domain.request import BadRequest, parse_request
from tasks_lib.domain.words import counted, plain, status_line


def test_counts_take_the_plural_they_need():
    assert [counted(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert counted(1, "change round") == "1 change round" and counted(3, "entry", "entries") == "3 entries"


def test_a_status_is_said_once():
    assert status_line("accepted", "accepted: 1a2b3c → agent/x") == "accepted: 1a2b3c → agent/x"
    assert status_line("failed", "the model could not be reached") == "failed: the model could not be reached"
    assert status_line("running", "") == "running"


def test_validation_messages_lose_pydantics_prefixes():
    assert plain("Value error, must not be empty") == "must not be empty"
    with pytest.raises(BadRequest) as caught:
        parse_request({"repository": "/r", "instructions": "   "})
    assert str(caught.value) == "instructions: must not be empty"


def test_names_with_double_underscores_stay_names_in_rendered_markdown():
    from markdown_it import MarkdownIt

    from tasks_lib.domain.words import literal_names

    text = "Removed __pycache__ and fixed __init__.py; kept `__main__`, _emphasis_ and **bold**.\n\n```\nrm -r __pycache__\n```\n"
    html = MarkdownIt().render(literal_names(text))
    assert "Removed __pycache__ and fixed __init__.py;" in html and "<strong>pycache</strong>" not in html
    assert "<code>__main__</code>" in html and "<em>emphasis</em>" in html and "<strong>bold</strong>" in html
    assert "rm -r __pycache__\n</code></pre>" in html, "code blocks are left as written"
    assert literal_names(literal_names(text)) == literal_names(text), "escaping twice changes nothing"


def test_the_terminal_shows_dunder_names_as_written():
    from rich.console import Console
    from rich.markdown import Markdown

    from tasks_lib.domain.words import literal_names

    console = Console(width=100, record=True, color_system=None)
    console.print(Markdown(literal_names("Deleted __pycache__ from the tree.")))
    assert "Deleted __pycache__ from the tree." in console.export_text()


def test_the_review_page_renderer_keeps_dunder_names():
    from tasks_lib.review.render import markdown_html

    assert "Deleted __pycache__." in markdown_html("Deleted __pycache__.")
