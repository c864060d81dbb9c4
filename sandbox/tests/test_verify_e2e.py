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
import uuid

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


def _put_fic(msi, site, name, issuer, subject, audience="api://AzureADTokenExchange"):
    from azure.mgmt.msi.models import FederatedIdentityCredential

    msi.federated_identity_credentials.create_or_update(
        site["identity_resource_group"], site["identity_name"], name,
        FederatedIdentityCredential(issuer=issuer, subject=subject, audiences=[audience]))


def _kubectl(site) -> list:
    return [binary_paths()["kubectl"], "--kubeconfig", site["kind_cluster_kubeconfig"], "--context",
            f"kind-{site['kind_cluster_name']}", "-n", "neg"]


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
    kubectl = _kubectl(site)
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


# ---- one broken setup per finding (the ones above: 700213, 700211, pod_not_mutated) --------------------
def _finding(result: dict, fid: str) -> dict:
    check = result["failed"] or _check(result)
    found = [f for f in check["findings"] if f["id"] == fid]
    assert found, f"no {fid} finding in {[f['id'] for f in check['findings']]}"
    return found[0]


def test_a_subject_that_differs_in_case_is_named_aadsts7002138(sandbox, site):
    msi, name, fic = _fic(sandbox, site)
    _put_fic(msi, site, name, fic.issuer, "system:serviceaccount:NEG:app")
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        found = _finding(result, "fic_subject_mismatch")
        assert found["message"].startswith("AADSTS7002138") and "case" in found["message"]
        assert result["failed"]["predicted_code"] == "AADSTS7002138"
    finally:
        _put_fic(msi, site, name, fic.issuer, fic.subject)


def test_a_credential_with_another_audience_is_named_aadsts700212(sandbox, site):
    msi, name, fic = _fic(sandbox, site)
    _put_fic(msi, site, name, fic.issuer, fic.subject, audience="api://SomethingElse")
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        found = _finding(result, "fic_audience_mismatch")
        assert "api://AzureADTokenExchange" in found["message"] and "api://SomethingElse" in found["message"]
        assert result["failed"]["predicted_code"] == "AADSTS700212"
    finally:
        _put_fic(msi, site, name, fic.issuer, fic.subject)


def test_no_credential_at_all_is_named_aadsts70021(sandbox, site):
    msi, name, fic = _fic(sandbox, site)
    msi.federated_identity_credentials.delete(site["identity_resource_group"], site["identity_name"], name)
    try:
        result = _run(sandbox, "verify.yml", dict(site, verify_expect_write_refused=False))
        assert result["rc"] != 0
        assert _finding(result, "fic_none")["message"].startswith("AADSTS70021")
        assert result["failed"]["exchange"]["code"] == "AADSTS70021"
    finally:
        _put_fic(msi, site, name, fic.issuer, fic.subject)
    _passes(sandbox, site)


def test_a_service_account_annotated_with_another_client_id_is_named(sandbox, site):
    kubectl = _kubectl(site)
    key = "azure.workload.identity/client-id"
    original = json.loads(subprocess.run(kubectl + ["get", "serviceaccount", "app", "-o", "json"], check=True,
                                         capture_output=True, text=True, timeout=60).stdout)["metadata"]["annotations"][key]
    wrong = "00000000-0000-0000-0000-000000000001"
    subprocess.run(kubectl + ["annotate", "serviceaccount", "app", f"{key}={wrong}", "--overwrite"], check=True,
                   capture_output=True, timeout=60)
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        found = _finding(result, "sa_client_id_mismatch")
        assert wrong in found["message"] and original in found["message"]
    finally:
        subprocess.run(kubectl + ["annotate", "serviceaccount", "app", f"{key}={original}", "--overwrite"],
                       check=True, capture_output=True, timeout=60)


def test_a_missing_service_account_and_a_missing_identity_are_named(sandbox, site):
    result = _run(sandbox, "verify.yml", dict(site, workload_identity_service_account="ghost"))
    assert result["rc"] != 0
    assert "neg/ghost does not exist" in _finding(result, "service_account_missing")["message"]
    result = _run(sandbox, "verify.yml", dict(site, identity_name="id-ghost"))
    assert result["rc"] != 0
    assert "managed identity id-ghost does not exist" in _finding(result, "identity_missing")["message"]


