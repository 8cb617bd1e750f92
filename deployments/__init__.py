"""Deployments of the agent-task flow (schedules, event triggers, the webhook relay)."""
