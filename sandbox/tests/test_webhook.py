"""The upstream azure-workload-identity webhook (v1.6.0, our loopback-only main around upstream's
packages) really mutates pods of a stand-in cluster: sandbox/kind/webhook.py starts it out of cluster
and registers it by URL with the cluster CA, as the chart would in a real cluster.

Needs the binaries built from the upstream Go modules (`make sandbox-k8s-build`); skipped when they
are not there. Sources: upstream pkg/webhook (env names, token path /var/run/secrets/azure/wi/token in
v1.6.0, audience api://AzureADTokenExchange), go-autorest azure.EnvironmentFromName (AzureStackCloud ->
AZURE_ENVIRONMENT_FILEPATH).
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from .conftest import REPO, binary_paths, needs_binaries

KIND = str(REPO / "sandbox" / "bin" / "kind")
PYTHON = str(REPO / ".venv" / "bin" / "python")
TENANT = "72f988bf-0000-4000-8000-00000000cafe"
SA_TENANT = "0b0b0b0b-1111-4222-8333-444444444444"
CLIENT_ID = "c1c1c1c1-5555-4666-8777-888888888888"
CONFIG = ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
          "nodes:\n- role: control-plane\n  image: kindest/node:v1.35.4\n")


pytestmark = needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "azure-wi-webhook")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def stand_in(tmp_path):
    name = "w" + uuid.uuid4().hex[:6]
    cfg = tmp_path / "kind.yaml"
    cfg.write_text(CONFIG)
    kubeconfig = tmp_path / "kubeconfig"
    run = subprocess.run([KIND, "create", "cluster", "--name", name, "--config", str(cfg), "--kubeconfig",
                          str(kubeconfig), "--wait", "60s"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    cluster = {"name": name, "kubeconfig": str(kubeconfig), "deleted": False}
    yield cluster
    if not cluster["deleted"]:
        subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
                       capture_output=True, timeout=120)


def test_webhook_mutates_labelled_pods_and_dies_with_the_cluster(stand_in):
    name, kubeconfig = stand_in["name"], stand_in["kubeconfig"]
    kubectl = binary_paths()["kubectl"]

    def k(*args, stdin: str | None = None) -> str:
        run = subprocess.run([kubectl, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    start = subprocess.run([PYTHON, "-m", "sandbox.kind.webhook", "start", "--name", name, "--tenant-id", TENANT],
                           capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert start.returncode == 0, start.stderr
    info = json.loads(start.stdout)
    pid = info["pid"]
    assert info["url"].startswith("https://127.0.0.1:") and info["url"].endswith("/mutate-v1-pod")
    assert all(a.startswith("127.0.0.1:") for a in (info["command"][info["command"].index("--health-addr") + 1],
                                                     info["command"][info["command"].index("--metrics-addr") + 1]))
    from sandbox import config
    authority = config.url("entra")  # what `python -m sandbox env` prints as AZURE_AUTHORITY_HOST
    assert info["authority_host"] == authority

    # registered as the chart does, by URL with the cluster CA
    mwc = json.loads(k("get", "mutatingwebhookconfiguration", "azure-wi-webhook-mutating-webhook-configuration",
                       "-o", "json"))["webhooks"][0]
    assert mwc["clientConfig"]["url"] == info["url"]
    assert mwc["failurePolicy"] == "Fail" and mwc["sideEffects"] == "None"
    assert mwc["objectSelector"] == {"matchLabels": {"azure.workload.identity/use": "true"}}
    assert mwc["rules"][0]["operations"] == ["CREATE"] and mwc["rules"][0]["resources"] == ["pods"]

    # a second start with the same settings keeps the running webhook
    again = subprocess.run([PYTHON, "-m", "sandbox.kind.webhook", "start", "--name", name, "--tenant-id", TENANT],
                           capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False and json.loads(again.stdout)["pid"] == pid

    k("create", "serviceaccount", "wi-sa")
    k("annotate", "serviceaccount", "wi-sa", f"azure.workload.identity/client-id={CLIENT_ID}",
      f"azure.workload.identity/tenant-id={SA_TENANT}")
    k("create", "serviceaccount", "plain-sa")

    def pod(pod_name: str, sa: str, labelled: bool) -> dict:
        labels = {"azure.workload.identity/use": "true"} if labelled else {"app": "plain"}
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "labels": labels},
                    "spec": {"serviceAccountName": sa, "containers": [{"name": "main", "image": "busybox"}]}}
        k("create", "-f", "-", stdin=json.dumps(manifest))
        return json.loads(k("get", "pod", pod_name, "-o", "json"))

    mutated = pod("labelled", "wi-sa", True)
    env = {e["name"]: e.get("value") for e in mutated["spec"]["containers"][0].get("env") or []}
    assert env == {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": SA_TENANT,
                   "AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/wi/token/azure-identity-token",
                   "AZURE_AUTHORITY_HOST": authority}
    projected = [v for v in mutated["spec"]["volumes"] if v["name"].startswith("azure-workload-identity")]
    assert len(projected) == 1
    token = projected[0]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "api://AzureADTokenExchange" and token["path"] == "token/azure-identity-token"
    mounts = {m["name"]: m["mountPath"] for m in mutated["spec"]["containers"][0].get("volumeMounts") or []}
    assert mounts[projected[0]["name"]] == "/var/run/secrets/azure/wi"

    # the tenant from the webhook's own AZURE_TENANT_ID when the ServiceAccount names none
    k("annotate", "serviceaccount", "plain-sa", f"azure.workload.identity/client-id={CLIENT_ID}")
    defaulted = pod("labelled-default-tenant", "plain-sa", True)
    env = {e["name"]: e.get("value") for e in defaulted["spec"]["containers"][0].get("env") or []}
    assert env["AZURE_TENANT_ID"] == TENANT

    untouched = pod("unlabelled", "wi-sa", False)
    assert not untouched["spec"]["containers"][0].get("env")
    assert not [v for v in untouched["spec"]["volumes"] if v["name"].startswith("azure-workload-identity")]

    run = subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    stand_in["deleted"] = True
    assert _gone(pid)


def test_webhook_refuses_to_bind_anything_but_loopback(tmp_path):
    binary = binary_paths()["azure-wi-webhook"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env["AZURE_TENANT_ID"] = TENANT
    for flags in (["--webhook-host", "0.0.0.0"], ["--webhook-host", ""], ["--health-addr", ":9440"],
                  ["--metrics-addr", "0.0.0.0:8095"]):
        run = subprocess.run([binary, "--kubeconfig", str(tmp_path / "none"), *flags], capture_output=True,
                             text=True, env=env, timeout=30)
        assert run.returncode != 0
        assert "not a loopback address" in run.stderr, (flags, run.stderr)
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30).stderr
    assert "-webhook-host" in help_text and "-webhook-port" in help_text and "(default \"127.0.0.1\")" in help_text
