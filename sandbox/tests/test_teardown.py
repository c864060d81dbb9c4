"""playbooks/teardown.yml (issue 6): what site.yml made goes, in a safe order; --check deletes nothing and
lists it; the issuer's storage stays while a federated credential of any identity in the subscription
still names the issuer (a deleted storage account's name can be registered again by someone else, whose
documents those credentials would trust: the dangling-issuer risk), and goes once none does; a second
run deletes nothing.

Sources: learn.microsoft.com "Workload identity federation" considerations (issuer URLs that can be
re-registered); the storage account name is global (resource-name-rules); AZURE_FACTS.md.
"""
from __future__ import annotations

import os
import subprocess

from .conftest import REPO, needs_binaries
from .test_verify_e2e import _run

pytestmark = needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "azure-wi-webhook", "helm")


def test_teardown_in_a_safe_order_keeps_a_trusted_issuer_and_is_idempotent(sandbox, tmp_path):
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.msi.models import FederatedIdentityCredential
    from azure.mgmt.storage import StorageManagementClient

    suffix = os.urandom(3).hex()
    variables = {"kind_cluster_name": f"down-{suffix}", "identity_resource_group": f"rg-down-{suffix}",
                 "identity_name": f"id-down-{suffix}", "oidc_issuer_name": f"down{suffix}", "arc_enabled": False,
                 "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig")}
    try:
        site = _run(sandbox, "site.yml", variables)
        assert site["rc"] == 0, site["text"]
        facts = {}
        for result in site["results"]:
            facts.update(result.get("ansible_facts") or {})
        issuer = facts["oidc_issuer_url"]
        rg = variables["identity_resource_group"]
        msi = sandbox.client(ManagedServiceIdentityClient)
        # another identity that trusts the same issuer
        msi.user_assigned_identities.create_or_update(rg, f"id-other-{suffix}", {"location": "westeurope"})
        msi.federated_identity_credentials.create_or_update(
            rg, f"id-other-{suffix}", "other",
            FederatedIdentityCredential(issuer=issuer, subject="system:serviceaccount:x:y",
                                        audiences=["api://AzureADTokenExchange"]))

        mark = sandbox.mark()
        check = _run(sandbox, "teardown.yml", variables, "--check")
        assert check["rc"] != 0  # the other identity's credential is reported by the prediction too
        assert "is kept" in check["failed"]["msg"]
        assert sandbox.writes_since(mark, "arm") == []

        # the real run: everything of site.yml goes but the storage, which the other credential trusts
        first = _run(sandbox, "teardown.yml", variables)
        assert first["rc"] != 0
        msg = first["failed"]["msg"]
        assert f"{rg}/id-other-{suffix}/other" in msg and "is kept" in msg
        accounts = [a.name for a in sandbox.client(StorageManagementClient).storage_accounts.list_by_resource_group(rg)]
        assert len(accounts) == 1
        assert [i.name for i in msi.user_assigned_identities.list_by_resource_group(rg)] == [f"id-other-{suffix}"]
        clusters = subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "get", "clusters"], capture_output=True,
                                  text=True, check=True).stdout.split()
        assert variables["kind_cluster_name"] not in clusters

        msi.federated_identity_credentials.delete(rg, f"id-other-{suffix}", "other")
        mark = sandbox.mark()
        predicted = _run(sandbox, "teardown.yml", variables, "--check")
        assert predicted["rc"] == 0 and predicted["changed"] > 0, predicted["text"]
        assert sandbox.writes_since(mark, "arm") == []
        second = _run(sandbox, "teardown.yml", variables)
        assert second["rc"] == 0, second["text"]
        assert second["changed"] > 0
        assert list(sandbox.client(StorageManagementClient).storage_accounts.list_by_resource_group(rg)) == []
        third = _run(sandbox, "teardown.yml", variables)
        assert third["rc"] == 0 and third["changed"] == 0
    finally:
        subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name", variables["kind_cluster_name"],
                        "--kubeconfig", variables["kind_cluster_kubeconfig"]], capture_output=True, timeout=120, check=False)