def test_a_credential_whose_issuer_is_gone_is_reported_as_dangling_without_failing(sandbox, site):
    """Another cluster's FIC whose issuer storage account was deleted (Azurite answers 404 for it): the
    exchange still works, so it is a warning, naming the FIC and the issuer."""
    msi, _, fic = _fic(sandbox, site)
    gone = sandbox.env["ARCWI_SANDBOX_BLOB"].rstrip("/") + "/deletedacct0001/oidc/"
    _put_fic(msi, site, "old-cluster", gone, fic.subject)
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] == 0, result["text"]
        found = _finding(result, "dangling_issuer")
        assert found["severity"] == "warning"
        assert found["evidence"] == {"fic": "old-cluster", "issuer": gone, "kind": "gone", "error": "HTTP 404"}
        assert "old-cluster" in found["message"] and "delete the federated credential" in found["fix"]
    finally:
        msi.federated_identity_credentials.delete(site["identity_resource_group"], site["identity_name"],
                                                  "old-cluster")


# ---- the issuer's published documents and the webhook -------------------------------------------------
class _Issuer:
    """The issuer's documents in the sandbox's Azurite (path-style URL: /<account>/<container>/), changed
    and put back by the tests below."""

    DISCOVERY, JWKS = ".well-known/openid-configuration", "openid/v1/jwks"

    def __init__(self, sandbox, site):
        from urllib.parse import urlsplit

        from azure.mgmt.storage import StorageManagementClient
        from azure.storage.blob import BlobServiceClient

        _, _, fic = _fic(sandbox, site)
        self.issuer = fic.issuer
        url = urlsplit(fic.issuer)
        account, container = url.path.strip("/").split("/")[:2]
        keys = sandbox.client(StorageManagementClient).storage_accounts.list_keys(site["identity_resource_group"], account)
        service = BlobServiceClient(f"{url.scheme}://{url.netloc}/{account}",
                                    credential={"account_name": account, "account_key": keys["keys"][0]["value"]})
        self.container = service.get_container_client(container)
        self.saved = {name: self.container.download_blob(name).readall() for name in (self.DISCOVERY, self.JWKS)}

    def put(self, name: str, document) -> None:
        from azure.storage.blob import ContentSettings

        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.container.upload_blob(name, data, overwrite=True,
                                   content_settings=ContentSettings(content_type="application/json"))

    def restore(self) -> None:
        for name, data in self.saved.items():
            self.put(name, data)


def test_a_discovery_document_that_cannot_be_fetched_is_named_aadsts90061(sandbox, site):
    issuer = _Issuer(sandbox, site)
    issuer.container.delete_blob(issuer.DISCOVERY)
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        found = _finding(result, "issuer_unreachable")
        assert found["message"].startswith("AADSTS90061") and issuer.issuer in found["message"]
    finally:
        issuer.restore()


def test_a_published_issuer_other_than_the_tokens_is_named_with_both(sandbox, site):
    issuer = _Issuer(sandbox, site)
    document = json.loads(issuer.saved[issuer.DISCOVERY])
    issuer.put(issuer.DISCOVERY, dict(document, issuer=issuer.issuer.rstrip("/")))
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        found = _finding(result, "published_issuer_mismatch")
        assert f"'{issuer.issuer.rstrip('/')}'" in found["message"] and f"'{issuer.issuer}'" in found["message"]
        assert "trailing slash" in found["message"]
    finally:
        issuer.restore()


def test_a_signing_key_missing_from_the_published_jwks_is_named(sandbox, site):
    issuer = _Issuer(sandbox, site)
    jwks = json.loads(issuer.saved[issuer.JWKS])
    kids = [k["kid"] for k in jwks["keys"]]
    issuer.put(issuer.JWKS, {"keys": [dict(jwks["keys"][0], kid="not-the-signing-key")]})
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        found = _finding(result, "kid_not_published")
        assert kids[0] in found["message"] and "not-the-signing-key" in found["message"]
    finally:
        issuer.restore()


def test_an_extra_published_key_is_a_warning_named_jwks_drift(sandbox, site):
    issuer = _Issuer(sandbox, site)
    jwks = json.loads(issuer.saved[issuer.JWKS])
    issuer.put(issuer.JWKS, {"keys": jwks["keys"] + [dict(jwks["keys"][0], kid="retired-key")]})
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] == 0, result["text"]
        found = _finding(result, "jwks_drift")
        assert found["severity"] == "warning" and "extra ['retired-key']" in found["message"]
    finally:
        issuer.restore()


