"""deploy/helm/clawdbot: `helm lint` and rendering by real Helm (v4's library, tests/deploy/helm.py)
against a stand-in API server, every rendered object checked against Kubernetes' JSON schemas
(kubernetes-validate, strict: unknown fields are errors) for the oldest and newest versions it
ships, `kubectl apply --dry-run=client` on the rendered manifest, the objects' contract (probes,
drain, non-root, read-only root, secrets only in the Secret), and the rendered config and
environment started as a real gateway whose probes answer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy import helm
from tests.deploy.artefacts import CHART, dockerfile
from tests.deploy.kube_api import KubeAPI, kube_api
from tests.e2e.harness import GatewayProcess, http_call

MASTER = "sk-deploy-helm-0123456789abcdef"
KEY_SECRET = "helm-test-key-secret-0123456789"
VALIDATE_PACKAGE = "kubernetes-validate>=1.37.0"

CASES: dict[str, dict[str, Any]] = {
    # what `helm install gw deploy/helm/clawdbot --set secret.masterKey=...` renders
    "defaults": {"secret": {"masterKey": MASTER}},
    # replicas sharing state, a service key through extraEnv, an Ingress with TLS, autoscaling
    "fleet": {
        "secret": {"masterKey": MASTER, "keySecret": KEY_SECRET,
                   "databaseUrl": "postgresql+asyncpg://clawdbot:pw@postgres:5432/clawdbot",
                   "redisUrl": "redis://:pw@redis:6379/0", "extraEnv": {"VLLM_API_KEY": "sk-upstream-test"}},
        "config": {"server": {"log_format": "json"},
                   "services": [{"name": "vllm", "type": "openai", "endpoint": "http://vllm:8000",
                                 "auth": {"key": "${VLLM_API_KEY}"}}],
                   "models": {"fast": ["vllm/llama-3.2-1b"]}},
        "autoscaling": {"enabled": True},
        "ingress": {"enabled": True, "className": "nginx",
                    "tls": [{"secretName": "clawdbot-tls", "hosts": ["clawdbot.example.com"]}]},
    },
    # the operator's own Secret; pods not rolled on config changes
    "existing-secret": {"secret": {"existingSecret": "my-clawdbot"}, "rolloutOnConfigChange": False,
                        "podDisruptionBudget": {"enabled": False}, "serviceAccount": {"create": False}},
}


def need_helm() -> None:
    why = helm.missing()
    if why:
        pytest.fail(why)


def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate as kv
    except ImportError:
        pytest.fail(f"kubernetes-validate is not installed: it belongs in the dev group "
                    f"(`uv add --dev '{VALIDATE_PACKAGE}'`, then `uv sync`)")
    return kv


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    with kube_api(tmp_path_factory.mktemp("kube")) as server:
        yield server


@pytest.fixture(scope="module")
def rendered(api: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each case's release: {"manifest": text, "objects": [...], "notes": text}."""
    need_helm()
    tmp = tmp_path_factory.mktemp("helm")
    out: dict[str, dict[str, Any]] = {}
    for name, values in CASES.items():
        result = helm.render(CHART, values, api.kubeconfig, tmp, release=name.replace("-", ""))
        assert result["rc"] == 0, f"{name}: {result['error']}"
        release = result["result"]
        objects = [d for d in yaml.safe_load_all(release["manifest"]) if d]
        out[name] = {"manifest": release["manifest"], "objects": objects, "notes": release["info"].get("notes", "")}
    return out


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in found, f"two {obj['kind']}s"
        found[obj["kind"]] = obj
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_helm_lint_passes(tmp_path: Path) -> None:
    need_helm()
    result = helm.lint(CHART, tmp_path)
    assert result["rc"] == 0, result["error"]
    report = result["result"]
    assert report["TotalChartsLinted"] == 1
    worse_than_info = [m for m in report["Messages"] if m["Severity"] > 1]
    assert not worse_than_info and not report["Errors"], report


