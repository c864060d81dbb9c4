"""issuer_mode arc end to end (issue 5, "Acceptance"): site.yml with Azure Arc hosting the issuer, then
verify.yml, then site.yml again without a change or an ARM write.

In arc mode the oidc_issuer role publishes nothing (only the signing key pair is made), the kind
cluster is created, connected to Arc with the OIDC issuer enabled, and switched in place (its static pod
manifest, through docker cp, as by hand with real kind) to the issuer URL Arc assigned; Arc's agents
(the sandbox's agent loop) publish the cluster's own /openid/v1/jwks at that issuer; the federated
credential names it; Entra (the emulator) fetches its discovery document and JWKS over HTTPS.

Sources: AZURE_FACTS.md "Azure Arc" (--enable-oidc-issuer, properties.oidcIssuerProfile.issuerUrl, the
apiserver must then be started with that issuer); kubelet static pods (a changed manifest restarts the
component).
"""
from __future__ import annotations

import os
import subprocess

import pytest

from .conftest import REPO, needs_binaries
from .test_verify_e2e import _run

pytestmark = needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "azure-wi-webhook", "helm")


@pytest.fixture(scope="module")
def arc_site(tmp_path_factory):
    suffix = os.urandom(3).hex()
    variables = {
        "issuer_mode": "arc", "kind_cluster_name": f"arcmode-{suffix}", "identity_resource_group": f"rg-arcmode-{suffix}",
        "identity_name": f"id-arcmode-{suffix}", "oidc_issuer_name": f"arcmode{suffix}",
        "workload_identity_namespace": "arcmode", "workload_identity_service_account": "app",
        "kind_cluster_kubeconfig": str(tmp_path_factory.mktemp("arcmode") / "kubeconfig"),
    }
    yield variables
    subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name", variables["kind_cluster_name"],
                    "--kubeconfig", variables["kind_cluster_kubeconfig"]], capture_output=True, timeout=120, check=False)


def test_site_and_verify_in_issuer_mode_arc_then_a_rerun_changes_nothing(sandbox, arc_site):
    first = _run(sandbox, "site.yml", arc_site)
    assert first["rc"] == 0, first["text"]
    facts = {}
    for result in first["results"]:
        facts.update(result.get("ansible_facts") or {})
    issuer = facts["kind_cluster_issuer_url"]
    assert "/arc-oidc/" in issuer and issuer.endswith("/"), issuer
    assert facts["kind_cluster_arc"]["oidc_issuer_url"] == issuer
    assert facts["kind_cluster_arc"]["connectivity_status"] == "Connected"
    # nothing was published in storage: no storage account was created for the issuer
    assert not any("issuer_base_url" in r for r in first["results"])

    verify = _run(sandbox, "verify.yml", arc_site)
    assert verify["rc"] == 0, verify["text"]
    check = next(r for r in verify["results"] if "findings" in r)
    assert check["token"]["iss"] == issuer
    assert check["exchange"]["succeeded"] and check["access"]["write"]["result"] == "refused"

    mark = sandbox.mark()
    second = _run(sandbox, "site.yml", arc_site)
    assert second["rc"] == 0, second["text"]
    assert second["changed"] == 0
    assert sandbox.writes_since(mark, "arm") == []
