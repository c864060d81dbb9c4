"""Azure Arc: Microsoft.Kubernetes/connectedClusters in the ARM emulator, the Arc data plane and registry,
the fixture agent chart, and the agent loop that reports for a stand-in cluster.

Sources (each test names the one it pins):
- spec: azure-rest-api-specs specification/hybridkubernetes/resource-manager/Microsoft.Kubernetes/
  HybridKubernetes (readme.md tags = the api-versions; stable/2024-01-01/connectedClusters.json and its
  CreateClusterExample; the TypeSpec ConnectedCluster.tsp / models.tsp for 2024-12-01-preview..2026-05-01).
- az: azure-cli-extensions src/connectedk8s (custom.py get_public_key / generate_request_payload /
  get_config_dp_endpoint; _utils.py get_helm_registry, pull_helm_chart, helm_install_release).
- docs: learn.microsoft.com/azure/azure-arc/kubernetes/conceptual-connectivity-modes (connectivity
  status), .../workload-identity (Arc-hosted issuer), AZURE_FACTS.md "Azure Arc".
- OCI distribution-spec (registry API) and helm.sh/docs/topics/registries (chart media types).
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import urllib.error
import uuid

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.hybridkubernetes import ConnectedKubernetesClient
from azure.mgmt.resource.resources import ResourceManagementClient
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .conftest import REPO, binary_paths, needs_binaries

API = "2026-05-01"        # azure-mgmt-hybridkubernetes 2.0.0's default
OLD_API = "2024-01-01"    # stable, without oidcIssuerProfile / securityProfile
NS = "Microsoft.Kubernetes"
CHART_VERSION = "1.24.4"
KIND = str(REPO / "sandbox" / "bin" / "kind")


# ---- helpers ----------------------------------------------------------------------------------------
class AgentKey:
    """An onboarding key pair as az connectedk8s makes it (custom.py: RSA, public half as PKCS#1 DER base64)."""

    def __init__(self, bits: int = 2048):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        self.public_b64 = base64.b64encode(self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1)).decode()
        self.pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()).decode()

    def sign(self, payload: str) -> str:
        return base64.b64encode(self.key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture(scope="module")
def agent_key() -> AgentKey:
    return AgentKey()


def body(key: AgentKey, **props) -> dict:
    """The PUT body az connectedk8s sends (custom.py generate_request_payload)."""
    return {"location": "westeurope", "identity": {"type": "SystemAssigned"}, "tags": {},
            "properties": {"agentPublicKeyCertificate": key.public_b64, "distribution": "kind",
                           "infrastructure": "generic", **props}}


def cc_path(sandbox, rg: str, name: str) -> str:
    return f"{sandbox.sub_scope}/resourceGroups/{rg}/providers/{NS}/connectedClusters/{name}"


def wait_registered(client, namespace: str) -> None:
    deadline = time.monotonic() + 15
    while client.providers.get(namespace).registration_state != "Registered":
        assert time.monotonic() < deadline, f"{namespace} did not become Registered"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def registered(sandbox):
    client = sandbox.client(ResourceManagementClient)
    client.providers.register(NS)
    wait_registered(client, NS)


@pytest.fixture
def arc(sandbox, registered):
    return sandbox.client(ConnectedKubernetesClient)


def wait_succeeded(sandbox, path: str, api: str = API, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = sandbox.raw("GET", path, api_version=api).json()
        if got["properties"]["provisioningState"] == "Succeeded":
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.2)


def report(sandbox, key: AgentKey, rid: str, **fields):
    """A heartbeat as sandbox/kind/arc_agent.py sends it (admin API; signed with the onboarding key)."""
    payload = json.dumps({"resourceId": rid, "timestamp": time.time(), "kubernetesVersion": "1.35.4",
                          "totalNodeCount": 1, "totalCoreCount": 4, "agentVersion": CHART_VERSION,
                          "jwks": {"keys": []}, **fields}, sort_keys=True)
    return sandbox.admin("POST", "/arc/agent-report", {"payload": payload, "signature": key.sign(payload)})


def dataplane(sandbox) -> str:
    return sandbox.env["ARCWI_ARC_DATAPLANE_ENDPOINT"]


def helm_ref(repository_path: str) -> tuple[str, str]:
    """repositoryPath -> (oci:// chart reference, version): split at the LAST colon (the registry host has a
    port), then az's current layout: dirname + "/v2/" + basename (_utils.pull_helm_chart)."""
    path, _, version = repository_path.rpartition(":")
    head, _, chart = path.rpartition("/")
    return f"oci://{head}/v2/{chart}", version


# ---- ARM: api-versions, provider, validation ------------------------------------------------------
def test_exactly_the_published_api_versions(sandbox, registered, resource_group):
    # Source: spec readme.md tags: stable 2021-03-01, 2021-10-01, 2024-01-01, 2026-05-01 and the previews
    path = f"{sandbox.sub_scope}/resourceGroups/{resource_group}/providers/{NS}/connectedClusters"
    published = ["2020-01-01-preview", "2021-03-01", "2021-04-01-preview", "2021-10-01", "2022-05-01-preview",
                 "2022-10-01-preview", "2023-11-01-preview", "2024-01-01", "2024-02-01-preview",
                 "2024-06-01-preview", "2024-07-01-preview", "2024-07-15-preview", "2024-12-01-preview",
                 "2025-08-01-preview", "2025-12-01-preview", "2026-02-01-preview", "2026-05-01"]
    for version in published:
        assert sandbox.raw("GET", path, api_version=version).status_code == 200, version
    for version in ("2019-11-01-preview", "2020-02-01", "2025-01-01", "2026-05-01-preview"):
        resp = sandbox.raw("GET", path, api_version=version)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "NoRegisteredProviderFound", version
    types = sandbox.client(ResourceManagementClient).providers.get(NS).resource_types
    assert sorted(next(t for t in types if t.resource_type == "connectedClusters").api_versions) == sorted(published)


def test_provider_not_registered_is_refused(sandbox, agent_key, resource_group, unique):
    # Source: ARM MissingSubscriptionRegistration (409) for a namespace the subscription has not registered;
    # az connectedk8s checks the Microsoft.Kubernetes registration before connecting (AZURE_FACTS.md)
    client = sandbox.client(ResourceManagementClient)
    client.providers.unregister(NS)
    try:
        resp = sandbox.raw("PUT", cc_path(sandbox, resource_group, f"cc-{unique}"), body(agent_key), api_version=API)
        assert resp.status_code == 409
        error = resp.json()["error"]
        assert error["code"] == "MissingSubscriptionRegistration"
        assert "The subscription is not registered to use namespace 'Microsoft.Kubernetes'" in error["message"]
    finally:
        client.providers.register(NS)
        wait_registered(client, NS)
    assert sandbox.raw("GET", cc_path(sandbox, resource_group, f"cc-{unique}"), api_version=API).status_code == 404


def _ec_spki() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.mark.parametrize("case, mutate, code", [
    # Source: ARM LocationRequired for tracked resources
    ("no location", lambda b: b.pop("location"), "LocationRequired"),
    ("unknown location", lambda b: b.update(location="moon"), "LocationNotAvailableForResourceType"),
    # Source: spec: ConnectedCluster requires identity and properties; properties requires agentPublicKeyCertificate
    ("no identity", lambda b: b.pop("identity"), "InvalidRequestContent"),
    ("no properties", lambda b: b.pop("properties"), "InvalidRequestContent"),
    ("no public key", lambda b: b["properties"].pop("agentPublicKeyCertificate"), "InvalidRequestContent"),
    # Source: az connectedk8s always sends identity.type SystemAssigned (custom.py generate_request_payload)
    ("identity None", lambda b: b["identity"].update(type="None"), "BadRequest"),
    ("identity UserAssigned", lambda b: b["identity"].update(type="UserAssigned"), "BadRequest"),
    # Source: az sends base64(DER RSAPublicKey) (custom.py get_public_key)
    ("key not base64", lambda b: b["properties"].update(agentPublicKeyCertificate="not base64!"), "BadRequest"),
    ("key not DER", lambda b: b["properties"].update(
        agentPublicKeyCertificate=base64.b64encode(b"hello").decode()), "BadRequest"),
    ("key not RSA", lambda b: b["properties"].update(agentPublicKeyCertificate=_ec_spki()), "BadRequest"),
    # Source: spec enum AzureHybridBenefit True/False/NotApplicable
    ("hybrid benefit", lambda b: b["properties"].update(azureHybridBenefit="Maybe"), "BadRequest"),
])
def test_create_validation(sandbox, registered, agent_key, resource_group, unique, case, mutate, code):
    payload = body(agent_key)
    mutate(payload)
    path = cc_path(sandbox, resource_group, f"cc-{unique}")
    resp = sandbox.raw("PUT", path, payload, api_version=API)
    assert resp.status_code == 400, (case, resp.text)
    assert resp.json()["error"]["code"] == code, (case, resp.text)
    assert sandbox.raw("GET", path, api_version=API).status_code == 404


def test_create_in_missing_group_and_bad_name(sandbox, registered, agent_key, resource_group, unique):
    # Source: ARM ResourceGroupNotFound; ARM refuses '&', '%', ... in any resource name (the Arc spec sets none)
    resp = sandbox.raw("PUT", cc_path(sandbox, f"rg-missing-{unique}", "cc"), body(agent_key), api_version=API)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "ResourceGroupNotFound"
    resp = sandbox.raw("PUT", cc_path(sandbox, resource_group, "bad&name"), body(agent_key), api_version=API)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "InvalidResourceName"
    # a SubjectPublicKeyInfo RSA key is accepted too (not what az sends, see the module docstring of arc.py)
    spki = base64.b64encode(agent_key.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    resp = sandbox.raw("PUT", cc_path(sandbox, resource_group, f"cc-spki-{unique}"),
                       body(agent_key, agentPublicKeyCertificate=spki), api_version=API)
    assert resp.status_code == 201, resp.text


# ---- ARM: LRO create, replace, PATCH, list, delete ----------------------------------------------
def test_create_is_long_running_with_azure_async_operation(sandbox, registered, agent_key, resource_group, unique):
    # Source: spec (PUT x-ms-long-running-operation, final-state-via azure-async-operation; 201 carries
    # Azure-AsyncOperation + Retry-After; CreateClusterExample 201 provisioningState "Accepted")
    name = f"cc-{unique}"
    path = cc_path(sandbox, resource_group, name)
    with sandbox.settings(arc_provisioning_seconds=2.0):
        resp = sandbox.raw("PUT", path, body(agent_key), api_version=API)
        assert resp.status_code == 201, resp.text
        created = resp.json()
        assert created["properties"]["provisioningState"] == "Accepted"
        assert created["properties"]["connectivityStatus"] == "Connecting"
        assert created["type"] == "Microsoft.Kubernetes/connectedClusters" and created["name"] == name
        assert created["identity"]["type"] == "SystemAssigned"
        assert created["identity"]["tenantId"] == sandbox.tenant_id
        assert uuid.UUID(created["identity"]["principalId"])
        operation = resp.headers["Azure-AsyncOperation"]
        assert re.match(rf"^{re.escape(sandbox.arm_url.rstrip('/'))}{sandbox.sub_scope}/providers/Microsoft\.Kubernetes/"
                        r"locations/westeurope/operationStatuses/[0-9a-f-]{36}\?api-version=" + API + "$", operation)
        assert int(resp.headers["Retry-After"]) >= 1
        token = sandbox.token()
        status = requests.get(operation, headers={"Authorization": f"Bearer {token}"}, verify=sandbox.bundle).json()
        assert status["status"] == "InProgress"
        states = []
        deadline = time.monotonic() + 10
        while status["status"] == "InProgress":
            assert time.monotonic() < deadline
            states.append(sandbox.raw("GET", path, api_version=API).json()["properties"]["provisioningState"])
            time.sleep(0.2)
            status = requests.get(operation, headers={"Authorization": f"Bearer {token}"},
                                  verify=sandbox.bundle).json()
    assert status["status"] == "Succeeded" and status["resourceId"] == path
    # Accepted, then Provisioning, then (possibly seen just before the status turns) Succeeded - never backwards
    order = ["Accepted", "Provisioning", "Succeeded"]
    assert states[0] == "Accepted" and "Provisioning" in states
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states), states
    assert wait_succeeded(sandbox, path)["properties"]["connectivityStatus"] == "Connecting"


def test_sdk_create_replace_patch_list_delete(sandbox, arc, agent_key, resource_group, unique):
    # Source: spec operations (create-or-replace LRO, PATCH with ConnectedClusterPatch, list by group and
    # subscription, delete LRO 200/202/204), driven with azure-mgmt-hybridkubernetes 2.0.0 (api 2026-05-01)
    name = f"cc-{unique}"
    cluster = arc.connected_cluster.begin_create_or_replace(resource_group, name, body(agent_key)).result()
    assert cluster.properties.provisioning_state == "Succeeded"
    assert cluster.properties.agent_public_key_certificate == agent_key.public_b64
    assert cluster.properties.distribution == "kind" and cluster.properties.infrastructure == "generic"
    assert cluster.properties.connectivity_status == "Connecting"
    principal = cluster.identity.principal_id
    # a replacing PUT keeps the identity
    again = arc.connected_cluster.begin_create_or_replace(resource_group, name, body(agent_key, distribution="k3s"))
    again = again.result()
    assert again.identity.principal_id == principal and again.properties.distribution == "k3s"
    patched = arc.connected_cluster.begin_update_async(
        resource_group, name, {"tags": {"env": "sandbox"}, "properties": {"distributionVersion": "1.0",
                                                                         "azureHybridBenefit": "False"}}).result()
    assert patched.tags == {"env": "sandbox"}
    assert patched.properties.distribution_version == "1.0" and patched.properties.azure_hybrid_benefit == "False"
    assert name in [c.name for c in arc.connected_cluster.list_by_resource_group(resource_group)]
    assert name in [c.name for c in arc.connected_cluster.list_by_subscription()]
    arc.connected_cluster.begin_delete(resource_group, name).result()
    with pytest.raises(ResourceNotFoundError):
        arc.connected_cluster.get(resource_group, name)


def test_patch_changes_only_what_the_patch_model_has(sandbox, registered, agent_key, resource_group, unique):
    # Source: spec ConnectedClusterPatch = tags + properties.{distribution, distributionVersion,
    # azureHybridBenefit} (+ gateway from 2025-12-01-preview); oidcIssuerProfile is not patchable in any version
    path = cc_path(sandbox, resource_group, f"cc-{unique}")
    assert sandbox.raw("PUT", path, body(agent_key), api_version=API).status_code == 201
    wait_succeeded(sandbox, path)
    resp = sandbox.raw("PATCH", path, {"tags": {"a": "b"}, "properties": {
        "distribution": "k3s", "oidcIssuerProfile": {"enabled": True}, "kubernetesVersion": "9.9.9"}},
        api_version=API)
    assert resp.status_code == 200, resp.text
    props = resp.json()["properties"]
    assert resp.json()["tags"] == {"a": "b"} and props["distribution"] == "k3s"
    assert props["oidcIssuerProfile"] == {"enabled": False} and "kubernetesVersion" not in props
    resp = sandbox.raw("PATCH", path, {"properties": {"azureHybridBenefit": "Maybe"}}, api_version=API)
    assert resp.status_code == 400


def test_delete_is_long_running(sandbox, registered, agent_key, resource_group, unique):
    # Source: spec DELETE x-ms-long-running-operation, final-state-via location; 200/202/204 ("204: The
    # resource was not found but the request is well formed")
    path = cc_path(sandbox, resource_group, f"cc-{unique}")
    created = sandbox.raw("PUT", path, body(agent_key), api_version=API).json()
    wait_succeeded(sandbox, path)
    with sandbox.settings(arc_delete_seconds=1.5):
        resp = sandbox.raw("DELETE", path, api_version=API)
        assert resp.status_code == 202
        location = resp.headers["Location"]
        assert "/providers/Microsoft.Kubernetes/locations/westeurope/operationResults/" in location
        assert "/operationStatuses/" in resp.headers["Azure-AsyncOperation"]
        assert sandbox.raw("GET", path, api_version=API).json()["properties"]["provisioningState"] == "Deleting"
        token = sandbox.token()
        result = requests.get(location, headers={"Authorization": f"Bearer {token}"}, verify=sandbox.bundle)
        assert result.status_code == 202 and result.headers["Location"]
        deadline = time.monotonic() + 10
        while result.status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.3)
            result = requests.get(location, headers={"Authorization": f"Bearer {token}"}, verify=sandbox.bundle)
    assert result.status_code == 204
    assert sandbox.raw("GET", path, api_version=API).status_code == 404
    assert sandbox.raw("DELETE", path, api_version=API).status_code == 204
    # the system-assigned identity's service principal went with it: no role can be assigned to it any more
    rid = f"{sandbox.sub_scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    resp = sandbox.raw("PUT", rid, {"properties": {
        "roleDefinitionId": f"{sandbox.sub_scope}/providers/Microsoft.Authorization/roleDefinitions/"
                            "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "principalId": created["identity"]["principalId"], "principalType": "ServicePrincipal"}},
        api_version="2022-04-01")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "PrincipalNotFound"


