"""The workload_identity role against a stand-in cluster: the fixture chart's release makes the cluster's
agent (sandbox/kind/agent.py) start the upstream webhook with the chart's tenant, the role waits until
the apiserver calls it, and the workload's pod really comes out mutated; the federated credential is
in the ARM emulator with the cluster's issuer and the ServiceAccount's subject; a second run changes
nothing. Then the webhook's release is left pending-upgrade, and then pending-install, as a killed helm
leaves it: the role refuses with the status and the helm command when recovery is off, and otherwise
rolls back or uninstalls it, installs, and the next run changes nothing.

Runs ansible-playbook with the collection of this checkout (ANSIBLE_CONFIG=ansible.cfg): the identity
role (no role assignments) and then workload_identity, with the sandbox's environment. Skipped when
the sandbox Kubernetes/webhook/helm binaries are not built (`make sandbox-k8s-build`).
Sources: AZURE_FACTS.md "The webhook" (env names, projected token volume, audience, failurePolicy
Fail, the label on the pod template).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from sandbox import helm_pending

from .conftest import REPO, binary_paths, needs_binaries

KIND = str(REPO / "sandbox" / "bin" / "kind")
PYTHON = str(REPO / ".venv" / "bin" / "python")
CHART = str(REPO / "sandbox" / "charts" / "workload-identity-webhook")
CONFIG = ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
          "nodes:\n- role: control-plane\n  image: kindest/node:v1.35.4\n")
PLAYBOOK = """
- name: workload_identity under test
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/arcwi.workload_identity.azure:
      cloud_metadata_url: "{{ lookup('ansible.builtin.env', 'ARCWI_CLOUD_METADATA_URL') }}"
      subscription_id: "{{ lookup('ansible.builtin.env', 'AZURE_SUBSCRIPTION_ID') }}"
      tenant: "{{ lookup('ansible.builtin.env', 'AZURE_TENANT_ID') }}"
      client_id: "{{ lookup('ansible.builtin.env', 'AZURE_CLIENT_ID') }}"
      secret: "{{ lookup('ansible.builtin.env', 'AZURE_CLIENT_SECRET') }}"
  roles:
    - role: arcwi.workload_identity.identity
    - role: arcwi.workload_identity.workload_identity
