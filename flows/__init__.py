"""Prefect flows of prefect-agent-tasks."""