def test_rendering_without_a_master_key_fails_with_the_reason(api: KubeAPI, tmp_path: Path) -> None:
    need_helm()
    result = helm.render(CHART, {}, api.kubeconfig, tmp_path, release="nokey")
    assert result["rc"] != 0
    assert "secret.masterKey is required" in result["error"]


def test_each_case_renders_the_expected_objects(rendered: dict[str, dict[str, Any]]) -> None:
    kinds = {name: sorted(o["kind"] for o in r["objects"]) for name, r in rendered.items()}
    base = ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"]
    assert kinds["defaults"] == base
    assert kinds["fleet"] == sorted([*base, "HorizontalPodAutoscaler", "Ingress"])
    assert kinds["existing-secret"] == ["ConfigMap", "Deployment", "Service"]


@pytest.mark.parametrize("case", list(CASES))
def test_objects_pass_the_kubernetes_schemas_strictly(rendered: dict[str, dict[str, Any]], case: str) -> None:
    kv = kubernetes_validate()
    from kubernetes_validate import utils

    versions = utils.all_versions()
    for version in (versions[0], versions[-1]):  # the chart's kubeVersion floor (1.25) and the newest
        for obj in rendered[case]["objects"]:
            try:
                kv.validate(obj, version, strict=True)
            except utils.ValidationError as exc:
                pytest.fail(f"{case}: {obj['kind']} against Kubernetes {version}: {exc.message} at "
                            f"{'/'.join(str(p) for p in exc.path)}")