"""


pytestmark = needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "azure-wi-webhook", "helm")


@pytest.fixture
def stand_in(tmp_path):
    name = "wi" + uuid.uuid4().hex[:6]
    cfg = tmp_path / "kind.yaml"
    cfg.write_text(CONFIG)
    kubeconfig = tmp_path / "kubeconfig"
    run = subprocess.run([KIND, "create", "cluster", "--name", name, "--config", str(cfg), "--kubeconfig",
                          str(kubeconfig), "--wait", "60s"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    try:
        yield name, str(kubeconfig)
    finally:
        subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
                       capture_output=True, timeout=120)


def _agent_info(name: str) -> dict:
    out = subprocess.run([PYTHON, "-m", "sandbox.kind.agent", "info", "--name", name], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _play(tmp_path, sandbox, variables: dict, check: bool = False) -> dict:
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}",
            str(tmp_path / "play.yml")] + (["--check"] if check else [])
    started = time.monotonic()
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    try:
        out = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {run.returncode}):\n{run.stdout}\n{run.stderr}")
    stats = out["stats"]["localhost"]
    changed_tasks, messages = [], []
    for task in out["plays"][0]["tasks"]:
        result = task["hosts"].get("localhost", {})
        if result.get("changed"):
            changed_tasks.append(task["task"]["name"])
        if result.get("failed"):
            messages.append(str(result.get("msg", "")))
    return {"rc": run.returncode, "changed": stats["changed"], "changed_tasks": changed_tasks,
            "message": "\n".join(messages), "text": run.stdout[-6000:], "seconds": round(time.monotonic() - started, 1)}


def _kubectl_json(kubeconfig: str, *args: str) -> dict:
    out = subprocess.run([binary_paths()["kubectl"], "--kubeconfig", kubeconfig, *args, "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_the_workload_pod_is_mutated_the_fic_exists_and_a_rerun_changes_nothing(tmp_path, sandbox, unique,
                                                                                   stand_in):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    name, kubeconfig = stand_in
    agent = _agent_info(name)
    assert agent["agent_running"] and agent["webhook"] is None, "the webhook must wait for the chart"
    issuer = f"https://issuer.example.invalid/{name}/"
    rg, identity = f"rg-wi-{unique}", f"id-wi-{unique}"
    variables = {
        "identity_resource_group": rg, "identity_name": identity, "identity_location": "westeurope",
        "identity_role_assignments": [], "oidc_issuer_url": issuer,
        "kind_cluster_kubeconfig_path": kubeconfig, "kind_cluster_context": f"kind-{name}",
        "workload_identity_helm_binary": binary_paths()["helm"],
        "workload_identity_webhook_chart_ref": CHART, "workload_identity_webhook_chart_repo_url": "",
        "workload_identity_webhook_values": {"sandbox": {"webhookURL": agent["webhook_url"],
                                                         "caBundle": agent["ca_bundle"]}},
        "workload_identity_namespace": "demo", "workload_identity_service_account": "workload",
        "workload_identity_token_expiration": 7200,
        "workload_identity_webhook_wait_timeout": 60, "workload_identity_workload_wait_timeout": 120,
        "ansible_python_interpreter": PYTHON,
    }

    first = _play(tmp_path, sandbox, variables)
    assert first["rc"] == 0, first["text"]
    assert first["changed"] > 0

    # the webhook runs because the chart was installed, with the chart's tenant
    running = _agent_info(name)["webhook"]
    assert running and running["ready"] and running["tenant_id"] == sandbox.tenant_id
    assert running["namespace"] == "azure-workload-identity-system"

    # the ServiceAccount's annotations
    sa = _kubectl_json(kubeconfig, "-n", "demo", "get", "serviceaccount", "workload")
    annotations = sa["metadata"]["annotations"]
    msi = sandbox.client(ManagedServiceIdentityClient)
    ident = msi.user_assigned_identities.get(rg, identity)
    assert annotations["azure.workload.identity/client-id"] == ident.client_id
    assert annotations["azure.workload.identity/tenant-id"] == ident.tenant_id
    assert annotations["azure.workload.identity/service-account-token-expiration"] == "7200"

    # the workload's pod, created by the ReplicaSet controller, was mutated by the webhook
    pods = _kubectl_json(kubeconfig, "-n", "demo", "get", "pods", "-l", "azure.workload.identity/use=true")["items"]
    assert len(pods) == 1, pods
    pod = pods[0]
    assert pod["spec"]["serviceAccountName"] == "workload"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}
    assert env["AZURE_CLIENT_ID"] == ident.client_id
    assert env["AZURE_TENANT_ID"] == ident.tenant_id
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == "/var/run/secrets/azure/wi/token/azure-identity-token"
    assert env["AZURE_AUTHORITY_HOST"].rstrip("/") == sandbox.authority.rstrip("/")
    tokens = [s["serviceAccountToken"] for v in pod["spec"].get("volumes") or []
              for s in (v.get("projected") or {}).get("sources") or [] if "serviceAccountToken" in s]
    wi = [t for t in tokens if t.get("audience") == "api://AzureADTokenExchange"]
    assert wi and wi[0]["expirationSeconds"] == 7200, tokens
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0].get("volumeMounts") or []}
    assert "/var/run/secrets/azure/wi/token" in mounts or any(m.startswith("/var/run/secrets/azure") for m in mounts)

    # the federated credential: the cluster's issuer byte for byte, the ServiceAccount's subject
    fic = msi.federated_identity_credentials.get(rg, identity, "demo-workload")
    assert fic.issuer == issuer
    assert fic.subject == "system:serviceaccount:demo:workload"
    assert list(fic.audiences) == ["api://AzureADTokenExchange"]

    second = _play(tmp_path, sandbox, variables)
    assert second["rc"] == 0, second["text"]
    assert second["changed"] == 0, second["changed_tasks"]
    predicted = _play(tmp_path, sandbox, variables, check=True)
    assert predicted["rc"] == 0 and predicted["changed"] == 0, predicted["changed_tasks"] or predicted["text"]
    print(f"first run {first['seconds']}s, second run {second['seconds']}s")

    # a helm killed mid-upgrade, then one killed mid-install: the role recovers the release, then converges
    ns, release = "azure-workload-identity-system", "workload-identity-webhook"
    for status, recovery in (("pending-upgrade", "rollback"), ("pending-install", "uninstall")):
        helm_pending.leave_pending(binary_paths()["kubectl"], kubeconfig, ns, release, status)
        refused = _play(tmp_path, sandbox, dict(variables, workload_identity_webhook_recover_pending=False))
        assert refused["rc"] != 0
        assert f"is {status}" in refused["message"] and "workload_identity_webhook_recover_pending" in refused["message"]
        assert f"helm {recovery} {release} -n {ns}" in refused["message"], refused["message"]
        recovered = _play(tmp_path, sandbox, variables)
        assert recovered["rc"] == 0, recovered["text"]
        assert any("Recover the webhook release if an interrupted helm left it pending" in t
                   for t in recovered["changed_tasks"]), recovered["changed_tasks"]
        assert helm_pending.statuses(binary_paths()["kubectl"], kubeconfig, ns, release)[-1] == "deployed"
        assert _agent_info(name)["webhook"]["ready"]
        settled = _play(tmp_path, sandbox, variables)
        assert settled["rc"] == 0 and settled["changed"] == 0, settled["changed_tasks"]
