"""The worker image, built with no registry: a Debian base made from packages (mmdebstrap, cached), imported into
Docker, and the repository's Dockerfile built on it with this package and its dependencies installed from a
wheelhouse resolved for the base's own Python.

The base (Python, git, bubblewrap) is also the default image of `sandbox: docker`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from tasks_lib.environments.docker import DEFAULT_IMAGE, docker, docker_version, image_present
from tasks_lib.errors import AgentTasksError

WORKER_IMAGE = "agent-tasks-worker:latest"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
BASE_PACKAGES = ("python3", "python3-venv", "git", "bubblewrap", "ca-certificates", "procps")
# What pip may install on the base: its interpreter and glibc (bookworm: 2.36), x86-64.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)] + ["manylinux2014_x86_64", "linux_x86_64"]
# Printed by the base's Python: the values environment markers are evaluated against (PEP 508).
MARKERS = (
    "import json, os, platform, sys; i = sys.implementation; v = i.version; "
    "print(json.dumps({'implementation_name': i.name, 'implementation_version': "
    "f'{v.major}.{v.minor}.{v.micro}', 'os_name': os.name, 'platform_machine': platform.machine(), "
    "'platform_release': platform.release(), 'platform_system': platform.system(), "
    "'platform_version': platform.version(), 'python_full_version': platform.python_version(), "
    "'platform_python_implementation': platform.python_implementation(), "
    "'python_version': '.'.join(platform.python_version_tuple()[:2]), 'sys_platform': sys.platform}))"
)
Say = Callable[[str], None]


class ImageBuildError(AgentTasksError, RuntimeError):
    """A step of the image build failed; the message names the step and what it printed last."""


class ImageReport(BaseModel):
    """What `agent-tasks image build` made."""

    image: str
    base: str
    size_bytes: int
    holds: dict[str, str]
    seconds: dict[str, float]


def cache_dir() -> Path:
    """Where base file systems and wheelhouses are kept between builds (``AGENT_TASKS_IMAGE_CACHE``)."""
    from tasks_lib.config import load_settings

    return load_settings().image_cache


def project_dir() -> Path:
    """The checkout the image is built from: AGENT_TASKS_PROJECT_DIR, else the one this package runs from."""
    from tasks_lib.config import load_settings

    folder = load_settings().project_dir or Path(__file__).resolve().parents[2]
    if not (folder / "Dockerfile").is_file() or not (folder / "pyproject.toml").is_file():
        raise ImageBuildError(
            f"{folder} is not a checkout of prefect-agent-tasks (no Dockerfile and pyproject.toml): "
            "run from the repository or set AGENT_TASKS_PROJECT_DIR"
        )
    return folder


def _run(args: list[str], step: str, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    except FileNotFoundError:
        raise ImageBuildError(f"{step}: {args[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{step}: no result after {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise ImageBuildError(f"{step} failed: " + " / ".join(last))
    return done


def base_tarball(mirror: str = MIRROR, say: Say = print) -> Path:
    """A minimal Debian root file system with BASE_PACKAGES, as a tarball; made once with mmdebstrap, then cached."""
    key = hashlib.sha256(f"{SUITE} {mirror} {' '.join(BASE_PACKAGES)}".encode()).hexdigest()[:12]
    tarball = cache_dir() / f"debian-{SUITE}-{key}.tar"
    if tarball.is_file():
        say(f"base file system: cached ({tarball})")
        return tarball
    if shutil.which("mmdebstrap") is None:
        raise ImageBuildError(
            "making a base needs mmdebstrap (apt-get install mmdebstrap), or give one: --base DIR|TARBALL|IMAGE"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    say(f"base file system: Debian {SUITE} from {mirror} with {', '.join(BASE_PACKAGES)} (about 30 s, once) …")
    security = f"deb {SECURITY_MIRROR} {SUITE}-security main" if mirror == MIRROR else None
    sources = [f"deb {mirror} {SUITE} main", *([security] if security else [])]
    _run(
        ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(partial), *sources],
        "mmdebstrap",
        stdin=subprocess.DEVNULL,
    )
    partial.replace(tarball)
    return tarball


def import_base(source: Path, tag: str) -> None:
    """``source`` (a root file system folder or tarball) as the Docker image ``tag``."""
    if source.is_dir():
        tar = subprocess.Popen(["tar", "-C", str(source), "-c", "."], stdout=subprocess.PIPE)
        _run(["docker", "import", "-", tag], "docker import", stdin=tar.stdout)
        tar.wait()
    else:
        _run(["docker", "import", str(source), tag], "docker import")


def base_markers(image: str) -> dict[str, str]:
    """The PEP 508 marker values of the Python in ``image``."""
    done = docker(["run", "--rm", "--network", "none", "--entrypoint", "python3", image, "-c", MARKERS], timeout=120)
    if done.returncode != 0:
        raise ImageBuildError(f"the base {image} has no working python3: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def _pip(args: list[str], step: str) -> None:
    _run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], step)


def _wheel_name(path: Path) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(path.name.split("-")[0])


def missing_requirements(wheelhouse: Path, root: str, markers: dict[str, str]) -> list[str]:
    """Requirements reachable from ``root`` (with their extras) that no wheel in ``wheelhouse`` provides, under the
    target's ``markers`` (pip resolves markers for the Python that runs it, not the base's)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wheels = {_wheel_name(w): w for w in wheelhouse.glob("*.whl")}
    missing: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(canonicalize_name(root), frozenset())]
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        wheel = wheels.get(name)
        if wheel is None:
            missing.append(name)
            continue
        for line in _requires(wheel):
            req = Requirement(line)
            wanted = any(
                req.marker is None or req.marker.evaluate({**markers, "extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                queue.append((canonicalize_name(req.name), frozenset(req.extras)))
    return sorted(set(missing))


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(meta).decode()
    head = text.split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("Requires-Dist:")]


def wheelhouse(project: Path, markers: dict[str, str], say: Say = print) -> Path:
    """This package's wheel and every wheel it needs on the base (binary wheels for the base's Python and glibc);
    cached per project version and base Python."""
    version = markers["python_full_version"]
    digest = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()[:12]
    folder = cache_dir() / f"wheelhouse-py{version}-{digest}"
    staging = Path(tempfile.mkdtemp(prefix="wheelhouse-", dir=cache_dir()))
    try:
        say(f"wheelhouse: this package and its dependencies for Python {version} …")
        _pip(["wheel", "--no-deps", "-w", str(staging), str(project)], "pip wheel (this package)")
        own = next(staging.glob("*.whl"))
        if folder.is_dir() and (folder / ".complete").is_file():
            for old in folder.glob("prefect_agent_tasks-*.whl"):
                old.unlink()
            shutil.copy2(own, folder)
            say(f"wheelhouse: dependencies cached ({folder})")
            return folder
        target = ["--only-binary=:all:", "--python-version", version, "--implementation", "cp"]
        target += ["--abi", f"cp{markers['python_version'].replace('.', '')}"]
        target += [part for platform in PLATFORMS for part in ("--platform", platform)]
        _pip(["download", "-d", str(staging), *target, str(own)], "pip download (dependencies)")
        for _ in range(10):  # markers pip judged by its own Python: fetch what the base's needs too
            missing = missing_requirements(staging, "prefect-agent-tasks", markers)
            if not missing:
                break
            _pip(["download", "-d", str(staging), *target, *missing], f"pip download ({', '.join(missing)})")
        else:
            raise ImageBuildError(f"wheelhouse: still missing {', '.join(missing)} for Python {version}")
        (staging / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        shutil.rmtree(folder, ignore_errors=True)
        staging.replace(folder)
        return folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_context(project: Path, wheels: Path, into: Path) -> Path:
    """The files `docker build` sees: the repository's tracked files (and new, not ignored ones) and the wheels."""
    listed = _run(["git", "ls-files", "-co", "--exclude-standard", "-z"], "git ls-files", cwd=project).stdout
    for name in filter(None, listed.split("\0")):
        source = project / name
        if source.is_file() and not name.startswith(("tests/", "bench/", ".git")):
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    shutil.copytree(wheels, into / "wheelhouse", ignore=shutil.ignore_patterns(".complete"))
    return into


def image_size(image: str) -> int:
    """The image's size in bytes."""
    done = docker(["image", "inspect", "--format", "{{.Size}}", image])
    return int(done.stdout.strip() or 0)


def image_holds(image: str) -> dict[str, str]:
    """The versions of what the worker image holds."""
    script = (
        'echo "python $(python --version 2>&1 | cut -d" " -f2)"; echo "git $(git --version | cut -d" " -f3)"; '
        'echo "bubblewrap $(bwrap --version | cut -d" " -f2)"; '
        "python -c 'from importlib.metadata import version as v; "
        'print("prefect", v("prefect")); print("litellm", v("litellm")); '
        'print("prefect-agent-tasks", v("prefect-agent-tasks"))\''
    )
    done = docker(["run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script], timeout=120)
    if done.returncode != 0:
        raise ImageBuildError(f"the image {image} does not run: {done.stderr.strip()[-300:]}")
    return dict(line.split(" ", 1) for line in done.stdout.strip().splitlines() if " " in line)


def build(
    tag: str = WORKER_IMAGE,
    base: str | None = None,
    base_tag: str = DEFAULT_IMAGE,
    base_only: bool = False,
    mirror: str = MIRROR,
    say: Say = print,
) -> ImageReport:
    """Build the worker image (and the base, when ``base`` is not given and none is held) as the module says."""
    try:
        docker_version()
    except AgentTasksError as exc:
        raise ImageBuildError(str(exc)) from None
    seconds: dict[str, float] = {}
    started = time.monotonic()
    if base is not None and not Path(base).exists():
        if not image_present(base):
            raise ImageBuildError(f"--base {base}: no such folder, tarball or image on this Docker engine")
        base_tag = base
        say(f"base: the image {base}")
    elif base is not None:
        say(f"base: importing {base} as {base_tag} …")
        import_base(Path(base), base_tag)
    elif image_present(base_tag):
        say(f"base: {base_tag} (already on this engine)")
    else:
        import_base(base_tarball(mirror, say), base_tag)
    seconds["base"] = time.monotonic() - started
    if base_only:
        return ImageReport(image=base_tag, base=base_tag, size_bytes=image_size(base_tag), holds={}, seconds=seconds)
    project = project_dir()
    cache_dir().mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    wheels = wheelhouse(project, base_markers(base_tag), say)
    seconds["wheelhouse"] = time.monotonic() - began
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="image-context-") as folder:
        context = build_context(project, wheels, Path(folder))
        say(f"image: docker build -t {tag} on {base_tag} (about a minute) …")
        _run(
            ["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base_tag}", "-t", tag, str(context)], "docker build"
        )
    seconds["build"] = time.monotonic() - began
    seconds["total"] = time.monotonic() - started
    return ImageReport(image=tag, base=base_tag, size_bytes=image_size(tag), holds=image_holds(tag), seconds=seconds)
