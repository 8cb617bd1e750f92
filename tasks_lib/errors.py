"""AgentTasksError: the base of every error agent-tasks raises on purpose, each with a message meant for people.

Every error class of the project derives from it (and, where callers catch them so, from ValueError or
RuntimeError too), so a front door — the CLI, the review pages, a workflow loader — can tell our errors, whose
message is the whole story, from bugs, which deserve a traceback.
"""


class AgentTasksError(Exception):
    """An error of agent-tasks whose message says what went wrong and, where it can, what to do."""