def test_reader_can_read_and_cannot_write(sandbox, registered, agent_key, resource_group, unique):
    # Source: built-in role Reader (*/read); ARM AuthorizationFailed; actions Microsoft.Kubernetes/connectedClusters/*
    path = cc_path(sandbox, resource_group, f"cc-{unique}")
    assert sandbox.raw("PUT", path, body(agent_key), api_version=API).status_code == 201
    reader = sandbox.principal(roles=[{"role": "Reader"}], name=f"reader-{unique}")
    credential = sandbox.credential(reader["client_id"], reader["secret"])
    assert sandbox.raw("GET", path, api_version=API, credential=credential).status_code == 200
    for method, payload in (("PUT", body(agent_key)), ("PATCH", {"tags": {}}), ("DELETE", None)):
        resp = sandbox.raw(method, path, payload, api_version=API, credential=credential)
        assert resp.status_code == 403, method
        action = {"PUT": "write", "PATCH": "write", "DELETE": "delete"}[method]
        assert f"'Microsoft.Kubernetes/connectedClusters/{action}'" in resp.json()["error"]["message"]


# ---- ARM: the Arc-hosted OIDC issuer -------------------------------------------------------------
def test_oidc_issuer_enable_url_and_cannot_be_disabled(sandbox, registered, agent_key, resource_group, unique):
    # Source: spec (oidcIssuerProfile {enabled, issuerUrl read-only, selfHostedIssuerUrl} and securityProfile
    # from 2024-06-01-preview; absent in 2024-01-01); real issuer URLs https://<geo>.oic.prod-arc.azure.com/
    # <tenant>/<uuid>/ (az connectedk8s show output); AZURE_FACTS.md: cannot be disabled once enabled
    path = cc_path(sandbox, resource_group, f"cc-{unique}")
    resp = sandbox.raw("PUT", path, body(agent_key, oidcIssuerProfile={"enabled": True},
                                         securityProfile={"workloadIdentity": {"enabled": True}}), api_version=API)
    assert resp.status_code == 201, resp.text
    props = resp.json()["properties"]
    issuer = props["oidcIssuerProfile"]["issuerUrl"]
    from sandbox import config
    assert re.fullmatch(rf"{re.escape(config.url('web'))}arc-oidc/{sandbox.tenant_id}/[0-9a-f-]{{36}}/", issuer), issuer
    assert props["securityProfile"] == {"workloadIdentity": {"enabled": True}}
    wait_succeeded(sandbox, path)
    # an api-version without the profiles does not show them, and a PUT with it does not drop them
    old = sandbox.raw("GET", path, api_version=OLD_API).json()["properties"]
    assert "oidcIssuerProfile" not in old and "securityProfile" not in old
    assert sandbox.raw("PUT", path, body(agent_key), api_version=OLD_API).status_code == 200
    wait_succeeded(sandbox, path)
    # omitting the profile keeps it (and the same URL); disabling is refused
    resp = sandbox.raw("PUT", path, body(agent_key), api_version=API)
    assert resp.status_code == 200 and resp.json()["properties"]["oidcIssuerProfile"]["issuerUrl"] == issuer
    assert resp.json()["properties"]["provisioningState"] == "Updating"
    wait_succeeded(sandbox, path)
    resp = sandbox.raw("PUT", path, body(agent_key, oidcIssuerProfile={"enabled": False}), api_version=API)
    assert resp.status_code == 400, resp.text
    assert "cannot be disabled" in resp.json()["error"]["message"]
    got = sandbox.raw("GET", path, api_version=API).json()["properties"]["oidcIssuerProfile"]
    assert got == {"enabled": True, "issuerUrl": issuer}
    # enabling later, on a cluster created without it, assigns an URL then
    later = cc_path(sandbox, resource_group, f"cc-later-{unique}")
    assert sandbox.raw("PUT", later, body(agent_key), api_version=API).json()["properties"]["oidcIssuerProfile"] == \
        {"enabled": False}
    wait_succeeded(sandbox, later)
    resp = sandbox.raw("PUT", later, body(agent_key, oidcIssuerProfile={"enabled": True}), api_version=API)
    assert resp.json()["properties"]["oidcIssuerProfile"]["issuerUrl"].endswith("/")


