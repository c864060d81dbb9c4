"""playbooks/verify.yml end to end, and what it says when the chain is broken (issue 4, "Negative
end-to-end tests").

One site.yml run (identity, oidc_issuer, kind_cluster, workload_identity against the sandbox, names of
its own so it does not touch the demo) makes a working chain; verify.yml passes on it. Then, one at a
time, each break is made the way a person makes it by hand and undone afterwards:
- the federated credential's subject names another ServiceAccount: verify fails naming AADSTS700213
  and both subjects;
- the federated credential's issuer lacks the trailing slash the cluster's issuer has: verify fails
  naming AADSTS700211, both issuers and the trailing slash;
- a Deployment of the same ServiceAccount whose pod template lacks the label: verify reports the pod
  as not mutated (the label is on the Deployment only, a classic mistake).
After each undo verify passes again (a restored federated credential is retried through Entra's
propagation, not failed).

Sources: AZURE_FACTS.md "Entra token exchange" (which AADSTS code for which mismatch; byte-for-byte
comparison) and "The webhook" (the label must be on the pod); the Entra emulator's texts in
sandbox/server/entra.py.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from .conftest import REPO, binary_paths, needs_binaries

PLAYBOOK = str(REPO / ".venv" / "bin" / "ansible-playbook")
pytestmark = needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "azure-wi-webhook", "helm")


def _run(sandbox, playbook: str, variables: dict, *extra: str) -> dict:
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    argv = [PLAYBOOK, "-i", str(REPO / "inventories" / "sandbox"), "-e", json.dumps(variables),
            str(REPO / "playbooks" / playbook), *extra]
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    try:
        out = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook printed no JSON (rc {run.returncode}):\n{run.stdout}\n{run.stderr}")
    results = [task["hosts"].get("localhost", {}) for play in out["plays"] for task in play["tasks"]]
    failed = [r for r in results if r.get("failed")]
    return {"rc": run.returncode, "changed": out["stats"]["localhost"]["changed"],
            "failed": failed[0] if failed else None, "results": results, "text": run.stdout[-8000:]}


@pytest.fixture(scope="module")
def site(sandbox, tmp_path_factory):
    """site.yml once for this module: its own cluster, identity, issuer and namespace."""
    suffix = os.urandom(3).hex()
    variables = {
        "kind_cluster_name": f"verify-{suffix}", "identity_resource_group": f"rg-verify-{suffix}",
        "identity_name": f"id-verify-{suffix}", "oidc_issuer_name": f"verify{suffix}",
        "workload_identity_namespace": "neg", "workload_identity_service_account": "app",
        "kind_cluster_kubeconfig": str(tmp_path_factory.mktemp("verify") / "kubeconfig"),
    }
    first = _run(sandbox, "site.yml", variables)
    assert first["rc"] == 0, first["text"]
    try:
        yield variables
    finally:
        subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name",
                        variables["kind_cluster_name"], "--kubeconfig", variables["kind_cluster_kubeconfig"]],
                       capture_output=True, timeout=120, check=False)


def _fic(sandbox, site):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    msi = sandbox.client(ManagedServiceIdentityClient)
    name = f"{site['workload_identity_namespace']}-{site['workload_identity_service_account']}"
    return msi, name, msi.federated_identity_credentials.get(site["identity_resource_group"], site["identity_name"],
                                                             name)


def _put_fic(msi, site, name, issuer, subject):
    from azure.mgmt.msi.models import FederatedIdentityCredential

    msi.federated_identity_credentials.create_or_update(
        site["identity_resource_group"], site["identity_name"], name,
        FederatedIdentityCredential(issuer=issuer, subject=subject, audiences=["api://AzureADTokenExchange"]))


def _check(result: dict) -> dict:
    """The workload_identity_check task's result."""
    return next(r for r in result["results"] if "findings" in r)


def _passes(sandbox, site):
    result = _run(sandbox, "verify.yml", site)
    assert result["rc"] == 0, result["text"]
    check = _check(result)
    assert check["exchange"]["succeeded"] and check["access"]["read"]["result"] == "allowed"
    assert check["access"]["write"] == {"result": "refused", "status": 403, "code": "AuthorizationFailed"}
    return check


def test_verify_passes_on_what_site_made(sandbox, site):
    check = _passes(sandbox, site)
    assert check["token"]["sub"] == "system:serviceaccount:neg:app"
    assert check["predicted_code"] is None
    assert [f["id"] for f in check["findings"]] == ["fic_match"]


def test_a_credential_for_another_service_account_is_named_aadsts700213_with_both_subjects(sandbox, site):
    msi, name, fic = _fic(sandbox, site)
    _put_fic(msi, site, name, fic.issuer, "system:serviceaccount:neg:other")
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        msg = result["failed"]["msg"]
        assert "AADSTS700213" in msg
        assert "'system:serviceaccount:neg:app'" in msg and "'system:serviceaccount:neg:other'" in msg
        check = result["failed"]
        assert check["predicted_code"] == "AADSTS700213"
        assert check["exchange"]["attempted"] and not check["exchange"]["succeeded"]
        # Entra refused it too (700213, or 70021 while the rewritten credential propagates)
        assert check["exchange"]["code"] in ("AADSTS700213", "AADSTS70021")
    finally:
        _put_fic(msi, site, name, fic.issuer, fic.subject)
    _passes(sandbox, site)


def test_an_issuer_without_the_trailing_slash_is_named_aadsts700211_with_both_issuers(sandbox, site):
    msi, name, fic = _fic(sandbox, site)
    assert fic.issuer.endswith("/")
    _put_fic(msi, site, name, fic.issuer.rstrip("/"), fic.subject)
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        msg = result["failed"]["msg"]
        assert "AADSTS700211" in msg
        assert f"'{fic.issuer}'" in msg and f"'{fic.issuer.rstrip('/')}'" in msg
        assert "trailing slash" in msg
        assert result["failed"]["predicted_code"] == "AADSTS700211"
    finally:
        _put_fic(msi, site, name, fic.issuer, fic.subject)
    _passes(sandbox, site)


def test_a_pod_template_without_the_label_is_reported_not_mutated(sandbox, site):
    kubectl = [binary_paths()["kubectl"], "--kubeconfig", site["kind_cluster_kubeconfig"], "--context",
               f"kind-{site['kind_cluster_name']}", "-n", "neg"]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        # the label on the Deployment (and not on its pod template) does not reach the pods
        "metadata": {"name": "unlabelled", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "unlabelled"}},
                 "template": {"metadata": {"labels": {"app": "unlabelled"}},
                              "spec": {"serviceAccountName": "app",
                                       "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]}}},
    }
    subprocess.run(kubectl + ["apply", "-f", "-"], input=json.dumps(deployment), text=True, check=True,
                   capture_output=True, timeout=60)
    try:
        subprocess.run(kubectl + ["rollout", "status", "deployment/unlabelled", "--timeout=120s"], check=True,
                       capture_output=True, timeout=150)
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        msg = result["failed"]["msg"]
        assert "was not mutated" in msg and "azure.workload.identity/use" in msg
        findings = [f for f in result["failed"]["findings"] if f["id"] == "pod_not_mutated"]
        assert len(findings) == 1 and findings[0]["evidence"]["pod"].startswith("unlabelled-")
        assert "spec.template.metadata.labels" in findings[0]["fix"]
        # the labelled workload's token exchange itself still works
        assert result["failed"]["exchange"]["succeeded"]
    finally:
        subprocess.run(kubectl + ["delete", "deployment", "unlabelled", "--wait=true"], capture_output=True,
                       timeout=120, check=False)
