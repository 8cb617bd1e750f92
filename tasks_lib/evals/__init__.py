"""Evals: suites of tasks run through the real flow and judged by withheld tests (`agent-tasks eval`)."""
