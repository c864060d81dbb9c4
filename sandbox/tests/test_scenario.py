"""The acceptance scenario of issue 2, scripted with the real SDKs only.

A workload identity federation from end to end, as a self-managed issuer (kube-apiserver + `azwi jwks`)
would run it against Azure: a user-assigned identity; an OIDC issuer published as a public blob container
of a storage account created through ARM (discovery document and JWKS for a freshly generated RSA key,
uploaded with azure-storage-blob and the account key from listKeys); a federated identity credential for
that issuer; an assertion minted with the key and exchanged by azure-identity's ClientAssertionCredential
for an ARM token; a Reader on the subscription that can list resource groups and is refused a PUT; then
Entra's answers to a wrong subject (AADSTS700213), issuer (AADSTS700211) and audience (AADSTS700212).

Nothing here is faked: the Entra emulator fetches the discovery document and the JWKS from Azurite over
HTTPS (the key exists nowhere else), exactly as Entra fetches them from a real storage account.

Sources: issue 2 "Acceptance"; AZURE_FACTS.md; learn.microsoft.com entra/workload-id/workload-identity-
federation (FIC matching on issuer, subject, audience); azure-workload-identity docs "self-managed
clusters" (issuer = `{blob endpoint}{container}/`, documents at `.well-known/openid-configuration` and
`openid/v1/jwks`, kid = base64url(sha256(DER SubjectPublicKeyInfo)), container public access `blob`);
OpenID Connect Discovery 1.0 section 4 (the trailing slash of the issuer is removed before appending
`/.well-known/openid-configuration`). The AADSTS texts are quoted with their sources in
sandbox/server/entra.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientAssertionCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.msi.models import FederatedIdentityCredential, Identity
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import (BlobContainer, ContainerProperties, Sku, StorageAccountCreateParameters,
                                       StorageAccountPropertiesCreateParameters)
from azure.storage.blob import BlobServiceClient, ContentSettings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

LOCATION = "westeurope"
CONTAINER = "oidc"
SUBJECT = "system:serviceaccount:demo:workload"
AUDIENCE = "api://AzureADTokenExchange"
DISCOVERY_BLOB = ".well-known/openid-configuration"
JWKS_BLOB = "openid/v1/jwks"
FIC_PROPAGATION_TIMEOUT = 30.0
AADSTS70021 = "AADSTS70021:"  # the FIC exists but Entra does not know of it yet (fic_propagation_seconds)


# ---- the issuer's side: key, documents, assertion ---------------------------------------------------------
def kid_of(public_key) -> str:
    """The kid kube-apiserver and `azwi jwks` give a key: base64url-nopad(sha256(DER SubjectPublicKeyInfo))."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def discovery_document(issuer: str) -> dict:
    """The discovery document of a self-managed cluster (what `azwi` and kube-apiserver publish)."""
    return {"issuer": issuer, "jwks_uri": f"{issuer}{JWKS_BLOB}", "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}


def jwks_document(public_key) -> dict:
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    jwk.update({"use": "sig", "alg": "RS256", "kid": kid_of(public_key)})
    return {"keys": [jwk]}


def mint(key, issuer: str, subject: str = SUBJECT, audience: str = AUDIENCE, lifetime: int = 3600) -> str:
    """A service account token as a projected volume carries it (iss, sub, aud, exp, nbf, iat)."""
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "aud": [audience], "exp": now + lifetime, "nbf": now, "iat": now}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid_of(key.public_key())})


# ---- helpers ----------------------------------------------------------------------------------------------
class Steps:
    """Wall-clock time of each step, printed at the end (run pytest with -s or -rP to see it)."""

    def __init__(self):
        self.started = self.last = time.perf_counter()
        self.times: list[tuple[str, float]] = []

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.times.append((name, now - self.last))
        self.last = now

    def report(self) -> str:
        lines = [f"  {name:<64} {seconds:6.2f}s" for name, seconds in self.times]
        return "\n".join(["scenario timings:", *lines,
                          f"  {'total':<64} {time.perf_counter() - self.started:6.2f}s"])


