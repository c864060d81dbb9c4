"""A pod gets Azure access: the whole chain on a real kind cluster, proven by the pod itself.

A real kind cluster (sandbox node image v1.37.2) whose apiserver signs with a test issuer's key; a managed
identity with Reader on the subscription and a federated credential for demo/workload; the upstream
webhook chart 1.6.0 with azureEnvironment AzureStackCloud and an environment file whose
activeDirectoryEndpoint is the sandbox's Entra on the gateway of the sandbox's Docker network (the only
address pods use: sandbox/podnet.py). The demo workload (sandbox/go/proof, Go azidentity) runs as a
labelled pod: the webhook injects AZURE_* and the projected token, the real kubelet writes the token, the
pod exchanges it at the sandbox's Entra, reads ARM (200) and is refused a write (403
AuthorizationFailed), and prints it. A pod of a ServiceAccount no credential names gets AADSTS700213.
Sources: the chart's values.yaml (azureEnvironment, extraEnv, extraVolumes, extraVolumeMounts), go-autorest
azure.EnvironmentFromName ("AzureStackCloud" reads AZURE_ENVIRONMENT_FILEPATH), the webhook's
pkg/webhook/webhook.go (AZURE_AUTHORITY_HOST = the environment's activeDirectoryEndpoint).
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from sandbox import podnet

from .test_entra import Federation  # noqa: F401  (the identity with Reader and its FICs)
from .realkind import Runner, issuer_keys
from .test_real_webhook import _chart, _helm

NAMESPACE = "demo"
WEBHOOK_NS = "azure-workload-identity-system"
PROOF_IMAGE = "arcwi-sandbox/workload-proof:v1.0.0"


@pytest.fixture(scope="module")
def chain(sandbox, oidc_server, real_kind, tmp_path_factory):
    """(runner, cluster name, federation, issuer): a real cluster signing as the issuer, the webhook
    installed for the sandbox's cloud, a federated identity."""
    import uuid

    with sandbox.settings(fic_propagation_seconds=0.0):
        issuer = oidc_server.issuer(trailing_slash=True)
        keys = issuer_keys(issuer, tmp_path_factory.mktemp("pod-keys"))
        runner = Runner(tmp_path_factory.mktemp("pod"), keys, real_kind)
        name = runner.name()
        created = runner.play(runner.variables(name, issuer.url))
        assert created["rc"] == 0, created["text"]
        federation = Federation(sandbox, uuid.uuid4().hex[:8])
        federation.fic(issuer.url, f"system:serviceaccount:{NAMESPACE}:workload")
        try:
            _install_webhook(runner, name, sandbox)
            yield runner, name, federation, issuer
        finally:
            federation.remove_fics()
            runner.cleanup()


def _kubectl(runner: Runner, name: str, *args: str, stdin: str | None = None) -> str:
    return subprocess.run([runner.real["kubectl"], "--kubeconfig", runner.kubeconfig, "--context", f"kind-{name}",
                           *args], input=stdin, capture_output=True, text=True, check=True, timeout=120).stdout


