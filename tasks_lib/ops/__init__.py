"""Running the stack: `agent-tasks up`, the warm engine, and the local Prefect API."""