def test_a_cluster_without_the_webhook_is_named(sandbox, site):
    kubectl = [binary_paths()["kubectl"], "--kubeconfig", site["kind_cluster_kubeconfig"], "--context",
               f"kind-{site['kind_cluster_name']}"]
    configs = json.loads(subprocess.run(kubectl + ["get", "mutatingwebhookconfigurations", "-o", "json"], check=True,
                                        capture_output=True, text=True, timeout=60).stdout)["items"]
    mine = [c for c in configs if any(w["name"] == "mutation.azure-workload-identity.io" for w in c.get("webhooks", []))]
    assert len(mine) == 1
    saved = mine[0]
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        saved["metadata"].pop(key, None)
    subprocess.run(kubectl + ["delete", "mutatingwebhookconfiguration", saved["metadata"]["name"]], check=True,
                   capture_output=True, timeout=60)
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        assert "mutation.azure-workload-identity.io" in _finding(result, "webhook_missing")["message"]
    finally:
        subprocess.run(kubectl + ["create", "-f", "-"], input=json.dumps(saved), text=True, check=True,
                       capture_output=True, timeout=60)
    _passes(sandbox, site)


# ---- the ServiceAccount, the pods, the identity's credentials and rights ------------------------------
def test_missing_client_id_and_wrong_tenant_annotations_are_named(sandbox, site):
    kubectl = _kubectl(site)
    sa = json.loads(subprocess.run(kubectl + ["get", "serviceaccount", "app", "-o", "json"], check=True,
                                   capture_output=True, text=True, timeout=60).stdout)
    annotations = sa["metadata"]["annotations"]
    client_id = annotations["azure.workload.identity/client-id"]
    tenant_id = annotations["azure.workload.identity/tenant-id"]
    wrong_tenant = "00000000-0000-0000-0000-0000000000aa"
    subprocess.run(kubectl + ["annotate", "serviceaccount", "app", "azure.workload.identity/client-id-",
                              f"azure.workload.identity/tenant-id={wrong_tenant}", "--overwrite"],
                   check=True, capture_output=True, timeout=60)
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        assert "has no azure.workload.identity/client-id annotation" in _finding(result, "sa_client_id_missing")["message"]
        found = _finding(result, "sa_tenant_id_mismatch")
        assert wrong_tenant in found["message"] and tenant_id in found["message"]
    finally:
        subprocess.run(kubectl + ["annotate", "serviceaccount", "app", f"azure.workload.identity/client-id={client_id}",
                                  f"azure.workload.identity/tenant-id={tenant_id}", "--overwrite"],
                       check=True, capture_output=True, timeout=60)


def test_a_service_account_without_pods_is_a_warning(sandbox, site):
    kubectl = _kubectl(site)
    subprocess.run(kubectl + ["create", "serviceaccount", "idle"], check=True, capture_output=True, timeout=60)
    try:
        result = _run(sandbox, "verify.yml", dict(site, workload_identity_service_account="idle"))
        found = _finding(result, "no_pod")
        assert found["severity"] == "warning" and "ServiceAccount idle" in found["message"]
    finally:
        subprocess.run(kubectl + ["delete", "serviceaccount", "idle"], capture_output=True, timeout=60, check=False)


def test_an_identity_close_to_twenty_credentials_is_a_warning(sandbox, site):
    msi, _, fic = _fic(sandbox, site)
    extra = [f"other-{i:02d}" for i in range(18)]  # 19 with the workload's own: 1 left
    with sandbox.settings(throttle_enabled=False, fic_write_seconds=0):
        for name in extra:
            _put_fic(msi, site, name, f"https://127.0.0.1:1/{name}/", fic.subject)  # loopback: nothing leaves
    try:
        result = _run(sandbox, "verify.yml", dict(site, verify_check_other_issuers=False))
        found = _finding(result, "fic_headroom")
        assert found["evidence"] == {"count": 19, "limit": 20}
    finally:
        with sandbox.settings(throttle_enabled=False, fic_write_seconds=0):
            for name in extra:
                msi.federated_identity_credentials.delete(site["identity_resource_group"], site["identity_name"], name)


def test_an_identity_that_can_write_is_named(sandbox, site):
    from azure.mgmt.authorization import AuthorizationManagementClient

    msi, _, _ = _fic(sandbox, site)
    principal = msi.user_assigned_identities.get(site["identity_resource_group"], site["identity_name"]).principal_id
    auth = sandbox.client(AuthorizationManagementClient)
    contributor = next(auth.role_definitions.list(sandbox.sub_scope, filter="roleName eq 'Contributor'")).id
    name = str(uuid.uuid4())
    auth.role_assignments.create(sandbox.sub_scope, name, {"role_definition_id": contributor, "principal_id": principal,
                                                            "principal_type": "ServicePrincipal"})
    try:
        result = _run(sandbox, "verify.yml", site)
        assert result["rc"] != 0
        assert _finding(result, "write_allowed")["severity"] == "error"
    finally:
        auth.role_assignments.delete(sandbox.sub_scope, name)
    _passes(sandbox, site)