@pytest.mark.parametrize("case", list(CASES))
def test_kubectl_client_dry_run_accepts_the_manifest(rendered: dict[str, dict[str, Any]], api: KubeAPI,
                                                     tmp_path: Path, case: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing (the machine image ships it as /usr/bin/kubectl)")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(rendered[case]["manifest"])
    out = subprocess.run([kubectl, "--kubeconfig", str(api.kubeconfig), "apply", "--dry-run=client",
                          "--validate=false", "-o", "json", "-f", str(manifest)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    applied = json.loads(out.stdout)
    items = applied["items"] if applied["kind"] == "List" else [applied]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (o["kind"], o["metadata"]["name"]) for o in rendered[case]["objects"])


def test_deployment_probes_drain_and_security(rendered: dict[str, dict[str, Any]]) -> None:
    objects = rendered["defaults"]["objects"]
    pod = by_kind(objects)["Deployment"]["spec"]["template"]["spec"]
    c = container(objects)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["terminationGracePeriodSeconds"] > 5 + 10, "preStop, then the gateway's drain, within the grace"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (user,) = [i.args for i in dockerfile() if i.keyword == "USER"]
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["config"]["mountPath"] == "/etc/clawdbot" and mounts["config"]["readOnly"] is True
    assert "subPath" not in mounts["config"], "a subPath mount never sees the ConfigMap change"
    assert "configMap" in volumes["config"]
    assert mounts["data"]["mountPath"] == "/var/lib/clawdbot" and "emptyDir" in volumes["data"]
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["CLAWDBOT_CONFIG"] == "/etc/clawdbot/clawdbot.yaml"
    assert env["CLAWDBOT_HOST"] == "0.0.0.0"
    assert env["CLAWDBOT_DATA_DIR"].startswith("/var/lib/clawdbot/")
    strategy = by_kind(objects)["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_selectors_and_ports_agree(rendered: dict[str, dict[str, Any]]) -> None:
    objects = by_kind(rendered["fleet"]["objects"])
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    port_names = {p["name"] for p in container(rendered["fleet"]["objects"])["ports"]}
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] in port_names
    backend = objects["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": objects["Service"]["metadata"]["name"], "port": {"name": "http"}}
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "with autoscaling the HPA owns the replica count"
    annotations = objects["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600


def test_secrets_stay_in_the_secret(rendered: dict[str, dict[str, Any]]) -> None:
    objects = rendered["fleet"]["objects"]
    secret = by_kind(objects)["Secret"]["stringData"]
    assert secret == {"CLAWDBOT_MASTER_KEY": MASTER, "CLAWDBOT_KEY_SECRET": KEY_SECRET,
                      "CLAWDBOT_DATABASE_URL": CASES["fleet"]["secret"]["databaseUrl"],
                      "CLAWDBOT_REDIS_URL": CASES["fleet"]["secret"]["redisUrl"], "VLLM_API_KEY": "sk-upstream-test"}
    others = yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    for value in secret.values():
        assert value not in others
    c = container(objects)
    assert c["envFrom"][0] == {"secretRef": {"name": by_kind(objects)["Secret"]["metadata"]["name"]}}
    existing = container(rendered["existing-secret"]["objects"])
    assert existing["envFrom"][0] == {"secretRef": {"name": "my-clawdbot"}}


def test_pods_roll_when_config_or_secret_change(api: KubeAPI, rendered: dict[str, dict[str, Any]],
                                                tmp_path: Path) -> None:
    def annotations(values: dict[str, Any], release: str) -> dict[str, str]:
        result = helm.render(CHART, values, api.kubeconfig, tmp_path, release=release)
        assert result["rc"] == 0, result["error"]
        objects = [d for d in yaml.safe_load_all(result["result"]["manifest"]) if d]
        found: dict[str, str] = by_kind(objects)["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        return found

    before = annotations(CASES["defaults"], "roll")
    changed_config = annotations({**CASES["defaults"], "config": {"services": [{"name": "m", "type": "mock"}]}},
                                 "roll")
    changed_secret = annotations({"secret": {"masterKey": MASTER + "-rotated"}}, "roll")
    assert changed_config["checksum/config"] != before["checksum/config"]
    assert changed_config["checksum/secret"] == before["checksum/secret"]
    assert changed_secret["checksum/secret"] != before["checksum/secret"]
    deployment = by_kind(rendered["existing-secret"]["objects"])["Deployment"]
    assert "checksum/config" not in (deployment["spec"]["template"]["metadata"].get("annotations") or {})


def test_notes_warn_about_replicas_without_shared_state(rendered: dict[str, dict[str, Any]]) -> None:
    assert "WARNING: more than one replica without" in rendered["defaults"]["notes"]
    assert "WARNING" not in rendered["fleet"]["notes"]
    assert "https://clawdbot.example.com/" in rendered["fleet"]["notes"]


def test_rendered_config_and_environment_serve_and_pass_the_probes(rendered: dict[str, dict[str, Any]],
                                                                   tmp_path: Path) -> None:
    """The pod as the chart describes it, as a process on loopback: the ConfigMap's file, the
    Secret's and the container's variables (the host made 127.0.0.1), then each probe's path."""
    objects = rendered["defaults"]["objects"]
    config = tmp_path / "clawdbot.yaml"
    config.write_text(by_kind(objects)["ConfigMap"]["data"]["clawdbot.yaml"])
    c = container(objects)
    env = {e["name"]: e["value"] for e in c["env"]} | by_kind(objects)["Secret"]["stringData"]
    env |= {"CLAWDBOT_HOST": "127.0.0.1", "CLAWDBOT_CONFIG": str(config),
            "CLAWDBOT_DATA_DIR": str(tmp_path / "data")}
    env.pop("CLAWDBOT_PORT")
    validated = subprocess.run([sys.executable, "-m", "clawdbot", "config", "validate", "--json"],
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_")}, **env,
                                    "CLAWDBOT_HOST": "0.0.0.0"},
                               capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert json.loads(validated.stdout)["ok"], validated.stdout + validated.stderr
    with GatewayProcess(["serve"], tmp_path / "pod.log", env) as gw:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            status, body = http_call(gw, "GET", c[probe]["httpGet"]["path"])
            assert status == 200, f"{probe}: {status} {body!r}"
