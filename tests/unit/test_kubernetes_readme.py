"""The README's Kubernetes section is what `python -m tasks_lib.ops.kubernetes readme` prints (checked offline).

The manifests it describes are checked in test_kubernetes_manifests.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tasks_lib.ops import kubernetes as k8s
from tests.unit.test_kubernetes_manifests import CLAIM_VOLUME, ROOT

pytestmark = pytest.mark.usefixtures("no_network")


def test_the_readme_shows_what_the_module_prints():
    command = [sys.executable, "-m", "tasks_lib.ops.kubernetes", "readme"]
    printed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert printed == k8s.render_readme()
    assert k8s.readme_section((ROOT / "README.md").read_text()) == printed, (
        "README.md's Kubernetes text is stale: replace it with `python -m tasks_lib.ops.kubernetes readme`"
    )
    prose = " ".join(printed.split())
    assert f"against the Kubernetes {' and '.join(k8s.SCHEMA_VERSIONS)} OpenAPI schemas" in prose
    assert "No cluster ran any of it" in prose and json.dumps(CLAIM_VOLUME) in prose
