"""The pure parts of arc_connect (module_utils/_arc.py).

Sources: azure-cli-extensions src/connectedk8s custom.py/_utils.py (RSA-4096 agent key, public key as
base64 DER of the PKCS#1 RSAPublicKey (asn1.DerSequence([n, e])), private key as an "RSA PRIVATE KEY"
PEM, the --set values of `helm upgrade --install azure-arc`, get_config_dp_endpoint, distribution
detection from the providerID `kind://`); AZURE_FACTS.md "Azure Arc"; helm 3.8+ OCI references
(oci://REGISTRY/PATH --version TAG).
"""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.arcwi.workload_identity.plugins.module_utils import _arc as arc


def test_agent_key_pair_is_rsa_4096_in_the_formats_connectedk8s_sends():
    public, private = arc.agent_key_pair()
    key = serialization.load_pem_private_key(private.encode(), None)
    assert key.key_size == 4096
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    # the public half, as base64 DER of the PKCS#1 RSAPublicKey
    pkcs1 = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    assert base64.b64decode(public) == pkcs1


def test_two_key_pairs_differ():
    assert arc.agent_key_pair(2048)[0] != arc.agent_key_pair(2048)[0]


@pytest.mark.parametrize("name, ok", [("a", True), ("arcwi-demo", True), ("a_b", True), ("x" * 63, True),
                                      ("kind.demo", True), ("x" * 64, False), ("a/b", False), ("a b", False),
                                      ("a:b", False), ("a%b", False), ("", False)])
def test_cluster_name_rules(name, ok):
    if ok:
        arc.validate_cluster_name(name)
    else:
        with pytest.raises(arc.ArcError, match="name .* is invalid: a connected cluster name is 1-63 characters"):
            arc.validate_cluster_name(name)


def node(provider_id="", labels=None, arch="amd64", os_name="linux"):
    return {"metadata": {"name": "n1", "labels": labels or {}}, "spec": {"providerID": provider_id},
            "status": {"nodeInfo": {"architecture": arch, "operatingSystem": os_name}}}


@pytest.mark.parametrize("nodes, version, expected", [
    ([node("kind://docker/demo/demo-control-plane")], {"gitVersion": "v1.35.4"}, "kind"),
    ([node("k3s://node1")], {"gitVersion": "v1.31.4+k3s1"}, "k3s"),
    ([node("aws:///eu-west-1a/i-0")], {"gitVersion": "v1.30.0-eks-1"}, "eks"),
    ([node("gce://p/z/n")], {}, "gke"),
    ([node("azure:///x", {"kubernetes.azure.com/cluster": "mc"})], {}, "aks"),
    ([node("")], {"gitVersion": "v1.35.4"}, "generic"),
])
def test_distribution(nodes, version, expected):
    assert arc.detect_distribution(nodes, version) == expected


def test_infrastructure():
    assert arc.detect_infrastructure([node("aws:///x")]) == "aws"
    assert arc.detect_infrastructure([node("kind://docker/x/y")]) == "generic"


def test_a_linux_amd64_node_is_needed():
    assert arc.node_problems([node()]) == []
    assert arc.node_problems([node(arch="arm64"), node()]) == []
    problems = arc.node_problems([node(arch="arm64")])
    assert "no linux/amd64 node" in problems[0] and "n1=linux/arm64" in problems[0]
    assert arc.node_problems([]) == ["the cluster has no node"]


def test_chart_reference_from_repository_path():
    assert arc.chart_reference("mcr.microsoft.com/azurearck8s/batch1/stable/azure-arc-k8sagents:1.21.10") == (
        "oci://mcr.microsoft.com/azurearck8s/batch1/stable/azure-arc-k8sagents", "1.21.10")
    assert arc.chart_reference("127.0.0.1:44320/arc/azure-arc-k8sagents:1.0.0") == (
        "oci://127.0.0.1:44320/arc/azure-arc-k8sagents", "1.0.0")
    with pytest.raises(arc.ArcError, match="has no version tag"):
        arc.chart_reference("127.0.0.1:44320/arc/azure-arc-k8sagents")


def test_helm_values_are_connectedk8s_set_values():
    values = arc.helm_values("sub", "rg", "name", "westeurope", "tenant", "kind", "generic", "PEM", "AZUREPUBLICCLOUD")
    assert values["global"] == {"subscriptionId": "sub", "kubernetesDistro": "kind", "kubernetesInfra": "generic",
                                "resourceGroupName": "rg", "resourceName": "name", "location": "westeurope",
                                "tenantId": "tenant", "onboardingPrivateKey": "PEM",
                                "azureEnvironment": "AZUREPUBLICCLOUD"}
    assert values["systemDefaultValues"] == {"spnOnboarding": False, "clusterconnect-agent": {"enabled": True}}


def test_dataplane_endpoint_follows_the_cloud():
    assert arc.default_dataplane_endpoint("westeurope", "https://login.microsoftonline.com/") == \
        "https://westeurope.dp.kubernetesconfiguration.azure.com/"
    assert arc.default_dataplane_endpoint("usgovvirginia", "https://login.microsoftonline.us/") == \
        "https://usgovvirginia.dp.kubernetesconfiguration.azure.us/"


def test_cloud_names():
    assert arc.arm_cloud_name("AzureCloud") == "AZUREPUBLICCLOUD"
    assert arc.arm_cloud_name("AzureUSGovernment") == "AZUREUSGOVERNMENTCLOUD"


def test_normalise_rest_shape():
    cc = {"id": "/x", "name": "c", "location": "westeurope", "tags": {"a": "b"},
          "identity": {"type": "SystemAssigned", "principalId": "p"},
          "properties": {"provisioningState": "Succeeded", "connectivityStatus": "Connected",
                         "kubernetesVersion": "1.35.4", "totalNodeCount": 1, "distribution": "kind",
                         "oidcIssuerProfile": {"enabled": True, "issuerUrl": "https://i/"},
                         "securityProfile": {"workloadIdentity": {"enabled": True}}}}
    out = arc.normalise_connected_cluster(cc)
    assert out["principal_id"] == "p" and out["connectivity_status"] == "Connected"
    assert out["oidc_issuer_enabled"] and out["oidc_issuer_url"] == "https://i/" and out["workload_identity_enabled"]
    assert arc.normalise_connected_cluster(None) is None
