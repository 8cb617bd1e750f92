"""What the agent's boundary costs, in one run: a command's start-up in the sandbox with limits (a cgroup, rlimits, the
disk watch) against without; one HTTP request through `network: allow` (bridge + egress proxy) against `on`; and a
`pip download` of a few real wheels from an index served on 127.0.0.1, through `allow` against `on`.

    python bench/bench_boundary.py [--rounds 20] [--requests 100] [--wheels idna,six,certifi,packaging,attrs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HOME = Path(tempfile.mkdtemp(prefix="bench-boundary-"))
os.environ["AGENT_TASKS_HOME"] = str(HOME / "home")

from tasks_lib.domain.egress import Egress  # noqa: E402
from tasks_lib.domain.limits import Limits  # noqa: E402
from tasks_lib.environments.bwrap import BwrapEnvironment  # noqa: E402
from tasks_lib.environments.cgroups import cgroup_support  # noqa: E402

INDEX = Path("/opt/pypi")  # a local mirror of PyPI's simple index on these machines (simple/ and files/)


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` on a free port of 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def made_index(names: list[str]) -> Path:
    """A simple index of generated wheels (about 200 kB each), for machines without a local mirror."""
    root = HOME / "index"
    for name in names:
        wheel = root / "files" / f"{name}-1.0-py3-none-any.whl"
        wheel.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"{name}/data.bin", os.urandom(200_000))
            z.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
            z.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            z.writestr(f"{name}-1.0.dist-info/RECORD", "")
        page = root / "simple" / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f'<a href="../../files/{wheel.name}">{wheel.name}</a>')
    return root


def timed(env: BwrapEnvironment, command: str, timeout_s: float = 600) -> float:
    """Seconds one command took; fails loudly when it fails."""
    started = time.perf_counter()
    result = env.execute(command, timeout_s=timeout_s)
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"{command[:80]} failed: {result.render()[:800]}")
    return elapsed


def environment(name: str, **options) -> BwrapEnvironment:
    workspace, scratch = HOME / name / "ws", HOME / name / "tmp"
    workspace.mkdir(parents=True)
    return BwrapEnvironment(workspace, scratch, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--wheels", default="idna,six,certifi,packaging,attrs")
    args = parser.parse_args()

    bare = environment("bare")
    limited = environment("limited", limits=Limits())
    startup = {name: [] for name in ("without", "with")}
    for _ in range(args.rounds):  # interleaved, so both see the same machine
        startup["without"].append(timed(bare, "true"))
        startup["with"].append(timed(limited, "true"))
    without, with_limits = (statistics.median(startup[k]) * 1000 for k in ("without", "with"))
    print(f"command start-up, median of {args.rounds} ({cgroup_support().name}):")
    print(
        f"  without limits {without:7.1f} ms   with limits {with_limits:7.1f} ms   ratio {with_limits / without:.2f}x"
    )

    site = HOME / "site"
    site.mkdir()
    (site / "page.txt").write_text("x" * 10_000)
    server = serve(site)
    url = f"http://127.0.0.1:{server.server_port}/page.txt"
    loop = (
        'python3 -c "import sys, time, urllib.request; n = int(sys.argv[1]); t = time.perf_counter(); '
        "[urllib.request.urlopen(sys.argv[2], timeout=10).read() for _ in range(n)]; "
        f'print((time.perf_counter() - t) / n)" {args.requests} {url}'
    )
    allow = environment("allow", network="allow", egress=Egress(allow=[f"127.0.0.1:{server.server_port}"]))
    on = environment("on", network="on")
    per_request = {}
    for name, env in (("on", on), ("allow", allow)):
        result = env.execute(loop, timeout_s=600)
        if result.exit_code != 0:
            raise SystemExit(f"requests through {name} failed: {result.render()[:800]}")
        per_request[name] = float(result.output.strip().splitlines()[-1]) * 1000
    ratio = per_request["allow"] / per_request["on"]
    print(f"one 10 kB request, mean of {args.requests}:")
    print(f"  network on {per_request['on']:7.2f} ms   allow {per_request['allow']:7.2f} ms   ratio {ratio:.2f}x")

    wheels = args.wheels.split(",")
    mirror = INDEX if all((INDEX / "simple" / w).is_dir() for w in wheels) else made_index(wheels)
    index = serve(mirror)
    index_url = f"http://127.0.0.1:{index.server_port}/simple"
    pip = (
        f"rm -rf /tmp/dl && python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check -q "
        f"--index-url {index_url} -d /tmp/dl {' '.join(wheels)} && du -sk /tmp/dl"
    )
    allow_pip = environment("pip-allow", network="allow", egress=Egress(allow=[f"127.0.0.1:{index.server_port}"]))
    on_pip = environment("pip-on", network="on")
    downloads = {"on": [], "allow": []}
    for _ in range(3):
        downloads["on"].append(timed(on_pip, pip))
        downloads["allow"].append(timed(allow_pip, pip))
    on_s, allow_s = (statistics.median(downloads[k]) for k in ("on", "allow"))
    size = sum(f.stat().st_size for f in (HOME / "pip-on" / "tmp" / "dl").iterdir()) / 1e6
    source = "the local mirror" if mirror == INDEX else "generated"
    print(f"pip download of {len(wheels)} wheels ({size:.1f} MB, {source}), median of 3:")
    print(f"  network on {on_s:7.2f} s    allow {allow_s:7.2f} s    ratio {allow_s / on_s:.2f}x")
    for env in (allow, allow_pip):
        env.egress.stop()


if __name__ == "__main__":
    main()
