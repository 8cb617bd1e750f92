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
