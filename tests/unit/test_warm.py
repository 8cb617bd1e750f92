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
