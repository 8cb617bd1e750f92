"""prefect-agent-tasks: coding-agent tasks as Prefect flows.

Importing the package sets the quiet defaults the project relies on (no telemetry, litellm's
bundled price table instead of a network fetch) unless the environment already chose otherwise.
"""

import os as _os

for _name, _value in {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}.items():
    _os.environ.setdefault(_name, _value)