def assertion_credential(sandbox, client_id: str, assertion) -> ClientAssertionCredential:
    return ClientAssertionCredential(sandbox.tenant_id, client_id, assertion, authority=sandbox.authority,
                                     disable_instance_discovery=True)


def first_token(sandbox, credential, timeout: float = FIC_PROPAGATION_TIMEOUT):
    """The ARM token, once Entra knows of the new FIC: it answers AADSTS70021 until the FIC has propagated
    (learn.microsoft.com workload-identity-federation-considerations), so poll; any other error fails."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            return credential.get_token(sandbox.arm_scope), attempts
        except ClientAuthenticationError as exc:
            if AADSTS70021 not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.25)


def refused(sandbox, client_id: str, assertion: str) -> str:
    """The message of the ClientAuthenticationError azure-identity raises for this assertion."""
    credential = assertion_credential(sandbox, client_id, lambda: assertion)
    with pytest.raises(ClientAuthenticationError) as err:
        credential.get_token(sandbox.arm_scope)
    return str(err.value)


# ---- the scenario -----------------------------------------------------------------------------------------
def test_workload_identity_federation_end_to_end(sandbox, resource_group, unique):
    steps = Steps()
    msi = sandbox.client(ManagedServiceIdentityClient)
    storage = sandbox.client(StorageManagementClient)
    authorization = sandbox.client(AuthorizationManagementClient)

    # 1. a resource group (the fixture made it, as the operator) and a user-assigned identity
    identity = msi.user_assigned_identities.create_or_update(resource_group, f"id-scenario-{unique}",
                                                             Identity(location=LOCATION))
    assert identity.client_id and identity.principal_id and identity.tenant_id == sandbox.tenant_id
    steps.done("1. identity")

    # 2. a fresh RSA key, published as an OIDC issuer in a public container of a storage account made via ARM
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account_name = f"stscen{unique}"
    account = storage.storage_accounts.begin_create(resource_group, account_name, StorageAccountCreateParameters(
        location=LOCATION, kind="StorageV2", sku=Sku(name="Standard_LRS"),
        properties=StorageAccountPropertiesCreateParameters(allow_blob_public_access=True,
                                                            enable_https_traffic_only=True,
                                                            minimum_tls_version="TLS1_2"))).result()
    assert account.provisioning_state == "Succeeded"
    assert account.allow_blob_public_access is True and account.minimum_tls_version == "TLS1_2"
    assert account.enable_https_traffic_only is True
    blob_endpoint = account.primary_endpoints.blob
    assert blob_endpoint.startswith("https://") and blob_endpoint.endswith("/")
    steps.done("2a. storage account (LRO)")

    container = storage.blob_containers.create(resource_group, account_name, CONTAINER, BlobContainer(
        container_properties=ContainerProperties(public_access="Blob")))
    assert container.public_access == "Blob"
    account_key = storage.storage_accounts.list_keys(resource_group, account_name).keys_property[0].value
    steps.done("2b. container (public access Blob) + listKeys")

    issuer = f"{blob_endpoint}{CONTAINER}/"
    documents = {DISCOVERY_BLOB: discovery_document(issuer), JWKS_BLOB: jwks_document(key.public_key())}
    blobs = BlobServiceClient(blob_endpoint, credential=account_key).get_container_client(CONTAINER)
    for name, document in documents.items():
        blobs.upload_blob(name, json.dumps(document).encode(), overwrite=True,
                          content_settings=ContentSettings(content_type="application/json"))
    steps.done("2c. upload discovery document + JWKS")

    for name, document in documents.items():  # anonymous, as Entra reads them: no credential, only the CA
        resp = requests.get(f"{issuer}{name}", verify=sandbox.bundle, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json() == document
    assert documents[DISCOVERY_BLOB]["jwks_uri"] == f"{issuer}{JWKS_BLOB}"
    steps.done("2d. anonymous HTTPS GET of both documents")

    # 3. a federated identity credential for the issuer (trailing slash included, as the token carries it)
    fic = msi.federated_identity_credentials.create_or_update(
        resource_group, identity.name, f"fic-scenario-{unique}",
        FederatedIdentityCredential(issuer=issuer, subject=SUBJECT, audiences=[AUDIENCE]))
    assert (fic.issuer, fic.subject, fic.audiences) == (issuer, SUBJECT, [AUDIENCE])
    steps.done("3. federated identity credential")

    # 4. an assertion signed with the key, exchanged for an ARM token by azure-identity
    credential = assertion_credential(sandbox, identity.client_id, lambda: mint(key, issuer))
    token, attempts = first_token(sandbox, credential)
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert (claims["oid"], claims["appid"], claims["tid"]) == (identity.principal_id, identity.client_id,
                                                               sandbox.tenant_id)
    assert claims["aud"] == sandbox.arm_scope[: -len(".default")]
    assert token.expires_on > time.time() + 600
    steps.done(f"4. assertion -> ARM token ({attempts} attempt(s), FIC propagation)")

    # 5a. Reader on the subscription for the identity, assigned by the operator (principalType spares the
    # Entra replication delay, PrincipalNotFound). ARM evaluates role assignments per request, not from the
    # token: the token obtained before the assignment is refused before it and honoured after it.
    arm = sandbox.client(ResourceManagementClient, credential=credential)
    with pytest.raises(HttpResponseError) as err:
        list(arm.resource_groups.list())
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    reader = next(iter(authorization.role_definitions.list(sandbox.sub_scope, filter="roleName eq 'Reader'")))
    assignment = authorization.role_assignments.create(sandbox.sub_scope, str(uuid.uuid4()),
                                                       RoleAssignmentCreateParameters(
                                                           role_definition_id=reader.id,
                                                           principal_id=identity.principal_id,
                                                           principal_type="ServicePrincipal"))
    assert assignment.principal_id == identity.principal_id and assignment.scope == sandbox.sub_scope
    steps.done("5a. Reader assignment on the subscription")

    # 5b. the token reads ARM (Reader) ...
    assert resource_group in [group.name for group in arm.resource_groups.list()]
    # ... and is refused a write, with ARM's 403
    denied = f"rg-denied-{unique}"
    with pytest.raises(HttpResponseError) as err:
        arm.resource_groups.create_or_update(denied, {"location": LOCATION})
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    # ARM's text (Azure/azure-cli issues 30789, 32165). Azure prints the action in lower case
    # ('.../resourcegroups/write'); actions compare case-insensitively, so the comparison does too.
    assert err.value.error.message.lower() == (
        f"The client '{identity.principal_id}' with object id '{identity.principal_id}' does not have "
        "authorization to perform action 'Microsoft.Resources/subscriptions/resourcegroups/write' over scope "
        f"'{sandbox.sub_scope}/resourcegroups/{denied}' or the scope is invalid. If access was recently "
        "granted, please refresh your credentials.").lower()
    assert denied not in [group.name for group in arm.resource_groups.list()]
    steps.done("5b. list resource groups (ok) + PUT (403)")

    # 6. what Entra answers when the assertion does not match the FIC
    prefix = "No matching federated identity record found for presented assertion"
    wrong_subject = "system:serviceaccount:demo:intruder"
    message = refused(sandbox, identity.client_id, mint(key, issuer, subject=wrong_subject))
    assert f"AADSTS700213: {prefix} subject '{wrong_subject}'." in message, message

    for wrong_issuer in (f"{blob_endpoint}other-{CONTAINER}/",  # another issuer altogether
                         issuer.rstrip("/")):  # the same one without its trailing slash: not the FIC's issuer
        message = refused(sandbox, identity.client_id, mint(key, wrong_issuer))
        assert f"AADSTS700211: {prefix} issuer '{wrong_issuer}'." in message, message

    wrong_audience = "api://SomethingElse"
    message = refused(sandbox, identity.client_id, mint(key, issuer, audience=wrong_audience))
    assert f"AADSTS700212: {prefix} audience '{wrong_audience}'." in message, message

    # the right assertion still works after all that (nothing was cached or locked by the refusals)
    fresh = assertion_credential(sandbox, identity.client_id, lambda: mint(key, issuer))
    assert fresh.get_token(sandbox.arm_scope).token
    steps.done("6. wrong subject / issuer (x2) / audience refused")
    print("\n" + steps.report())
