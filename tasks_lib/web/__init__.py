"""The review pages `agent-tasks up` serves beside the relay: an inbox of sessions and a page per session
where a reviewer reads the change and decides (accept, request changes with line comments, reject, retry).

Server-rendered HTML, one small vanilla script, no build step. `create_app` makes the FastAPI app;
``python -m tasks_lib.web --host 127.0.0.1 --port 8766`` serves it.
"""

from tasks_lib.web.app import create_app

__all__ = ["create_app"]