def _install_webhook(runner: Runner, name: str, sandbox) -> None:
    authority = podnet.url("entra")
    assert authority, "the sandbox recorded no pod network (python -m sandbox up)"
    environment = json.dumps({"name": "ArcwiSandboxCloud", "activeDirectoryEndpoint": authority})
    _kubectl(runner, name, "create", "namespace", WEBHOOK_NS)
    _kubectl(runner, name, "create", "configmap", "arcwi-sandbox-cloud", "-n", WEBHOOK_NS,
             f"--from-literal=environment.json={environment}")
    values = {"azureTenantID": sandbox.tenant_id, "azureEnvironment": "AzureStackCloud",
              "extraEnv": [{"name": "AZURE_ENVIRONMENT_FILEPATH", "value": "/etc/arcwi-sandbox/environment.json"}],
              "extraVolumes": [{"name": "cloud", "configMap": {"name": "arcwi-sandbox-cloud"}}],
              "extraVolumeMounts": [{"name": "cloud", "mountPath": "/etc/arcwi-sandbox", "readOnly": True}]}
    installed = subprocess.run([_helm(), "upgrade", "--install", "workload-identity-webhook", _chart(),
                                "--kubeconfig", runner.kubeconfig, "--kube-context", f"kind-{name}",
                                "--namespace", WEBHOOK_NS, "--values", "-", "--wait", "--timeout", "180s"],
                               input=json.dumps(values), capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr


def _proof_pod(runner: Runner, name: str, sandbox, federation, service_account: str) -> str:
    """The demo workload as a labelled pod of service_account; returns the pod's name."""
    manifest = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": service_account, "namespace": NAMESPACE,
                      "annotations": {"azure.workload.identity/client-id": federation.client_id}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sandbox-ca", "namespace": NAMESPACE},
         "data": {"ca.pem": open(sandbox.bundle).read()}},
    ]
    sub = sandbox.subscription_id
    pod = f"proof-{service_account}"
    env = {"ARCWI_ARM_ENDPOINT": podnet.url("arm"), "ARCWI_ARM_SCOPE": sandbox.arm_scope,
           "ARCWI_READ_PATH": f"/subscriptions/{sub}/resourceGroups/{federation.rg}?api-version=2021-04-01",
           "ARCWI_WRITE_PATH": f"/subscriptions/{sub}/resourceGroups/rg-denied-{pod}?api-version=2021-04-01",
           "ARCWI_WRITE_BODY": '{"location": "westeurope"}', "ARCWI_INTERVAL": "2",
           "SSL_CERT_FILE": "/etc/sandbox-ca/ca.pem"}
    manifest.append({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "namespace": NAMESPACE, "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": service_account, "containers": [{
            "name": "proof", "image": PROOF_IMAGE, "imagePullPolicy": "Never",
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "volumeMounts": [{"name": "ca", "mountPath": "/etc/sandbox-ca", "readOnly": True}]}],
            "volumes": [{"name": "ca", "configMap": {"name": "sandbox-ca"}}]}})
    _kubectl(runner, name, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifest}))
    return pod


def _first_line(runner: Runner, name: str, pod: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        logs = subprocess.run([runner.real["kubectl"], "--kubeconfig", runner.kubeconfig, "--context", f"kind-{name}",
                               "logs", "-n", NAMESPACE, pod], capture_output=True, text=True, timeout=60)
        lines = [line for line in logs.stdout.splitlines() if line.startswith("{")]
        if lines:
            return json.loads(lines[0])
        assert time.monotonic() < deadline, f"{pod} printed nothing: {logs.stderr}"
        time.sleep(1)


def test_a_pod_exchanges_its_token_reads_azure_and_is_refused_a_write(chain, sandbox):
    runner, name, federation, issuer = chain
    pod = _proof_pod(runner, name, sandbox, federation, "workload")
    line = _first_line(runner, name, pod)
    assert (line["exchange"], line["read"], line["write"], line["write_code"], line["proof"]) == \
        ("ok", 200, 403, "AuthorizationFailed", "ok"), line
    # the token the real kubelet wrote, as Entra compared it
    assert (line["assertion_iss"], line["assertion_sub"], line["assertion_kid"]) == \
        (issuer.url, f"system:serviceaccount:{NAMESPACE}:workload", issuer.kid)
    spec = json.loads(_kubectl(runner, name, "get", "pod", "-n", NAMESPACE, pod, "-o", "json"))["spec"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["AZURE_AUTHORITY_HOST"] == podnet.url("entra")  # injected by the webhook from the chart's cloud
    assert env["AZURE_CLIENT_ID"] == federation.client_id and env["AZURE_TENANT_ID"] == sandbox.tenant_id


def test_a_pod_whose_subject_no_credential_names_gets_700213(chain, sandbox):
    runner, name, federation, _ = chain
    pod = _proof_pod(runner, name, sandbox, federation, "other")
    line = _first_line(runner, name, pod)
    assert (line["exchange"], line["aadsts"], line["proof"]) == ("failed", "AADSTS700213", "failed"), line
    assert f"presented assertion subject 'system:serviceaccount:{NAMESPACE}:other'" in line["error"]
