"""`python -m tasks_lib.cli`: the agent-tasks command."""

from tasks_lib.cli import main

main()
