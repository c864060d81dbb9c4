"""site.yml converges in one run while 20% of ARM requests fail (429 with Retry-After, 500, 503 or a
dropped connection, 5% each), 10% of Entra token requests answer 503 (and one 429), and the blob data
plane drops one upload, answers its retry 500 and one read 503, from a fixed seed: no duplicate role
assignment or federated credential, every Retry-After waited out, every faulted blob request sent
again and served, and a re-run without faults changes nothing (oidc_documents compares the published
documents byte for byte, so that also proves them intact).

Sources: learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling
(429 with Retry-After, "wait the number of seconds in the Retry-After header"), azure-core's
RetryPolicy (5xx and connection errors retried); the sandbox's fault injector (sandbox/server/faults.py)
answers before the handler runs, so a faulted request has no effect, as with a gateway failure.
Blob faults come from the sandbox's proxy in front of Azurite (sandbox/server/blob.py) in Storage's shape
(503 ServerBusy, 500 OperationTimedOut; Storage does not answer 429), retried by azure-storage-blob's
own ExponentialRetry (learn.microsoft.com/azure/storage/blobs/storage-retry-policy-python).
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient

from .conftest import REPO, needs_binaries

RULES = [
    # each kind at least once, on the writes that matter most (the injector answers before the handler,
    # so the dropped identity PUT and the throttled role assignment PUT did nothing the first time)
    {"service": "arm", "method": "PUT", "path": "/userAssignedIdentities/", "rate": 1, "count": 1, "kind": "drop"},
    {"service": "arm", "method": "PUT", "path": "/roleAssignments/", "rate": 1, "count": 1, "kind": "429",
     "retry_after": 2},
    {"service": "arm", "method": "PUT", "path": "/federatedIdentityCredentials/", "rate": 1, "count": 1, "kind": "503"},
    {"service": "entra", "method": "POST", "rate": 1, "count": 1, "kind": "503"},
    {"service": "entra", "method": "POST", "rate": 1, "count": 1, "kind": "429", "retry_after": 2},
    # the data plane (the sandbox's proxy in front of Azurite), in Azure Storage's shape: the first
    # document upload is dropped and its retry answered 500 OperationTimedOut, one read 503 ServerBusy
    {"service": "blob", "method": "PUT", "rate": 1, "count": 1, "kind": "drop"},
    {"service": "blob", "method": "PUT", "rate": 1, "count": 1, "kind": "500"},
    {"service": "blob", "method": "GET|HEAD", "rate": 1, "count": 1, "kind": "503"},
    # then 20% of everything
    {"service": "arm", "rate": 0.05, "kind": "429", "retry_after": 2},
         {"service": "arm", "rate": 0.05 / 0.95, "kind": "500"},
         {"service": "arm", "rate": 0.05 / 0.90, "kind": "503"},
         {"service": "arm", "rate": 0.05 / 0.85, "kind": "drop"},
         {"service": "entra", "method": "POST", "rate": 0.10, "kind": "503"}]
SEED = 20261128


def _site(sandbox, variables: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox"),
                           "-e", json.dumps(variables), str(REPO / "playbooks" / "site.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "helm", "azure-wi-webhook")
def test_site_converges_in_one_run_under_injected_faults(sandbox, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    rg, name = f"rg-fault-{suffix}", f"id-fault-{suffix}"
    variables = {"kind_cluster_name": f"fault-{suffix}", "identity_resource_group": rg, "identity_name": name,
                 "oidc_issuer_name": f"fault{suffix}", "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig")}
    mark = sandbox.mark()
    try:
        with sandbox.faults(RULES, seed=SEED):
            first = _site(sandbox, variables)
        assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
        rows = sandbox.requests_since(mark)
        faulted = [r for r in rows if r.get("fault")]
        kinds = {(r["service"], r["fault"]) for r in faulted}
        assert {("arm", "429"), ("arm", "500"), ("arm", "503"), ("arm", "drop"), ("entra", "503"), ("entra", "429"),
                ("blob", "drop"), ("blob", "500"), ("blob", "503")} <= kinds, kinds
        # every faulted blob request was sent again and then served
        blob = [r for r in rows if r["service"] == "blob"]
        for failed in [r for r in blob if r.get("fault")]:
            later = [r for r in blob if r["seq"] > failed["seq"] and (r["method"], r["path"], r["query"]) ==
                     (failed["method"], failed["path"], failed["query"]) and not r.get("fault")]
            assert later, failed
            if failed["method"] == "PUT":
                assert 200 <= later[0]["status"] < 300, (failed, later[0])
            else:  # a read's real answer, 200 or 404 ("not published yet" on a first run)
                assert later[0]["status"] in (200, 404), (failed, later[0])
            if failed["method"] == "GET":  # a read that failed is read again, not answered by a blind write
                nxt = next(r for r in blob if r["seq"] > failed["seq"] and r["path"] == failed["path"])
                assert nxt["method"] == "GET", (failed, nxt)
        arm = [r for r in rows if r["service"] == "arm"]
        share = sum(1 for r in arm if r.get("fault")) / len(arm)
        assert 0.1 < share < 0.4, f"{share:.0%} of {len(arm)} ARM requests faulted"

        # every 429's Retry-After (2 s) was waited out before the same request came again (ARM and Entra)
        entra = [r for r in rows if r["service"] == "entra"]
        for throttled in [r for r in arm + entra if r.get("fault") == "429"]:
            same = arm if throttled["service"] == "arm" else entra
            again = [r for r in same if r["seq"] > throttled["seq"] and r["method"] == throttled["method"]
                     and r["path"] == throttled["path"]]
            if again:
                assert again[0]["ts"] - throttled["ts"] >= 1.9, (throttled, again[0])

        msi = sandbox.client(ManagedServiceIdentityClient)
        identity = msi.user_assigned_identities.get(rg, name)
        fics = list(msi.federated_identity_credentials.list(rg, name))
        assert len(fics) == 1
        auth = sandbox.client(AuthorizationManagementClient)
        assignments = list(auth.role_assignments.list_for_subscription(
            filter=f"principalId eq '{identity.principal_id}'"))
        assert len(assignments) == 1

        second = _site(sandbox, variables)
        assert second.returncode == 0, second.stdout[-4000:]
        assert "changed=0" in second.stdout
    finally:
        subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name", variables["kind_cluster_name"],
                        "--kubeconfig", variables["kind_cluster_kubeconfig"]], capture_output=True, timeout=300,
                       check=False)
