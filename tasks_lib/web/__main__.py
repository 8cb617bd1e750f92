"""Serve the review pages: ``python -m tasks_lib.web [--host 127.0.0.1] [--port 8766]`` (`agent-tasks up` does)."""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
import argparse


def main() -> None:
    """Parse the address and run the app under uvicorn until interrupted."""
    import uvicorn

    from tasks_lib.web.app import DEFAULT_PORT, create_app

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (and the Host the app answers to).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    uvicorn.run(
        create_app(host=args.host, port=args.port),
        host=args.host,
        port=args.port,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
