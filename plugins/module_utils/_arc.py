# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Azure Arc onboarding, what `az connectedk8s connect` does (azure-cli-extensions src/connectedk8s,
custom.py and _utils.py), as pure pieces the arc_connect module puts together.

- Agent key: RSA-4096; the ARM resource gets ``agentPublicKeyCertificate`` = base64 of the DER
  PKCS#1 RSAPublicKey (``asn1.DerSequence([n, e])`` in connectedk8s), the agents get the private key as
  a PKCS#1 PEM ("RSA PRIVATE KEY") in the Helm value ``global.onboardingPrivateKey``.
- Idempotency: the chart writes ConfigMap ``azure-clusterconfig`` in namespace ``azure-arc`` with the
  resource group and name of the onboarding.
- Release ``azure-arc`` in namespace ``azure-arc-release`` (created), from the chart whose location the
  data plane's ``GetLatestHelmPackagePath`` returns.
"""
from __future__ import annotations

import base64
import re

from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError

PROVIDERS = ("Microsoft.Kubernetes", "Microsoft.KubernetesConfiguration", "Microsoft.ExtendedLocation")
CONFIG_NAMESPACE = "azure-arc"
CONFIG_MAP = "azure-clusterconfig"
RELEASE = "azure-arc"
RELEASE_NAMESPACE = "azure-arc-release"
CHART_API_VERSION = "2019-11-01-preview"
# connectedClusters names: the spec sets no pattern (ResourceNameParameter NamePattern ""), so only ARM's
# reserved characters are refused, and more than 63 characters (the length of a DNS label, which the
# agents use the name in); stricter would refuse names Azure accepts.
CLUSTER_NAME = re.compile(r"^[^<>%&:\\?/#*\s]{1,63}$")
DISTRIBUTIONS = ("auto", "generic", "kind", "k3s", "k8s", "kubeadm", "microk8s", "minikube", "openshift",
                 "rancher_rke", "aks", "eks", "gke", "capz", "aks_hci", "aks_edge_k3s", "aks_edge_k8s", "tkg")
INFRASTRUCTURES = ("auto", "generic", "azure", "aws", "gcp", "azure_stack_hci", "azure_stack_hub",
                   "azure_stack_edge", "vsphere", "windows_server")


class ArcError(ArcwiError):
    """An onboarding that cannot proceed (another owner, a cluster Arc cannot run on, ...)."""


def validate_cluster_name(name: str, field: str = "name") -> None:
    if not name or not CLUSTER_NAME.match(name):
        raise ArcError(f"{field} '{name}' is invalid: a connected cluster name is 1-63 characters without "
                       "whitespace or any of < > % & : \\ ? / # *")


def agent_key_pair(key_size: int = 4096) -> tuple[str, str]:
    """(agentPublicKeyCertificate, private key PEM): what connectedk8s generates. The PEM is a secret."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return base64.b64encode(public).decode(), private.decode()


def detect_distribution(nodes: list, version: dict) -> str:
    """connectedk8s' detection, reduced to what the node objects and /version say."""
    provider_ids = [((n.get("spec") or {}).get("providerID") or "") for n in nodes]
    labels = [((n.get("metadata") or {}).get("labels") or {}) for n in nodes]
    git_version = (version or {}).get("gitVersion", "")
    if any(p.startswith("kind://") for p in provider_ids):
        return "kind"
    if "+k3s" in git_version or any(lab.get("node.kubernetes.io/instance-type") == "k3s" for lab in labels):
        return "k3s"
    if any("microk8s" in lab.get("kubernetes.io/hostname", "") or "microk8s.io/cluster" in lab for lab in labels):
        return "microk8s"
    if any(lab.get("minikube.k8s.io/name") for lab in labels):
        return "minikube"
    if any(p.startswith("aws://") for p in provider_ids):
        return "eks"
    if any(p.startswith("gce://") for p in provider_ids):
        return "gke"
    if any(p.startswith("azure://") for p in provider_ids):
        return "aks" if any(lab.get("kubernetes.azure.com/cluster") for lab in labels) else "capz"
    return "generic"


def detect_infrastructure(nodes: list) -> str:
    provider_ids = [((n.get("spec") or {}).get("providerID") or "") for n in nodes]
    for prefix, infra in (("azure://", "azure"), ("aws://", "aws"), ("gce://", "gcp"), ("vsphere://", "vsphere")):
        if any(p.startswith(prefix) for p in provider_ids):
            return infra
    return "generic"


