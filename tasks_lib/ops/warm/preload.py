"""What the warm server imports once, ahead of every flow run, and what would make forking after it unsafe.

Prefect, the agent_task flow and litellm are imported here, together with the modules a flow run and a
first model call would otherwise import lazily; ``fork_hazards`` names the threads the imports left
running (forking with threads running is unsafe). Heavy imports happen inside the functions only.
"""

from __future__ import annotations

import os
import sys

# Modules a flow run imports on its way (deployment pull steps, tasks, the sandboxes, litellm's service logger).
RUN_MODULES = (
    "prefect.runner",
    "prefect.deployments.steps",
    "prefect.task_engine",
    "prefect.concurrency.sync",
    "prefect.concurrency.services",
    "prefect.utilities.visualization",
    "prefect._internal.observers",
    "prefect._internal.installation",
    "prefect._internal.infrastructure_exit_codes",
    "tasks_lib.environments.bwrap",
    "tasks_lib.environments.local",
    "litellm._service_logger",
    "litellm.integrations.prometheus_services",
)


def preload() -> list[str]:
    """Import what every flow run needs, including what litellm loads lazily on its first call; the modules."""
    import litellm  # noqa: F401
    import prefect  # noqa: F401
    import prefect._internal.control_listener  # noqa: F401
    import prefect._internal.metrics  # noqa: F401
    import prefect.flow_engine  # noqa: F401

    import flows.agent_task  # noqa: F401
    import tasks_lib  # noqa: F401  (its quiet defaults, before Prefect reads its settings)
    import tasks_lib.agent.model  # noqa: F401

    _import_lazy_modules([*RUN_MODULES, *_first_call_modules()])
    return sorted(sys.modules)


def _first_call_modules() -> list[str]:
    """Modules a first model call imports, found in a throwaway child (the call starts threads)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            from tasks_lib.agent.model import litellm

            before = set(sys.modules)
            litellm().completion(
                model="openai/warm-up",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="hi",
                api_key="sk-warm-up",
            )
            os.write(write_end, "\n".join(sorted(set(sys.modules) - before)).encode())
        except BaseException:  # the warm-up is an optimisation: a failure leaves the first call cold
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        names = pipe.read().decode().split()
    os.waitpid(pid, 0)
    return names


def _import_lazy_modules(names: list[str]) -> None:
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (a module that only imports in a call's context stays lazy)
            pass


def fork_hazards() -> list[str]:
    """Threads other than the main one: forking with them running is unsafe."""
    import threading

    return [t.name for t in threading.enumerate() if t is not threading.main_thread()]
