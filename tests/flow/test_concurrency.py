"""Per-key concurrency on a real Prefect server: runs of one key take turns, other keys run alongside,
and a superseding run cancels the key's older unfinished runs.

The tests of the same code that need no Prefect server are in tests/unit/test_concurrency.py.
"""

from __future__ import annotations

import threading
import time
import uuid

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.states import Paused, Scheduled

from tasks_lib.session.concurrency import key_slot, key_tag, limit_name


@flow
def keyed(key: str, hold: float, supersede: bool = False) -> tuple[float, float]:
    """Hold the key's slot for `hold` seconds; when it was held."""
    with key_slot(key, supersede=supersede):
        start = time.time()
        time.sleep(hold)
        return start, time.time()


def run_all(*calls: tuple[str, float]) -> list[tuple[float, float]]:
    """Run keyed() once per (key, hold), all at the same time; their held intervals in order."""
    results: dict[int, tuple[float, float]] = {}
    threads = [threading.Thread(target=lambda i=i, c=c: results.__setitem__(i, keyed(*c))) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == len(calls), "a keyed run did not finish"
    return [results[i] for i in range(len(calls))]


def test_runs_of_one_key_take_turns_and_other_keys_run_alongside():
    key, other = f"acme/widgets#{uuid.uuid4().hex[:6]}", f"acme/gadgets#{uuid.uuid4().hex[:6]}"
    first, second, elsewhere = run_all((key, 3.0), (key, 3.0), (other, 3.0))
    same = sorted([first, second])
    assert same[1][0] >= same[0][1], f"two runs of {key} held the slot at once: {same}"
    assert any(elsewhere[0] < end and start < elsewhere[1] for start, end in same), (
        f"another key had to wait: {elsewhere} vs {same}"
    )
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(key))
    assert limit.limit == 1 and limit.active and limit.active_slots == 0


def test_a_superseding_run_cancels_the_keys_older_unfinished_runs():
    key, other = f"acme/widgets#{uuid.uuid4().hex[:6]}", f"acme/widgets#{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        queued = client.create_flow_run(
            keyed, parameters={"key": key, "hold": 0}, tags=[key_tag(key)], state=Scheduled()
        )
        waiting = client.create_flow_run(
            keyed, parameters={"key": key, "hold": 0}, tags=[key_tag(key)], state=Scheduled()
        )
        client.set_flow_run_state(waiting.id, Paused(reschedule=True, timeout_seconds=600), force=True)
        unrelated = client.create_flow_run(
            keyed, parameters={"key": other, "hold": 0}, tags=[key_tag(other)], state=Scheduled()
        )

    keyed(key, 0, supersede=True)

    with get_client(sync_client=True) as client:
        states = {
            name: client.read_flow_run(run.id).state
            for name, run in (("queued", queued), ("waiting", waiting), ("unrelated", unrelated))
        }
        of_key = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[key_tag(key)])))
    assert states["queued"].is_cancelled() and states["waiting"].is_cancelled()
    assert "superseded by flow run" in states["waiting"].message and key in states["waiting"].message
    assert states["unrelated"].is_scheduled()
    assert sorted(r.state.type.value for r in of_key) == ["CANCELLED", "CANCELLED", "COMPLETED"]
