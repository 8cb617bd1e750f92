# Worker image for agent-tasks: Prefect, the flows, git and bubblewrap.
#
# As a host of a `process` pool, the default command starts a worker (set the pool with AGENT_TASKS_POOL)
# and the warm engine's server beside it;
# as the job image of a `docker` or `kubernetes` pool, Prefect replaces the command for each flow run.
#   docker build -t agent-tasks-worker .
#   docker run --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
#     -e PREFECT_API_URL=http://prefect:4200/api \
#     -e AGENT_TASKS_DB_URL=postgresql+psycopg://agent:...@postgres/agent_tasks \
#     -e OPENAI_API_KEY=... -v agent-tasks-home:/var/lib/agent-tasks agent-tasks-worker
# Offline builds: put wheels in ./wheelhouse (pip wheel -w wheelhouse .) and pip installs from there only.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends git bubblewrap ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 agent \
 && python3 -m venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    AGENT_TASKS_HOME=/var/lib/agent-tasks \
    AGENT_TASKS_PROJECT_DIR=/opt/agent-tasks \
    AGENT_TASKS_POOL=local-process

WORKDIR /opt/agent-tasks
COPY . /opt/agent-tasks
RUN if [ -d wheelhouse ]; then set -- --no-index --find-links wheelhouse; fi \
 && pip install --no-cache-dir "$@" . \
 && rm -rf wheelhouse build *.egg-info \
 && mkdir -p /var/lib/agent-tasks && chown agent:agent /var/lib/agent-tasks

# bubblewrap needs unprivileged user namespaces and its own /proc: run as a normal user and let the
# container create them (Docker: --security-opt seccomp=unconfined, apparmor=unconfined and
# systempaths=unconfined; Kubernetes: see README "Scale out").
USER agent
VOLUME /var/lib/agent-tasks
# The warm engine (README "A warm engine for process workers") runs beside the worker; it is used once the
# pool's `command` job variable is `python -m tasks_lib.warm client`, and without it runs start cold as before.
CMD ["sh", "-c", "python -m tasks_lib.warm serve & exec prefect worker start --pool \"$AGENT_TASKS_POOL\""]