def node_problems(nodes: list) -> list:
    """Arc's agents need a linux/amd64 node."""
    if not nodes:
        return ["the cluster has no node"]
    for node in nodes:
        info = (node.get("status") or {}).get("nodeInfo") or {}
        labels = (node.get("metadata") or {}).get("labels") or {}
        arch = info.get("architecture") or labels.get("kubernetes.io/arch")
        os_name = info.get("operatingSystem") or labels.get("kubernetes.io/os")
        if arch == "amd64" and os_name == "linux":
            return []
    return ["no linux/amd64 node: Azure Arc's agents run on linux/amd64 only (nodes: "
            + ", ".join(f"{(n.get('metadata') or {}).get('name')}="
                        f"{((n.get('status') or {}).get('nodeInfo') or {}).get('operatingSystem')}/"
                        f"{((n.get('status') or {}).get('nodeInfo') or {}).get('architecture')}" for n in nodes) + ")"]


def chart_reference(repository_path: str) -> tuple[str, str]:
    """``repositoryPath`` (``host/path/azure-arc-k8sagents:1.2.3``) -> (``oci://host/path/azure-arc-k8sagents``,
    version), as helm 3.8+ installs OCI charts."""
    path = repository_path.strip()
    if "://" in path:
        path = path.split("://", 1)[1]
    name, sep, version = path.rpartition(":")
    if not sep or "/" in version or not name:
        raise ArcError(f"the chart location {repository_path!r} has no version tag (expected REGISTRY/PATH:VERSION)")
    return "oci://" + name, version


def helm_values(subscription_id: str, resource_group: str, name: str, location: str, tenant_id: str,
                distribution: str, infrastructure: str, private_key_pem: str, cloud_name: str) -> dict:
    """The values connectedk8s passes with --set, as a values document (written to a 0600 file)."""
    return {
        "global": {
            "subscriptionId": subscription_id, "kubernetesDistro": distribution, "kubernetesInfra": infrastructure,
            "resourceGroupName": resource_group, "resourceName": name, "location": location, "tenantId": tenant_id,
            "onboardingPrivateKey": private_key_pem, "azureEnvironment": cloud_name,
        },
        "systemDefaultValues": {"spnOnboarding": False, "clusterconnect-agent": {"enabled": True}},
    }


def arm_cloud_name(cloud_name: str) -> str:
    """connectedk8s' global.azureEnvironment: AZUREPUBLICCLOUD, AZUREUSGOVERNMENTCLOUD, ... (custom: as given)."""
    return {"AzureCloud": "AZUREPUBLICCLOUD", "AzureUSGovernment": "AZUREUSGOVERNMENTCLOUD",
            "AzureChinaCloud": "AZURECHINACLOUD"}.get(cloud_name, (cloud_name or "AZUREPUBLICCLOUD").upper())


def default_dataplane_endpoint(location: str, login_endpoint: str) -> str:
    """connectedk8s get_config_dp_endpoint: https://{location}.dp.kubernetesconfiguration.azure.{suffix}, the
    suffix taken from the cloud's login host (login.microsoftonline.com -> com, .us, .cn)."""
    host = re.sub(r"^https?://", "", login_endpoint).split("/")[0]
    parts = host.split(".")
    suffix = parts[2] if len(parts) > 2 else "com"
    return f"https://{location.lower().replace(' ', '')}.dp.kubernetesconfiguration.azure.{suffix}/"


def _g(obj, *path, default=None):
    for key in path:
        if obj is None:
            return default
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return default if obj is None else obj


def normalise_connected_cluster(cc) -> dict | None:
    """The connected cluster as the module returns it (the SDK model or its REST dict)."""
    if cc is None:
        return None
    if not isinstance(cc, dict) and hasattr(cc, "as_dict"):
        cc = cc.as_dict()
    props = cc.get("properties") or cc  # REST shape, or the flattened SDK shape
    return {
        "id": cc.get("id"), "name": cc.get("name"), "location": cc.get("location"),
        "tags": dict(cc.get("tags") or {}),
        "principal_id": _g(cc, "identity", "principal_id") or _g(cc, "identity", "principalId"),
        "provisioning_state": props.get("provisioning_state") or props.get("provisioningState"),
        "connectivity_status": props.get("connectivity_status") or props.get("connectivityStatus"),
        "kubernetes_version": props.get("kubernetes_version") or props.get("kubernetesVersion"),
        "total_node_count": props.get("total_node_count") or props.get("totalNodeCount"),
        "agent_version": props.get("agent_version") or props.get("agentVersion"),
        "distribution": props.get("distribution"),
        "infrastructure": props.get("infrastructure"),
        "oidc_issuer_enabled": bool(_g(props, "oidc_issuer_profile", "enabled")
                                    or _g(props, "oidcIssuerProfile", "enabled")),
        "oidc_issuer_url": _g(props, "oidc_issuer_profile", "issuer_url") or _g(props, "oidcIssuerProfile", "issuerUrl"),
        "workload_identity_enabled": bool(_g(props, "security_profile", "workload_identity", "enabled")
                                          or _g(props, "securityProfile", "workloadIdentity", "enabled")),
    }
