"""The upstream azure-workload-identity webhook as users install it, on a real kind cluster: the chart
`workload-identity-webhook` 1.6.0 packaged from the webhook module's own source (sandbox/nodeimage
`chart`), its image built from the same module and preloaded in the node image under the name the chart
asks for (mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.6.0), helm built from its module.

The webhook runs as the chart's pods (its cert rotator fills the MutatingWebhookConfiguration's caBundle)
and mutates a labelled pod the real kubelet then runs: AZURE_CLIENT_ID, AZURE_TENANT_ID,
AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST, and the projected service-account token
(token/azure-identity-token, audience api://AzureADTokenExchange) mounted at /var/run/secrets/azure/wi;
a pod without the label is left alone.
Sources: the chart's templates and values.yaml (v1.6.0, manifest_staging/charts/workload-identity-webhook),
pkg/webhook/webhook.go (v1.6.0: the injected variables, the volume azure-identity-token, its mount path).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from .conftest import REPO
from .realkind import Runner

TENANT = str(uuid.uuid4())
CLIENT = str(uuid.uuid4())
# pkg/webhook/consts.go v1.6.0: VolumeMountPath, TokenFilePath, ProjectedVolumeNamePrefix (+ a hash of the pod)
MOUNT_PATH = "/var/run/secrets/azure/wi"
TOKEN_FILE = "token/azure-identity-token"
VOLUME_PREFIX = "azure-workload-identity-reserved-"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, keys, real_kind):
    runner = Runner(tmp_path_factory.mktemp("webhook"), keys, real_kind)
    name = runner.name()
    variables = runner.variables(name, f"https://issuer.example.invalid/{name}/")
    created = runner.play(variables)
    assert created["rc"] == 0, created["text"]
    yield runner, name
    runner.cleanup()


def _helm() -> str:
    out = subprocess.run([sys.executable, str(REPO / "sandbox" / "go" / "build.py"), "paths", "--json", "helm"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["helm"]


def _chart() -> str:
    out = subprocess.run([sys.executable, "-m", "sandbox.nodeimage", "chart"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def _kubectl_json(runner: Runner, name: str, *args: str) -> dict:
    return json.loads(runner.kubectl(name, *args, "-o", "json"))


def _wait_running(runner: Runner, name: str, namespace: str, pod: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = _kubectl_json(runner, name, "get", "pod", "-n", namespace, pod)
        if current["status"].get("phase") == "Running":
            return current
        assert time.monotonic() < deadline, f"pod {namespace}/{pod} not Running: {json.dumps(current['status'])}"
        time.sleep(1)


def test_the_upstream_chart_runs_as_pods_and_mutates_a_labelled_pod(cluster):
    runner, name = cluster
    kubeconfig = ["--kubeconfig", runner.kubeconfig, "--kube-context", f"kind-{name}"]
    installed = subprocess.run([_helm(), "upgrade", "--install", "workload-identity-webhook", _chart(), *kubeconfig,
                                "--namespace", "azure-workload-identity-system", "--create-namespace",
                                "--set", f"azureTenantID={TENANT}", "--wait", "--timeout", "180s"],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    pods = _kubectl_json(runner, name, "get", "pods", "-n", "azure-workload-identity-system",
                         "-l", "azure-workload-identity.io/system=true")["items"]
    assert len(pods) == 2  # the chart's replicaCount
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["containers"][0]["image"] == "mcr.microsoft.com/oss/azure/workload-identity/webhook:v1.6.0"
    config = _kubectl_json(runner, name, "get", "mutatingwebhookconfiguration",
                           "azure-wi-webhook-mutating-webhook-configuration")
    hook = config["webhooks"][0]
    assert hook["clientConfig"]["service"]["name"] == "azure-wi-webhook-webhook-service"
    assert hook["clientConfig"].get("caBundle"), "the chart's cert rotator did not fill the caBundle"
    assert hook["failurePolicy"] == "Fail"

    runner.kubectl(name, "create", "namespace", "demo")
    runner.kubectl(name, "create", "serviceaccount", "workload", "-n", "demo")
    runner.kubectl(name, "annotate", "serviceaccount", "workload", "-n", "demo",
                   f"azure.workload.identity/client-id={CLIENT}")
    pause = "registry.k8s.io/pause:3.10.2"  # preloaded in the node image
    for pod, labelled in (("labelled", True), ("unlabelled", False)):
        manifest = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": "demo",
                                 "labels": {"azure.workload.identity/use": "true"} if labelled else {}},
                    "spec": {"serviceAccountName": "workload",
                             "containers": [{"name": "main", "image": pause, "imagePullPolicy": "Never"}]}}
        subprocess.run([runner.real["kubectl"], "--kubeconfig", runner.kubeconfig, "--context", f"kind-{name}",
                        "apply", "-f", "-"], input=json.dumps(manifest), capture_output=True, text=True, check=True)

    labelled = _wait_running(runner, name, "demo", "labelled")
    env = {e["name"]: e.get("value") for e in labelled["spec"]["containers"][0].get("env", [])}
    assert env["AZURE_CLIENT_ID"] == CLIENT
    assert env["AZURE_TENANT_ID"] == TENANT
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == f"{MOUNT_PATH}/{TOKEN_FILE}"
    assert env["AZURE_AUTHORITY_HOST"] == "https://login.microsoftonline.com/"  # azureEnvironment AzurePublicCloud
    volumes = [v for v in labelled["spec"]["volumes"] if v["name"].startswith(VOLUME_PREFIX)]
    assert len(volumes) == 1, labelled["spec"]["volumes"]
    token = volumes[0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "api://AzureADTokenExchange" and token["path"] == TOKEN_FILE
    mount = next(m for m in labelled["spec"]["containers"][0]["volumeMounts"] if m["name"] == volumes[0]["name"])
    assert mount["mountPath"] == MOUNT_PATH and mount["readOnly"] is True

    unlabelled = _wait_running(runner, name, "demo", "unlabelled")
    names = {e["name"] for e in unlabelled["spec"]["containers"][0].get("env", [])}
    assert not names & {"AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"}
    assert not [v for v in unlabelled["spec"]["volumes"] if v["name"].startswith(VOLUME_PREFIX)]
