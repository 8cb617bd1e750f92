"""Unit tests run without a Prefect server: an accidental Prefect API call fails at once.

Prefect, given no API address, would quietly start a temporary server of its own (seconds, once per
process). Here there is no address and that mode is off, so a client call raises "No Prefect API URL
provided" straight away, and the project's `can_emit()` sees no server and sends no session events
(as in any process without one). A test that needs the server belongs in tests/flow.
"""

from __future__ import annotations

import socket
import sys

import pytest

NO_SERVER = {"PREFECT_API_URL": None, "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false"}


@pytest.fixture(scope="package", autouse=True)
def no_prefect_server():
    """For every test under tests/unit (once for the package: entering Prefect's settings costs ~40 ms).

    The environment is set for the subprocesses tests start, and for Prefect if a test imports it first;
    when Prefect is already imported (a test module imports it, or tests/flow ran first in this process
    and its test server is up), its settings are overridden for the duration as well.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in NO_SERVER.items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        if "prefect.settings" not in sys.modules:
            yield
            return
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, temporary_settings

        with temporary_settings({PREFECT_SERVER_ALLOW_EPHEMERAL_MODE: False}, restore_defaults={PREFECT_API_URL}):
            yield


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (for modules that promise to work offline)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
