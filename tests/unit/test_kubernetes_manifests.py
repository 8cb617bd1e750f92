"""The Kubernetes pool in deployments/kubernetes/, checked offline (no cluster can run here).

The Job a flow run gets (from tasks_lib.ops.kubernetes and from prefect-kubernetes's worker code) and the other
manifests are validated against Kubernetes' schemas (kubernetes-validate, strict) and `api_problems`; broken ones
are shown to fail. The template passes Prefect's own checks. (The README's text: test_kubernetes_readme.py.)
"""

from __future__ import annotations

import asyncio
import copy
import functools
import re
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from tasks_lib.ops import kubernetes as k8s

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/agent-tasks-worker:1"
CLAIM_VOLUME = [{"name": "home", "persistentVolumeClaim": {"claimName": k8s.CLAIM}}]
# Job variables of a deployment: the README's example, the optional claim, every resource set, a command.
SCENARIOS = {
    "readme": {"image": IMAGE},
    "claim": {"image": IMAGE, "volumes": CLAIM_VOLUME, "env": {"AGENT_TASKS_MODEL": "openai/gpt-4o-mini"}},
    "resources": {
        "image": IMAGE,
        "cpu_limit": "2",
        "cpu_request": "250m",
        "memory_request": "512Mi",
        "memory_limit": "8Gi",
        "finished_job_ttl": 3600,
        "service_account_name": "agent-runs",
        "command": "python -m prefect.engine",
    },
}
# Prefect's default pod spec carries two Job fields; prefect-kubernetes refuses a template without them.
PREFECT_POD_EXTRAS = {"parallelism", "completions"}

pytestmark = pytest.mark.usefixtures("no_network")  # everything here works offline


# --- Kubernetes' schemas --------------------------------------------------------------------------------------


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    """A strict validator for one kind, built from the schemas inside kubernetes-validate as its validate() does."""
    (full,) = {v for v in kv_utils.all_versions() if kv_utils.major_minor(v) == version}
    folder = f"kubernetes-json-schema/v{full}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv_utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(manifest: dict[str, Any], version: str) -> list[str]:
    """Every strict-schema error of a manifest, as `path: message`."""
    validator = _validator(version, manifest["kind"], manifest["apiVersion"])
    return sorted(f"{e.json_path}: {e.message}" for e in validator.iter_errors(manifest))


def assert_valid(manifest: dict[str, Any], version: str) -> None:
    assert schema_errors(manifest, version) == []


@pytest.mark.parametrize("version", k8s.SCHEMA_VERSIONS)
def test_schema_errors_agree_with_kubernetes_validate(jobs, version):
    """schema_errors() lists what the package's entry point (strict) finds first, at exactly ``version``."""
    job = without_prefect_extras(jobs["readme"])
    assert kubernetes_validate.validate(job, version, strict=True) == version  # no fallback to an older version
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["procMount"] = 123
    with pytest.raises(kubernetes_validate.ValidationError) as refused:
        kubernetes_validate.validate(job, version, strict=True)
    assert schema_errors(job, version) == [f"{refused.value.json_path}: {refused.value.message}"]


def without_prefect_extras(job: dict[str, Any]) -> dict[str, Any]:
    job = copy.deepcopy(job)
    for key in PREFECT_POD_EXTRAS:
        job["spec"]["template"]["spec"].pop(key)
    return job


# --- rules of the API server that the schemas leave out ---------------------------------------------------------

