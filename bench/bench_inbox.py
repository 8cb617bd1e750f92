"""How fast the inbox reads a big store: the query behind `agent-tasks inbox` over N sessions.

Fills a fresh SQLite store with N sessions (each with a conversation of realistic size, as the
flow stores it), then times `Store.list_sessions(limit=50)` — the inbox's query — and, side by side
in the same run, the query as it was before (whole rows, conversations included, sorted on a column
without an index). Prints medians and the ratio.

    python bench/bench_inbox.py [--sessions 10000] [--conversation-kb 20] [--repeat 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text  # noqa: E402

import tasks_lib  # noqa: E402,F401
from tasks_lib.store import SessionRow, Store, utcnow  # noqa: E402


def fill(store: Store, sessions: int, conversation_kb: int, vary: Callable[[int], dict] | None = None) -> None:
    """N sessions, newest last, each with a conversation of about ``conversation_kb`` kB; ``vary(i)`` may
    change the i-th session's columns."""
    message = {"role": "tool", "tool_call_id": "c", "content": "x" * 1000}
    conversation = [message] * conversation_kb
    now = utcnow()
    rows = [
        {
            **dict(
                id=str(uuid.uuid4()),
                created_at=now - timedelta(seconds=sessions - i),
                updated_at=now,
                status="completed",
                status_reason="done",
                request={"repository": "/r", "instructions": f"task {i}"},
                agent="default",
                model="m",
                repository="/srv/repo",
                instructions=f"task {i}",
                iteration=1,
                steps_used=10,
                prompt_tokens=1000,
                completion_tokens=100,
                cached_tokens=0,
                lines_added=3,
                lines_removed=1,
                files_changed=1,
                change_rounds=0,
                conversation=conversation,
            ),
            **(vary(i) if vary else {}),
        }
        for i in range(sessions)
    ]
    with store.engine.begin() as db:
        for start in range(0, len(rows), 1000):
            db.execute(insert(SessionRow), rows[start : start + 1000])


def timed(fn, repeat: int) -> float:
    """Median seconds of ``fn`` over ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--conversation-kb", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agent-bench-inbox-"))
    try:
        store = Store(f"sqlite:///{tmp / 'store.db'}")
        fill(store, args.sessions, args.conversation_kb)

        def before() -> None:  # whole rows, conversations included, no index to sort by
            query = text("SELECT * FROM sessions NOT INDEXED ORDER BY created_at DESC LIMIT 50")
            with store.engine.connect() as db:
                db.execute(query).all()

        def now() -> None:
            assert len(store.list_sessions(limit=50)) == 50

        with store.engine.connect() as db:
            plan = " ".join(
                str(r[-1])
                for r in db.execute(
                    text("EXPLAIN QUERY PLAN SELECT id FROM sessions ORDER BY created_at DESC LIMIT 50")
                ).all()
            )
        t_before, t_now = timed(before, args.repeat), timed(now, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"sessions                     {args.sessions} (conversations of ~{args.conversation_kb} kB)")
    print(f"query plan                   {plan}")
    print(f"inbox query before           {1000 * t_before:.1f} ms")
    print(f"inbox query now              {1000 * t_now:.1f} ms")
    print(f"ratio before / now           {t_before / t_now:.1f}x")


if __name__ == "__main__":
    main()