def test_heartbeat_issuer_documents_offline_and_expired(sandbox, registered, agent_key, resource_group, unique):
    # Source: connectivity status (Connecting until the first heartbeat; Connected; Offline after 15 min
    # without; Expired when the 90-day identity certificate lapsed - delete and connect again), durations
    # shortened by sandbox settings; the issuer serves discovery (issuer == issuerUrl) and the uploaded JWKS
    path = cc_path(sandbox, resource_group, f"cc-{unique}")
    issuer = sandbox.raw("PUT", path, body(agent_key, oidcIssuerProfile={"enabled": True}), api_version=API) \
        .json()["properties"]["oidcIssuerProfile"]["issuerUrl"]
    wait_succeeded(sandbox, path)
    # nothing is served before the agents have uploaded the keys
    assert requests.get(issuer + ".well-known/openid-configuration", verify=sandbox.bundle).status_code == 404
    # a heartbeat signed with another key is refused and changes nothing
    with pytest.raises(urllib.error.HTTPError) as err:
        report(sandbox, AgentKey(), path)
    assert err.value.code == 403
    assert sandbox.raw("GET", path, api_version=API).json()["properties"]["connectivityStatus"] == "Connecting"
    signer = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from .conftest import OidcIssuer
    jwks = {"keys": [OidcIssuer.jwk_of(signer.public_key())]}
    with sandbox.settings(arc_offline_after_seconds=1.5, arc_expired_after_seconds=3.0):
        answer = report(sandbox, agent_key, path, jwks=jwks, totalNodeCount=3, kubernetesVersion="1.35.4")
        assert answer["connectivityStatus"] == "Connected"
        props = sandbox.raw("GET", path, api_version=API).json()["properties"]
        assert props["connectivityStatus"] == "Connected" and props["totalNodeCount"] == 3
        assert props["kubernetesVersion"] == "1.35.4" and props["agentVersion"] == CHART_VERSION
        assert props["lastConnectivityTime"] == answer["lastConnectivityTime"]
        discovery = requests.get(issuer + ".well-known/openid-configuration", verify=sandbox.bundle).json()
        assert discovery["issuer"] == issuer and discovery["jwks_uri"] == issuer + "openid/v1/jwks"
        assert requests.get(discovery["jwks_uri"], verify=sandbox.bundle).json() == jwks
        time.sleep(1.7)
        assert sandbox.raw("GET", path, api_version=API).json()["properties"]["connectivityStatus"] == "Offline"
        report(sandbox, agent_key, path)  # back within the window: Connected again
        assert sandbox.raw("GET", path, api_version=API).json()["properties"]["connectivityStatus"] == "Connected"
        time.sleep(3.2)
        assert sandbox.raw("GET", path, api_version=API).json()["properties"]["connectivityStatus"] == "Expired"
        with pytest.raises(urllib.error.HTTPError) as err:
            report(sandbox, agent_key, path)
        assert err.value.code == 403
    # Expired is terminal, whatever the settings say afterwards
    assert sandbox.raw("GET", path, api_version=API).json()["properties"]["connectivityStatus"] == "Expired"
    # the issuer goes with the resource
    assert sandbox.raw("DELETE", path, api_version=API).status_code == 202
    deadline = time.monotonic() + 10
    while sandbox.raw("GET", path, api_version=API).status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert requests.get(issuer + "openid/v1/jwks", verify=sandbox.bundle).status_code == 404