# The forms of a resource quantity (k8s.io/apimachinery resource.Quantity): a signed decimal and a suffix.
QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
SUFFIX = {"": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
SUFFIX |= {f"{p}i": 1024**n for n, p in enumerate("KMGTPE", start=1)}
PROFILE_TYPES = {"RuntimeDefault", "Unconfined", "Localhost"}  # seccompProfile.type, appArmorProfile.type
PROC_MOUNTS = {"Default", "Unmasked"}


def quantity(text: Any) -> Decimal:
    match = QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    suffix = match.group(2) or ""
    number = Decimal(str(text)[: len(str(text)) - len(suffix)])
    return number * Decimal(10) ** int(suffix[1:]) if suffix[:1] in ("e", "E") else number * SUFFIX[suffix]


def api_problems(job: dict[str, Any]) -> list[str]:
    """What the API server's validation (pkg/apis/core/validation) would refuse in the pod of a Job."""
    pod = job["spec"]["template"]["spec"]
    problems = []
    contexts = [("pod", pod.get("securityContext") or {})]
    contexts += [(c["name"], c.get("securityContext") or {}) for c in pod["containers"]]
    for where, context in contexts:
        for field in ("seccompProfile", "appArmorProfile"):
            if field in context and context[field]["type"] not in PROFILE_TYPES:
                problems.append(f"{where}: {field}.type {context[field]['type']!r}")
        if context.get("runAsNonRoot") and context.get("runAsUser") == 0:
            problems.append(f"{where}: runAsNonRoot with runAsUser 0")
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        name, context = container["name"], container.get("securityContext") or {}
        if context.get("procMount", "Default") not in PROC_MOUNTS:
            problems.append(f"{name}: procMount {context['procMount']!r}")
        if context.get("procMount") == "Unmasked" and pod.get("hostUsers", True):
            problems.append(f"{name}: `hostUsers` must be false to use `Unmasked`")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"{name}: volumeMount {mount['name']!r} names no volume")
        resources = container.get("resources") or {}
        try:
            limits = {r: quantity(v) for r, v in (resources.get("limits") or {}).items()}
            requests = {r: quantity(v) for r, v in (resources.get("requests") or {}).items()}
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        problems += [
            f"{name}: {r} request above its limit" for r in requests if r in limits and requests[r] > limits[r]
        ]
    return problems


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return k8s.load_template()


@pytest.fixture(scope="module")
def jobs(template) -> dict[str, dict[str, Any]]:
    prefect_env = {"PREFECT_API_URL": "http://prefect-server.prefect.svc.cluster.local:4200/api"}
    return {
        name: k8s.render_job_manifest(template, values, prefect_env=prefect_env) for name, values in SCENARIOS.items()
    }


@pytest.fixture(scope="module")
def worker_job(template) -> dict[str, Any]:
    """The Job prefect-kubernetes's worker code makes of the template for a flow run (no server, no cluster)."""
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    async def configure():
        # client: nothing to resolve (no block or variable references), so the client is never used
        return await KubernetesWorkerJobConfiguration.from_template_and_values(
            template, SCENARIOS["claim"], client=object()
        )

    configuration = asyncio.run(configure())
    configuration.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="agent-run", flow_id=uuid.uuid4()))
    return configuration.job_manifest


def documents(name: str) -> list[dict[str, Any]]:
    return k8s.load_yaml_documents(k8s.FOLDER / name)


# --- the template -----------------------------------------------------------------------------------------------


def test_the_template_is_prefects_default_with_the_sandbox_settings_laid_over_it(template):
    text = (k8s.FOLDER / k8s.TEMPLATE_FILE).read_text()
    assert text == k8s.template_text(k8s.derive_template()), (
        "base-job-template.json is not what `python -m tasks_lib.ops.kubernetes template` derives from this "
        "Prefect's default: run it, then read the diff"
    )
    default = k8s.prefect_default_template()
    assert default["job_configuration"].keys() <= template["job_configuration"].keys()
    assert default["variables"]["properties"].keys() <= template["variables"]["properties"].keys()
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["hostUsers"] is False and pod["containers"][0]["securityContext"]["procMount"] == "Unmasked"


def test_the_template_passes_prefects_own_checks(template):
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.schema_tools import is_valid_schema, validate

    validate_base_job_template(template)  # what the server runs on `work-pool create`: placeholders are declared
    variables = template["variables"]
    is_valid_schema(variables, preprocess=False)  # valid JSON Schema
    jsonschema.Draft202012Validator.check_schema(variables)
    declared = set(variables["properties"])
    used = k8s.placeholders(template["job_configuration"])
    assert used <= declared, f"placeholders without a variable: {used - declared}"
    assert set(k8s.NEW_VARIABLES) <= used  # what the template adds is used
    # the work pool's defaults and each scenario's job variables pass the server's job-variable validation
    validate(k8s.variable_defaults(template), variables, preprocess=True, ignore_required=True, raise_on_error=True)
    for values in SCENARIOS.values():
        validate({**k8s.variable_defaults(template), **values}, variables, preprocess=True, raise_on_error=True)


@pytest.mark.parametrize(
    "values, problem",
    [
        ({}, "'image' is a required property"),
        ({"image": IMAGE, "volumes": "home"}, "'home' is not of type 'array'"),
        ({"image": IMAGE, "image_pull_policy": "Sometimes"}, "'Sometimes' is not one of"),
    ],
)
def test_prefect_refuses_job_variables_the_template_does_not_allow(template, values, problem):
    from prefect.utilities.schema_tools import ValidationError, validate

    with pytest.raises(ValidationError, match=re.escape(problem)):
        validate(
            {**k8s.variable_defaults(template), **values}, template["variables"], preprocess=True, raise_on_error=True
        )


