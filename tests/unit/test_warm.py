"""The warm engine's client imports nothing heavy (it starts in milliseconds).

Warm runs on the Prefect test server are in tests/flow/test_warm.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_imports_nothing_heavy():
    probe = "import sys, tasks_lib.warm; print(sorted(m for m in sys.modules if m.startswith(('prefect', 'litellm', 'flows'))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_signal_lines_survive_being_split_across_reads_and_a_null_signal_is_skipped():
    import signal

    from tasks_lib.ops.warm.protocol import forwarded_signals, whole_lines

    pending, seen = b"", []
    for chunk in (b'{"sig', b'nal": 15}\n{"signal": null}\n{"signal": 2', b"}\n", b'{"signal": "x"}\n[1]\n'):
        lines, pending = whole_lines(pending, chunk)
        seen += list(forwarded_signals(lines))
    assert seen == [signal.SIGTERM, signal.SIGINT] and pending == b""
    assert list(forwarded_signals(b'{"signal": 9}\n')) == [], "only the signals a worker forwards"