def test_resource_group_delete_takes_the_cluster_and_its_issuer(sandbox, registered, agent_key, unique):
    # Source: ARM resource group delete removes the resources inside (and with them the system-assigned
    # identity and the Arc-hosted issuer of a connected cluster)
    rg = f"rg-arc-{unique}"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(rg, {"location": "westeurope"})
    path = cc_path(sandbox, rg, f"cc-{unique}")
    issuer = sandbox.raw("PUT", path, body(agent_key, oidcIssuerProfile={"enabled": True}), api_version=API) \
        .json()["properties"]["oidcIssuerProfile"]["issuerUrl"]
    wait_succeeded(sandbox, path)
    report(sandbox, agent_key, path, jwks={"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]})
    assert requests.get(issuer + "openid/v1/jwks", verify=sandbox.bundle).status_code == 200
    assert sandbox.raw("DELETE", f"{sandbox.sub_scope}/resourcegroups/{rg}", api_version="2025-04-01").status_code == 202
    assert requests.get(issuer + "openid/v1/jwks", verify=sandbox.bundle).status_code == 404
    assert requests.get(issuer + ".well-known/openid-configuration", verify=sandbox.bundle).status_code == 404
    assert sandbox.raw("GET", path, api_version=API).status_code == 404


# ---- the Arc data plane and the registry -----------------------------------------------------------
def test_dataplane_get_latest_helm_package_path(sandbox):
    # Source: az connectedk8s _utils.get_helm_registry: POST {dp}/azure-arc-k8sagents/GetLatestHelmPackagePath?
    # api-version=2019-11-01-preview&releaseTrain=stable with an ARM token; answer {"repositoryPath": ...}
    url = dataplane(sandbox) + "azure-arc-k8sagents/GetLatestHelmPackagePath"
    params = {"api-version": "2019-11-01-preview", "releaseTrain": "stable"}
    assert requests.post(url, params=params, verify=sandbox.bundle).status_code == 401
    assert requests.post(url, params=params, headers={"Authorization": "Bearer nope"},
                         verify=sandbox.bundle).status_code == 401
    auth = {"Authorization": f"Bearer {sandbox.token()}"}
    resp = requests.post(url, params=params, headers=auth, verify=sandbox.bundle)
    assert resp.status_code == 200
    host = dataplane(sandbox).split("://", 1)[1].rstrip("/")
    assert resp.json() == {"repositoryPath": f"{host}/azurearck8s/batch1/stable/azure-arc-k8sagents:{CHART_VERSION}"}
    assert requests.post(url, params={**params, "api-version": "2024-07-01-preview"}, headers=auth,
                         verify=sandbox.bundle).status_code == 400
    assert requests.post(url, params={**params, "releaseTrain": "nightly"}, headers=auth,
                         verify=sandbox.bundle).status_code == 400
    assert requests.get(url, params=params, headers=auth, verify=sandbox.bundle).status_code == 405
    # az finds the data plane in the cloud metadata (custom.py get_config_dp_endpoint: arcConfigEndpoint)
    clouds = requests.get(sandbox.arm_url + "metadata/endpoints", params={"api-version": "2022-09-01"},
                          verify=sandbox.bundle).json()
    assert clouds[0]["dataplaneEndpoints"]["arcConfigEndpoint"] + "/" == dataplane(sandbox)


def test_registry_serves_the_chart_as_helm_pushes_it(sandbox):
    # Source: OCI distribution-spec (GET /v2/, manifests, blobs, tags/list, error codes); helm registries doc
    # (config application/vnd.cncf.helm.config.v1+json, layer application/vnd.cncf.helm.chart.content.v1.tar+gzip)
    import hashlib
    base = dataplane(sandbox) + "v2/"
    assert requests.get(base, verify=sandbox.bundle).status_code == 200
    repo = "azurearck8s/batch1/stable/v2/azure-arc-k8sagents"
    manifest = requests.get(f"{base}{repo}/manifests/{CHART_VERSION}", verify=sandbox.bundle,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert manifest.status_code == 200
    assert manifest.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(manifest.content).hexdigest()
    doc = manifest.json()
    assert doc["config"]["mediaType"] == "application/vnd.cncf.helm.config.v1+json"
    assert [layer["mediaType"] for layer in doc["layers"]] == ["application/vnd.cncf.helm.chart.content.v1.tar+gzip"]
    for blob in [doc["config"], *doc["layers"]]:
        data = requests.get(f"{base}{repo}/blobs/{blob['digest']}", verify=sandbox.bundle).content
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"] and len(data) == blob["size"]
    config = requests.get(f"{base}{repo}/blobs/{doc['config']['digest']}", verify=sandbox.bundle).json()
    assert config["name"] == "azure-arc-k8sagents" and config["version"] == CHART_VERSION
    assert requests.get(f"{base}{repo}/tags/list", verify=sandbox.bundle).json()["tags"] == [CHART_VERSION]
    missing = requests.get(f"{base}{repo}/manifests/0.0.1", verify=sandbox.bundle)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    unknown = requests.get(f"{base}nope/manifests/{CHART_VERSION}", verify=sandbox.bundle)
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    push = requests.put(f"{base}{repo}/manifests/6.6.6", data=b"{}", verify=sandbox.bundle)
    assert push.status_code == 405 and push.json()["errors"][0]["code"] == "UNSUPPORTED"


def _helm_env(tmp_path, sandbox) -> dict:
    env = dict(os.environ)
    env.update(SSL_CERT_FILE=sandbox.bundle, HELM_CONFIG_HOME=str(tmp_path / "helm-config"),
               HELM_CACHE_HOME=str(tmp_path / "helm-cache"), HELM_DATA_HOME=str(tmp_path / "helm-data"))
    return env


@needs_binaries("helm")
def test_helm_pulls_the_chart_from_repository_path(sandbox, tmp_path):
    # Source: az connectedk8s _utils.pull_helm_chart: helm pull oci://<chart_url> --version <version>, with
    # chart_url the "/v2/" layout; helm trusts the sandbox CA through SSL_CERT_FILE (`sandbox env`)
    resp = requests.post(dataplane(sandbox) + "azure-arc-k8sagents/GetLatestHelmPackagePath",
                         params={"api-version": "2019-11-01-preview", "releaseTrain": "stable"},
                         headers={"Authorization": f"Bearer {sandbox.token()}"}, verify=sandbox.bundle)
    repository_path = resp.json()["repositoryPath"]
    helm = binary_paths()["helm"]
    for ref, version in (helm_ref(repository_path),
                         ("oci://" + repository_path.rpartition(":")[0], repository_path.rpartition(":")[2])):
        out = tmp_path / uuid.uuid4().hex
        run = subprocess.run([helm, "pull", ref, "--version", version, "--untar", "--untardir", str(out)],
                             capture_output=True, text=True, env=_helm_env(tmp_path, sandbox), timeout=60)
        assert run.returncode == 0, run.stderr
        assert f"version: {CHART_VERSION}" in (out / "azure-arc-k8sagents" / "Chart.yaml").read_text()


# ---- a stand-in cluster: helm install, the agents' heartbeat, the issuer ---------------------------
KIND_CONFIG = ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"
               "- role: control-plane\n  image: kindest/node:v1.35.4\n- role: worker\n  image: kindest/node:v1.35.4\n")


@pytest.fixture
def stand_in(tmp_path):
    name = "arc" + uuid.uuid4().hex[:6]
    cfg = tmp_path / "kind.yaml"
    cfg.write_text(KIND_CONFIG)
    kubeconfig = tmp_path / "kubeconfig"
    run = subprocess.run([KIND, "create", "cluster", "--name", name, "--config", str(cfg), "--kubeconfig",
                          str(kubeconfig), "--wait", "60s"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    yield {"name": name, "kubeconfig": str(kubeconfig)}
    subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
                   capture_output=True, timeout=120)


@needs_binaries("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl", "helm")
def test_connect_a_stand_in_cluster(sandbox, registered, stand_in, resource_group, unique, tmp_path):
    # Sources: az connectedk8s connect (PUT with the agent public key, chart location from the data plane,
    # `helm upgrade --install azure-arc` with the values of _utils.helm_install_release, the ConfigMap
    # azure-arc/azure-clusterconfig it reads back); connectivity status docs (Connected, Offline, Expired);
    # the Arc-hosted issuer serving the cluster's own keys (Arc workload identity docs)
    kubectl, helm = binary_paths()["kubectl"], binary_paths()["helm"]
    kubeconfig = stand_in["kubeconfig"]

    def k(*args) -> str:
        run = subprocess.run([kubectl, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    key = AgentKey(4096)  # as az connectedk8s generates it
    name = f"cc-{unique}"
    path = cc_path(sandbox, resource_group, name)
    created = sandbox.raw("PUT", path, body(key, oidcIssuerProfile={"enabled": True},
                                            securityProfile={"workloadIdentity": {"enabled": True}}), api_version=API)
    assert created.status_code == 201, created.text
    issuer = created.json()["properties"]["oidcIssuerProfile"]["issuerUrl"]
    wait_succeeded(sandbox, path)
    repository_path = requests.post(dataplane(sandbox) + "azure-arc-k8sagents/GetLatestHelmPackagePath",
                                    params={"api-version": "2019-11-01-preview", "releaseTrain": "stable"},
                                    headers={"Authorization": f"Bearer {sandbox.token()}"},
                                    verify=sandbox.bundle).json()["repositoryPath"]
    ref, version = helm_ref(repository_path)
    values = {"global.subscriptionId": sandbox.subscription_id, "global.resourceGroupName": resource_group,
              "global.resourceName": name, "global.location": "westeurope", "global.tenantId": sandbox.tenant_id,
              "global.onboardingPrivateKey": key.pem, "systemDefaultValues.spnOnboarding": "false",
              "global.azureEnvironment": "AZUREPUBLICCLOUD", "systemDefaultValues.clusterconnect-agent.enabled": "true",
              "global.kubernetesDistro": "kind", "global.kubernetesInfra": "generic"}
    command = [helm, "upgrade", "--install", "azure-arc", ref, "--version", version, "--namespace",
               "azure-arc-release", "--create-namespace", "--kubeconfig", kubeconfig, "--wait", "--timeout", "120s"]
    for item in values.items():
        command += ["--set", "%s=%s" % item]
    env = _helm_env(tmp_path, sandbox)
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stderr

    data = json.loads(k("get", "configmap", "azure-clusterconfig", "-n", "azure-arc", "-o", "json"))["data"]
    assert (data["AZURE_SUBSCRIPTION_ID"], data["AZURE_RESOURCE_GROUP"], data["AZURE_RESOURCE_NAME"],
            data["AZURE_REGION"], data["AZURE_TENANT_ID"], data["AZURE_ARC_AGENT_VERSION"]) == \
        (sandbox.subscription_id, resource_group, name, "westeurope", sandbox.tenant_id, CHART_VERSION)
    assert not any("PRIVATE KEY" in v for v in data.values())
    secret = json.loads(k("get", "secret", "azure-arc-connect-privatekey", "-n", "azure-arc", "-o", "json"))
    assert base64.b64decode(secret["data"]["privateKey"]).decode() == key.pem
    deployments = json.loads(k("get", "deployments", "-n", "azure-arc", "-o", "json"))["items"]
    assert {"clusterconnect-agent", "config-agent", "cluster-metadata-operator"} <= \
        {d["metadata"]["name"] for d in deployments}

    deadline = time.monotonic() + 90
    props = {}
    while time.monotonic() < deadline:
        props = sandbox.raw("GET", path, api_version=API).json()["properties"]
        if props["connectivityStatus"] == "Connected":
            break
        time.sleep(0.5)
    assert props["connectivityStatus"] == "Connected", props
    git_version = json.loads(k("get", "--raw", "/version"))["gitVersion"]
    assert props["kubernetesVersion"] == git_version.lstrip("v")
    assert props["totalNodeCount"] == len(json.loads(k("get", "nodes", "-o", "json"))["items"]) == 2
    assert props["agentVersion"] == CHART_VERSION and props["lastConnectivityTime"]
    # heartbeats keep coming
    first = props["lastConnectivityTime"]
    deadline = time.monotonic() + 20
    while sandbox.raw("GET", path, api_version=API).json()["properties"]["lastConnectivityTime"] == first:
        assert time.monotonic() < deadline, "no second heartbeat"
        time.sleep(0.5)

    # the Arc-hosted issuer publishes the cluster's own keys
    discovery = requests.get(issuer + ".well-known/openid-configuration", verify=sandbox.bundle).json()
    assert discovery["issuer"] == issuer
    served = requests.get(discovery["jwks_uri"], verify=sandbox.bundle).json()
    assert served == json.loads(k("get", "--raw", "/openid/v1/jwks")) and served["keys"]

    # the release goes: no more heartbeats, Offline then Expired by the clock
    with sandbox.settings(arc_offline_after_seconds=4.0, arc_expired_after_seconds=8.0):
        run = subprocess.run([helm, "uninstall", "azure-arc", "--namespace", "azure-arc-release", "--kubeconfig",
                              kubeconfig, "--wait"], capture_output=True, text=True, env=env, timeout=180)
        assert run.returncode == 0, run.stderr
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not seen or seen[-1] != "Expired"):
            status = sandbox.raw("GET", path, api_version=API).json()["properties"]["connectivityStatus"]
            if not seen or seen[-1] != status:
                seen.append(status)
            time.sleep(0.3)
    assert seen[-2:] == ["Offline", "Expired"], seen