# --- the Job --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", k8s.SCHEMA_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_job_is_valid_kubernetes(jobs, scenario, version):
    job = jobs[scenario]
    assert_valid(without_prefect_extras(job), version)
    # Prefect's two extras are the only unknown fields the strict schema finds
    (error,) = schema_errors(job, version)
    assert error.startswith("$.spec.template.spec: Additional properties are not allowed")
    assert set(re.findall(r"'(\w+)'", error)) == PREFECT_POD_EXTRAS
    assert api_problems(job) == []


def test_the_job_has_what_bubblewrap_and_the_session_need(jobs):
    job = jobs["claim"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AGENT_TASKS_SANDBOX"] == "bwrap" and env["AGENT_TASKS_MODEL"] == "openai/gpt-4o-mini"
    assert env["PREFECT_API_URL"].endswith("/api")  # the worker's own setting, passed on
    assert container["envFrom"] == [{"secretRef": {"name": k8s.SECRET}}]
    assert container["image"] == IMAGE and container["args"] == ["prefect", "flow-run", "execute"]
    assert {"name": "home", "mountPath": k8s.HOME} in container["volumeMounts"] and pod["volumes"] == CLAIM_VOLUME
    assert pod["securityContext"]["seccompProfile"] == {"type": "Unconfined"}
    assert pod["securityContext"]["appArmorProfile"] == {"type": "Unconfined"}
    assert pod["securityContext"]["runAsUser"] == k8s.AGENT_UID and pod["automountServiceAccountToken"] is False
    assert job["metadata"]["namespace"] == k8s.NAMESPACE
    assert jobs["readme"]["spec"]["template"]["spec"]["volumes"] == [
        {"name": "home", "emptyDir": {"sizeLimit": "20Gi"}}
    ]
    resources = jobs["resources"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "2", "memory": "8Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}}
    assert jobs["resources"]["spec"]["ttlSecondsAfterFinished"] == 3600
    dockerfile = (ROOT / "Dockerfile").read_text()  # the image's user and home are the template's
    assert f"--uid {k8s.AGENT_UID} agent" in dockerfile and f"AGENT_TASKS_HOME={k8s.HOME}" in dockerfile


def test_prefect_kubernetes_makes_the_same_job_and_it_is_valid(template, worker_job):
    ours = k8s.render_job_manifest(template, SCENARIOS["claim"], flow_run_name="agent-run")

    def strip(job):  # what depends on the flow run and Prefect's settings: ids, labels, Prefect's own variables
        job = copy.deepcopy(job)
        if job["metadata"].get("annotations") == {}:
            del job["metadata"]["annotations"]
        job["metadata"].pop("labels")
        job["spec"]["template"]["metadata"].pop("labels")
        env = job["spec"]["template"]["spec"]["containers"][0].pop("env")
        return job, {e["name"]: e["value"] for e in env}

    (theirs, their_env), (mine, my_env) = strip(worker_job), strip(ours)
    assert mine == theirs
    assert my_env.items() <= their_env.items()
    assert all(name.startswith("PREFECT_") for name in their_env.keys() - my_env.keys())
    for version in k8s.SCHEMA_VERSIONS:
        assert_valid(without_prefect_extras(worker_job), version)
    assert api_problems(worker_job) == []


DELETE = object()


def _set(path: str, value: Any = DELETE):
    """A change to a manifest: set the dotted ``path`` to ``value``, or delete it."""

    def change(job):
        *parents, last = path.split(".")
        node = job
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value

    return change


POD = "spec.template.spec"
CONTAINER = f"{POD}.containers.0"


@pytest.mark.parametrize(
    "change, error",
    [
        (_set(f"{CONTAINER}.securityContext.procMount", 123), "123 is not of type 'string', 'null'"),
        (_set(f"{CONTAINER}.securityContxt", {"procMount": "Unmasked"}), "'securityContxt' was unexpected"),
        (_set(f"{POD}.hostUser", False), "'hostUser' was unexpected"),
        (_set(f"{POD}.hostUsers", "false"), "'false' is not of type 'boolean', 'null'"),
        (_set(f"{POD}.securityContext.seccompProfile", {"typ": "Unconfined"}), "'type' is a required property"),
        (_set(f"{CONTAINER}.envFrom", {"secretRef": {"name": "agent-tasks"}}), "is not of type 'array', 'null'"),
        (_set(f"{CONTAINER}.volumeMounts.0.mountpath", "/x"), "'mountpath' was unexpected"),
        (_set(f"{CONTAINER}.resources.limits", ["4Gi"]), "is not of type 'object', 'null'"),
        (_set(f"{CONTAINER}.name"), "'name' is a required property"),
        (_set("spec.backoffLimit", "0"), "'0' is not of type 'integer', 'null'"),
    ],
)
def test_a_broken_job_is_refused(jobs, change, error):
    job = without_prefect_extras(jobs["readme"])
    change(job)
    for version in k8s.SCHEMA_VERSIONS:
        assert any(error in e for e in schema_errors(job, version)), schema_errors(job, version)


@pytest.mark.parametrize(
    "change, problem",
    [
        (_set(f"{POD}.hostUsers", True), "`hostUsers` must be false to use `Unmasked`"),
        (_set(f"{POD}.hostUsers"), "`hostUsers` must be false to use `Unmasked`"),
        (_set(f"{CONTAINER}.securityContext.procMount", "Unmaskd"), "procMount 'Unmaskd'"),
        (_set(f"{POD}.securityContext.appArmorProfile.type", "unconfined"), "appArmorProfile.type 'unconfined'"),
        (_set(f"{CONTAINER}.resources.limits.memory", "4GB"), "not a quantity: '4GB'"),
        (_set(f"{CONTAINER}.resources.requests.memory", "5Gi"), "memory request above its limit"),
        (_set(f"{CONTAINER}.volumeMounts.0.name", "homes"), "volumeMount 'homes' names no volume"),
    ],
)
def test_what_the_api_server_would_refuse_is_found(jobs, change, problem):
    job = copy.deepcopy(jobs["readme"])
    change(job)
    assert any(problem in p for p in api_problems(job)), api_problems(job)


def test_quantities_are_read_as_kubernetes_reads_them():
    assert quantity("500m") == Decimal("0.5") and quantity("1Gi") == 1024**3 and quantity("2") == 2
    assert quantity("1e3") == 1000 and quantity("128M") == 128 * 10**6
    for bad in ("4GB", "1.5.2", "Gi", "-"):
        with pytest.raises(ValueError):
            quantity(bad)


# --- the other manifests and the Helm values ------------------------------------------------------------------------


@pytest.mark.parametrize("version", k8s.SCHEMA_VERSIONS)
@pytest.mark.parametrize("name", k8s.MANIFEST_FILES)
def test_the_other_manifests_are_valid_kubernetes(name, version):
    for manifest in documents(name):
        assert_valid(manifest, version)
        broken = {**manifest, "metadata": {**manifest["metadata"], "nmae": "x"}}  # a misspelled field is refused
        assert schema_errors(broken, version) == [
            "$.metadata: Additional properties are not allowed ('nmae' was unexpected)"
        ]


def test_the_manifests_agree_with_the_template(template):
    (namespace,) = documents(k8s.NAMESPACE_FILE)
    (secret,) = documents(k8s.SECRET_FILE)
    (claim,) = documents(k8s.CLAIM_FILE)
    properties = template["variables"]["properties"]
    assert namespace["metadata"]["name"] == properties["namespace"]["default"] == k8s.NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert secret["metadata"] == {"name": properties["secret_name"]["default"], "namespace": k8s.NAMESPACE}
    assert {"AGENT_TASKS_DB_URL", "OPENAI_API_KEY"} <= secret["stringData"].keys()
    assert claim["metadata"] == {"name": k8s.CLAIM, "namespace": k8s.NAMESPACE}
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


# The part of the prefect-worker chart's values.schema.json (PrefectHQ/prefect-helm) that values.yaml uses; the
# chart forbids unknown keys at these levels too. The whole file was checked against the chart's schema once, by hand.
def closed(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties}


HELM_VALUES_SCHEMA = closed(
    worker=closed(
        apiConfig={"enum": ["cloud", "customerManagedCloud", "selfHostedServer"]},
        selfHostedServerApiConfig=closed(
            apiUrl={"type": "string"},
            basicAuth=closed(enabled={"type": "boolean"}, existingSecret={"type": "string"}),
        ),
        config=closed(workPool={"type": "string"}, type={"type": "string"}),
    )
)


def test_the_helm_values_point_the_worker_at_the_pool():
    (values,) = documents(k8s.VALUES_FILE)
    jsonschema.validate(values, HELM_VALUES_SCHEMA)
    worker = values["worker"]
    assert worker["config"] == {"workPool": k8s.POOL, "type": "kubernetes"}
    assert worker["apiConfig"] == "selfHostedServer"
    assert worker["selfHostedServerApiConfig"]["apiUrl"].endswith("/api")
