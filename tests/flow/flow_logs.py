"""The log lines of a flow run, read back from the test Prefect server once the session has said how it ended."""

from __future__ import annotations

import asyncio
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId


def run_logs(flow_run_id: str) -> list[str]:
    """The messages the flow run logged, waiting (up to about 10 s) for its "session ... completed/stopped" line."""

    async def read():
        async with get_client() as client:
            return await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))

    for _ in range(50):
        messages = [entry.message for entry in asyncio.run(read())]
        if any("session " in m and ("completed" in m or "stopped" in m) for m in messages):
            return messages
        time.sleep(0.2)
    return messages
