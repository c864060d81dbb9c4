"""The identity and workload_identity roles on a real kind cluster, as users run them: the upstream webhook
chart 1.6.0 (packaged from its module, its image preloaded), a cloud of the sandbox's own for the webhook
(AzureStackCloud, an environment file in a ConfigMap created by workload_identity_webhook_extra_manifests),
and the demo workload (sandbox/go/proof) as the role's workload manifest. The pod proves it: its log shows
the exchange, an ARM read allowed and a write refused 403. A second run changes nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from sandbox import podnet

from .conftest import REPO
from .realkind import Runner, issuer_keys
from .test_real_pod import PROOF_IMAGE
from .test_real_webhook import _chart, _helm

PLAYBOOK = """
- name: identity and workload_identity on real kind
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


def _variables(sandbox, unique: str, issuer: str, kubeconfig: str, context: str) -> dict:
    rg = f"rg-rwi-{unique}"
    environment = json.dumps({"name": "ArcwiSandboxCloud", "activeDirectoryEndpoint": podnet.url("entra")})
    sub = sandbox.subscription_id
    proof_env = {"ARCWI_ARM_ENDPOINT": podnet.url("arm"), "ARCWI_ARM_SCOPE": sandbox.arm_scope,
                 "ARCWI_READ_PATH": f"/subscriptions/{sub}/resourceGroups/{rg}?api-version=2021-04-01",
                 "ARCWI_WRITE_PATH": f"/subscriptions/{sub}/resourceGroups/{rg}-denied?api-version=2021-04-01",
                 "ARCWI_WRITE_BODY": '{"location": "westeurope"}', "ARCWI_INTERVAL": "2",
                 "SSL_CERT_FILE": "/etc/sandbox-ca/ca.pem"}
    labels = {"app": "workload"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "workload", "namespace": "demo"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": {**labels, "azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "workload", "containers": [{
                "name": "proof", "image": PROOF_IMAGE, "imagePullPolicy": "Never",
                "env": [{"name": k, "value": v} for k, v in proof_env.items()],
                "volumeMounts": [{"name": "ca", "mountPath": "/etc/sandbox-ca", "readOnly": True}]}],
                "volumes": [{"name": "ca", "configMap": {"name": "sandbox-ca"}}]}}}}
    ca = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sandbox-ca", "namespace": "demo"},
          "data": {"ca.pem": open(sandbox.bundle).read()}}
    return {
        "identity_resource_group": rg, "identity_name": f"id-rwi-{unique}", "identity_location": "westeurope",
        "oidc_issuer_url": issuer, "kind_cluster_kubeconfig_path": kubeconfig, "kind_cluster_context": context,
        "workload_identity_helm_binary": _helm(), "workload_identity_webhook_chart_ref": _chart(),
        "workload_identity_webhook_chart_repo_url": "",
        "workload_identity_webhook_azure_environment": "AzureStackCloud",
        "workload_identity_webhook_extra_manifests": [{
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "arcwi-sandbox-cloud"},
            "data": {"environment.json": environment}}],
        "workload_identity_webhook_values": {
            "extraEnv": [{"name": "AZURE_ENVIRONMENT_FILEPATH", "value": "/etc/arcwi-sandbox/environment.json"}],
            "extraVolumes": [{"name": "cloud", "configMap": {"name": "arcwi-sandbox-cloud"}}],
            "extraVolumeMounts": [{"name": "cloud", "mountPath": "/etc/arcwi-sandbox", "readOnly": True}]},
        "workload_identity_namespace": "demo", "workload_identity_service_account": "workload",
        "workload_identity_workload_manifest": [ca, deployment],
        "workload_identity_webhook_wait_timeout": 180, "workload_identity_workload_wait_timeout": 180,
        "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python"),
    }


def _play(tmp_path, sandbox, variables: dict) -> dict:
    (tmp_path / "wi.yml").write_text(PLAYBOOK)
    (tmp_path / "wi.json").write_text(json.dumps(variables))
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e",
                          f"@{tmp_path / 'wi.json'}", str(tmp_path / "wi.yml")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    try:
        out = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {run.returncode}):\n{run.stdout}\n{run.stderr}")
    failed, changed = [], []
    for task in out["plays"][0]["tasks"]:
        result = task["hosts"].get("localhost", {})
        if result.get("failed"):
            failed.append(f"{task['task']['name']}: {result.get('msg', '')}")
        if result.get("changed"):
            changed.append(task["task"]["name"].split(" : ", 1)[-1])
    return {"rc": run.returncode, "changed": changed, "text": "\n".join(failed) or run.stdout[-4000:]}


def test_the_roles_on_real_kind_give_the_pod_azure_access_and_a_rerun_changes_nothing(
        tmp_path, sandbox, oidc_server, real_kind, tmp_path_factory):
    issuer = oidc_server.issuer()
    (tmp_path / "cluster").mkdir()
    runner = Runner(tmp_path / "cluster", issuer_keys(issuer, tmp_path_factory.mktemp("rwi-keys")), real_kind)
    name = runner.name()
    try:
        created = runner.play(runner.variables(name, issuer.url))
        assert created["rc"] == 0, created["text"]
        variables = _variables(sandbox, uuid.uuid4().hex[:8], issuer.url, runner.kubeconfig, f"kind-{name}")
        with sandbox.settings(fic_propagation_seconds=0.0):
            first = _play(tmp_path, sandbox, variables)
            assert first["rc"] == 0, first["text"]
            assert "Objects for the webhook's release in azure-workload-identity-system" in first["changed"]

            deadline = time.monotonic() + 120
            while True:
                logs = subprocess.run([runner.real["kubectl"], "--kubeconfig", runner.kubeconfig, "--context",
                                       f"kind-{name}", "logs", "-n", "demo", "deployment/workload"],
                                      capture_output=True, text=True, timeout=60).stdout
                lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
                if lines:
                    break
                assert time.monotonic() < deadline, "the workload printed nothing"
                time.sleep(1)
            assert (lines[0]["exchange"], lines[0]["read"], lines[0]["write"], lines[0]["write_code"]) == \
                ("ok", 200, 403, "AuthorizationFailed"), lines[0]
            assert lines[0]["assertion_sub"] == "system:serviceaccount:demo:workload"

            second = _play(tmp_path, sandbox, variables)
            assert second["rc"] == 0, second["text"]
            assert second["changed"] == [], second["changed"]
    finally:
        runner.cleanup()
