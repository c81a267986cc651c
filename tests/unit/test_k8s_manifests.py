"""Offline checks of ops/k8s: `kubectl kustomize` renders it, every object validates against the
Kubernetes schemas (kubernetes-validate, strict: unknown fields fail), KEDA's objects against
the required fields of its CRDs, and the objects agree with each other and with the code.

No cluster and no servers. Without kubectl the whole module is skipped, saying so.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "ops" / "k8s"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl not found: could not render ops/k8s with kustomize, so neither the schema "
    "validation nor the cross-object checks ran",
)
# The oldest and the newest Kubernetes minor the package carries schemas for that we target.
VERSIONS = ("1.30.0", "1.37.0")
# Which kinds are checked against which schema. Core kinds: the Kubernetes OpenAPI schemas of
# kubernetes-validate. KEDA's custom resources are in no core schema: checked against the
# required fields and types of KEDA's CRDs, transcribed below.
CORE_KINDS = {
    ("v1", "Namespace"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
KEDA_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_NAMED = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
# keda.sh_scaledobjects.yaml / keda.sh_triggerauthentications.yaml: required fields and types.
KEDA_SHAPES: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": _NAMED,
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "fallback": {
                        "type": "object",
                        "required": ["failureThreshold", "replicas"],
                        "properties": {
                            "failureThreshold": {"type": "integer"},
                            "replicas": {"type": "integer"},
                        },
                    },
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string"},
                                "metadata": _STRINGS,
                                "authenticationRef": _NAMED,
                            },
                        },
                    },
                },
            }
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "properties": {k: {"type": "string"} for k in ("parameter", "name")},
                        },
                    }
                },
            }
        },
    },
}
# The redis-streams scaler's metadata (keda.sh/docs/latest/scalers/redis-streams): a typo here
# would be ignored by KEDA and fall back to a default.
REDIS_STREAMS_KEYS = {
    "address",
    "host",
    "port",
    "addressFromEnv",
    "hostFromEnv",
    "portFromEnv",
    "usernameFromEnv",
    "passwordFromEnv",
    "databaseIndex",
    "enableTLS",
    "unsafeSsl",
    "stream",
    "consumerGroup",
    "pendingEntriesCount",
    "streamLength",
    "lagCount",
    "activationLagCount",
}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL or "kubectl", "kustomize", str(BASE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The rendered object of that kind and name."""
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_specs(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each workload's pod spec, by workload name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objs
        if o["kind"] in ("Deployment", "Job")
    }


