"""The wheelhouse of the worker image is resolved for the base's Python, not for the one running pip."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tasks_lib.ops.image import missing_requirements

BASE = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.2",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_release": "6.1.0",
    "platform_system": "Linux",
    "platform_version": "#1 SMP",
    "python_full_version": "3.11.2",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "sys_platform": "linux",
}


def wheel(folder: Path, name: str, *requires: str) -> None:
    """A wheel holding only its metadata."""
    dist = f"{name.replace('-', '_')}-1.0"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as archive:
        lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0", *(f"Requires-Dist: {r}" for r in requires)]
        archive.writestr(f"{dist}.dist-info/METADATA", "\n".join(lines) + "\n\nA description.\n")


def test_markers_are_judged_for_the_base_and_extras_are_followed(tmp_path):
    wheel(tmp_path, "app", "redis>=5", "psycopg[binary]>=3", 'tomli; python_version < "3.11"')
    wheel(tmp_path, "redis", 'async-timeout>=4.0.3; python_full_version < "3.11.3"')
    wheel(tmp_path, "psycopg", 'psycopg-binary==3.2; extra == "binary"', 'backports-zoneinfo; python_version < "3.9"')
    assert missing_requirements(tmp_path, "app", BASE) == ["async-timeout", "psycopg-binary"]
    newer = {**BASE, "python_full_version": "3.11.7"}
    assert missing_requirements(tmp_path, "app", newer) == ["psycopg-binary"]
    wheel(tmp_path, "async-timeout")
    wheel(tmp_path, "psycopg-binary")
    assert missing_requirements(tmp_path, "app", BASE) == []


def test_the_root_itself_missing_is_reported(tmp_path):
    assert missing_requirements(tmp_path, "prefect-agent-tasks", BASE) == ["prefect-agent-tasks"]
