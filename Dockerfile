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
# Offline, with no registry: `agent-tasks image build` makes a Debian base from packages and a wheelhouse for it,
# and builds this file on them (pip then installs from ./wheelhouse only).
ARG BASE_IMAGE=python:3.12-slim

# The virtual environment is built in a stage of its own, so the wheels it was installed from stay out of the image.
FROM ${BASE_IMAGE} AS venv
COPY . /src
RUN python3 -m venv /opt/venv \
 && if [ -d /src/wheelhouse ]; then set -- --no-index --find-links /src/wheelhouse prefect-agent-tasks; \
    else set -- /src; fi \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "$@"

FROM ${BASE_IMAGE}
# A base made by `agent-tasks image build` already holds git and bubblewrap: apt runs only when something is
# missing (a registry's python image), so an offline build needs no package mirror.
RUN if ! command -v git >/dev/null || ! command -v bwrap >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git bubblewrap ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --create-home --uid 1000 agent \
 && mkdir -p /var/lib/agent-tasks && chown agent:agent /var/lib/agent-tasks
COPY --from=venv /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    AGENT_TASKS_HOME=/var/lib/agent-tasks \
    AGENT_TASKS_PROJECT_DIR=/opt/agent-tasks \
    AGENT_TASKS_POOL=local-process

# The checkout's deployment files: prefect.yaml's entry points are paths in it.
WORKDIR /opt/agent-tasks
COPY pyproject.toml prefect.yaml README.md ./
COPY flows flows
COPY deployments deployments
COPY tasks_lib tasks_lib

# bubblewrap needs unprivileged user namespaces and its own /proc: run as a normal user and let the
# container create them (Docker: --security-opt seccomp=unconfined, apparmor=unconfined and
# systempaths=unconfined; Kubernetes: see README "Scale out").
USER agent
VOLUME /var/lib/agent-tasks
# The warm engine (README "A warm engine for process workers") runs beside the worker; it is used once the
# pool's `command` job variable is `python -m tasks_lib.warm client`, and without it runs start cold as before.
CMD ["sh", "-c", "python -m tasks_lib.warm serve & exec prefect worker start --pool \"$AGENT_TASKS_POOL\""]