def containers(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every container, by workload name (one container per workload)."""
    specs = pod_specs(objs)
    assert all(len(s["containers"]) == 1 for s in specs.values())
    return {name: s["containers"][0] for name, s in specs.items()}


def env_of(container: dict[str, Any], objs: list[dict[str, Any]]) -> dict[str, Any]:
    """Name -> value or valueFrom, with the ConfigMaps of envFrom folded in."""
    env: dict[str, Any] = {}
    for src in container.get("envFrom", []):
        env.update(one(objs, "ConfigMap", src["configMapRef"]["name"])["data"])
    for e in container.get("env", []):
        env[e["name"]] = e.get("value", e.get("valueFrom"))
    return env


def secret_value(objs: list[dict[str, Any]], name: str, key: str) -> str:
    """A Secret's stringData value."""
    return one(objs, "Secret", name)["stringData"][key]


def test_every_object_validates_against_its_schema(objects: list[dict[str, Any]]) -> None:
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    assert kinds == CORE_KINDS | KEDA_KINDS
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in KEDA_KINDS:
            with pytest.raises(SchemaNotFoundError):  # so the hand-made shape is what checks it
                kubernetes_validate.validate(obj, VERSIONS[-1], strict=True)
            jsonschema.validate(obj, KEDA_SHAPES[obj["kind"]])
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_strict_validation_refuses_a_misspelt_field(objects: list[dict[str, Any]]) -> None:
    api = copy.deepcopy(one(objects, "Deployment", "platform-api"))
    c = api["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(api, VERSIONS[-1], strict=True)
    so = copy.deepcopy(one(objects, "ScaledObject", "platform-worker"))
    del so["spec"]["triggers"][0]["metadata"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(so, KEDA_SHAPES["ScaledObject"])


def test_commands_are_the_ones_compose_runs(objects: list[dict[str, Any]]) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    got = {name: c["command"] for name, c in containers(objects).items()}
    assert got == {
        "platform-api": compose["api"]["command"],
        "platform-worker": compose["worker"]["command"],
        "platform-migrate": compose["migrate"]["command"],
    }
    assert got["platform-migrate"] == ["python", "-m", "cli", "migrate"]


def test_every_variable_is_a_setting(objects: list[dict[str, Any]]) -> None:
    from settings import variables

    known = variables()
    for name, c in containers(objects).items():
        unknown = set(env_of(c, objects)) - known
        assert not unknown, f"{name}: {sorted(unknown)} are read by no setting"


def test_references_resolve_and_only_the_job_holds_the_owner(
    objects: list[dict[str, Any]],
) -> None:
    for name, c in containers(objects).items():
        env = env_of(c, objects)
        for value in env.values():
            if isinstance(value, dict):  # a secretKeyRef, resolved
                ref = value["secretKeyRef"]
                secret_value(objects, ref["name"], ref["key"])
        # Every process that appends to the log chains with the same HMAC key.
        assert "DATABASE_URL" in env and "AUDIT_HMAC_KEY" in env, name
        assert ("MIGRATION_DATABASE_URL" in env) == (name == "platform-migrate"), name
    for spec in pod_specs(objects).values():
        for v in spec["volumes"]:
            if "secret" in v:
                one(objects, "Secret", v["secret"]["secretName"])
            if "persistentVolumeClaim" in v:
                one(objects, "PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])


def test_secrets_are_placeholders_that_cannot_be_mistaken_for_real_ones(
    objects: list[dict[str, Any]],
) -> None:
    from settings import SettingsError
    from settings.parse import read_api_keys

    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert secrets and all("data" not in s for s in secrets)
    for s in secrets:
        for key, value in s["stringData"].items():
            assert "REPLACE_ME" in value, f"{s['metadata']['name']}.{key} is not a placeholder"
    with pytest.raises(SettingsError, match="API_KEYS"):  # an unedited base does not start
        read_api_keys(secret_value(objects, "platform-keys", "API_KEYS"))
    app = urlsplit(secret_value(objects, "platform-db-app", "DATABASE_URL"))
    owner = urlsplit(secret_value(objects, "platform-db-owner", "MIGRATION_DATABASE_URL"))
    assert app.username == "platform_app" != owner.username  # docs/audit.md: two roles
    assert (app.hostname, app.path) == (owner.hostname, owner.path)


def test_probes_hit_public_routes_the_app_serves(objects: list[dict[str, Any]]) -> None:
    from api.openapi import route_roles
    from api.reference import build_app

    roles = route_roles(build_app())
    api = containers(objects)["platform-api"]
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    probes = {k: api[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["readinessProbe"]["path"] == "/v2/health/ready"  # it pings PostgreSQL
    for kind, probe in probes.items():
        # The kubelet sends no API key: a probe of a keyed route would always fail.
        assert roles.get(("get", probe["path"])) == "public", f"{kind}: {probe['path']}"
        assert ports[probe["port"]] == int(env_of(api, objects)["PORT"])
    worker = containers(objects)["platform-worker"]
    metrics = {p["name"]: p["containerPort"] for p in worker["ports"]}
    for kind in ("startupProbe", "livenessProbe"):
        port = worker[kind]["httpGet"]["port"]
        assert metrics[port] == int(env_of(worker, objects)["METRICS_PORT"])


def test_service_and_autoscalers_select_their_workloads(objects: list[dict[str, Any]]) -> None:
    api = one(objects, "Deployment", "platform-api")
    pod_labels = api["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service", "platform-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert api["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    worker_labels = one(objects, "Deployment", "platform-worker")["spec"]["template"]
    assert not service["spec"]["selector"].items() <= worker_labels["metadata"]["labels"].items()
    named = {p["name"] for p in api["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named
    hpa = one(objects, "HorizontalPodAutoscaler", "platform-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "platform-api",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    so = one(objects, "ScaledObject", "platform-worker")
    assert so["spec"]["scaleTargetRef"]["name"] == "platform-worker"
    # The autoscalers own the replica counts: a Deployment that set one would fight them.
    assert all("replicas" not in o["spec"] for o in objects if o["kind"] == "Deployment")


def test_scaled_object_watches_the_streams_and_groups_the_code_uses(
    objects: list[dict[str, Any]],
) -> None:
    from consumers import batch_inference
    from consumers.__main__ import GROUPS

    read = {(s, g) for g, module in GROUPS.items() for s in module.STREAMS}
    so = one(objects, "ScaledObject", "platform-worker")
    triggers = so["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-streams"}
    watched = {(t["metadata"]["stream"], t["metadata"]["consumerGroup"]) for t in triggers}
    assert watched <= read
    assert {g for _, g in watched} == set(GROUPS)  # the worker runs every group
    pending = {
        (t["metadata"]["stream"], t["metadata"]["consumerGroup"])
        for t in triggers
        if "pendingEntriesCount" in t["metadata"]
    }
    assert {g for _, g in pending} == set(GROUPS)
    # batch-inference holds one shard at a time, so only the lag can ask for more workers.
    assert batch_inference.COUNT == 1
    lag = [t["metadata"] for t in triggers if "lagCount" in t["metadata"]]
    assert [(m["stream"], m["consumerGroup"]) for m in lag] == [
        (batch_inference.SHARDS_STREAM, batch_inference.GROUP)
    ]
    for t in triggers:
        assert set(t["metadata"]) <= REDIS_STREAMS_KEYS, set(t["metadata"]) - REDIS_STREAMS_KEYS
        assert ("pendingEntriesCount" in t["metadata"]) != ("lagCount" in t["metadata"])


def test_keda_reaches_the_redis_the_app_uses(objects: list[dict[str, Any]]) -> None:
    redis = urlsplit(secret_value(objects, "platform-redis", "REDIS_URL"))
    namespace = one(objects, "Namespace", "platform")["metadata"]["name"]
    auth = one(objects, "TriggerAuthentication", "platform-redis")
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert secret_value(objects, refs["password"]["name"], refs["password"]["key"]) == (
        redis.password
    )
    for t in one(objects, "ScaledObject", "platform-worker")["spec"]["triggers"]:
        m = t["metadata"]
        assert m["address"] == f"{redis.hostname}.{namespace}.svc.cluster.local:{redis.port}"
        assert m["databaseIndex"] == redis.path.strip("/")
        assert t["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert all(o["metadata"].get("namespace", namespace) == namespace for o in objects)


def _allowed_ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for r in rules for p in r.get("ports", [])}


def test_only_the_api_is_reachable_and_egress_goes_only_to_the_stores(
    objects: list[dict[str, Any]],
) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    part_of = {"app.kubernetes.io/part-of": "inference-eval-platform"}
    deny = one(objects, "NetworkPolicy", "platform-default-deny")
    assert deny["spec"]["podSelector"]["matchLabels"] == part_of
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for spec in objects:
        if spec["kind"] in ("Deployment", "Job"):  # every platform pod is under the deny
            assert part_of.items() <= spec["spec"]["template"]["metadata"]["labels"].items()
    open_to_all = [p for p in policies for r in p["spec"].get("ingress", []) if not r.get("from")]
    assert [p["metadata"]["name"] for p in open_to_all] == ["platform-api-ingress"]
    api = open_to_all[0]["spec"]
    assert api["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    assert _allowed_ports(api["ingress"]) == {8000}
    ingress = [r for p in policies for r in p["spec"].get("ingress", [])]
    assert _allowed_ports(ingress) == {8000, 9100}  # 9100: the monitoring namespace's scrape
    egress = [r for p in policies for r in p["spec"].get("egress", [])]
    assert _allowed_ports(egress) == {5432, 6379, 53}
    assert all(r.get("to") for r in egress)  # never "anywhere"
    targets = [t["podSelector"]["matchLabels"] for r in egress for t in r["to"]]
    assert {"app.kubernetes.io/name": "postgresql"} in targets
    assert {"app.kubernetes.io/name": "redis"} in targets


def test_pods_meet_the_restricted_profile_and_write_only_to_volumes(
    objects: list[dict[str, Any]],
) -> None:
    ns = one(objects, "Namespace", "platform")["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, spec in pod_specs(objects).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        c = spec["containers"][0]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["readOnlyRootFilesystem"] is True, name
        env = env_of(c, objects)
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        # The root filesystem is read-only: state, temp files and the signing key are mounts.
        assert {env["STATE_DIR"], "/tmp"} <= mounts, name
        assert str(Path(env["AUDIT_SIGNING_KEY_FILE"]).parent) in mounts, name
        # Secret files are root's, group fsGroup: the non-root user reads them through the group.
        for v in spec["volumes"]:
            if "secret" in v:
                assert v["secret"]["defaultMode"] & 0o040 and spec["securityContext"]["fsGroup"]
        if "ARTIFACTS_DIR" in env and name != "platform-migrate":
            assert env["ARTIFACTS_DIR"] in mounts, name
        # Python sees the node's cores, not the limit: torch threads must fit the limit.
        cpu = float(c["resources"]["limits"]["cpu"])
        assert int(env.get("TORCH_THREADS", 0)) <= cpu, name
