"""The Entra emulator driven by the real SDKs (azure-identity, azure-mgmt-*): client secrets and
workload identity federation (client assertions for a managed identity), with Entra's AADSTS answers.

The sources of every rule and message are in the docstring of sandbox/server/entra.py.
"""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
import pytest

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ENTRA_ERROR_KEYS = {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id",
                    "error_uri"}


# ---- helpers --------------------------------------------------------------------------------------------
def exchange(sandbox, client_id: str, assertion: str | None, assertion_type: str | None = JWT_BEARER,
             scope: str | None = None) -> tuple[int, dict]:
    """POST a client_credentials + client_assertion request to the token endpoint, as MSAL does."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope or sandbox.arm_scope,
            "client_info": "1"}
    if assertion_type is not None:
        form["client_assertion_type"] = assertion_type
    if assertion is not None:
        form["client_assertion"] = assertion
    url = f"{sandbox.authority.rstrip('/')}/{sandbox.tenant_id}/oauth2/v2.0/token"
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    context = ssl.create_default_context(cafile=sandbox.bundle)
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def assert_aadsts(result: tuple[int, dict], code: int, status: int = 401, error: str = "invalid_client",
                  contains: str | None = None) -> dict:
    got_status, body = result
    assert (got_status, body.get("error_codes")) == (status, [code]), body
    assert body["error"] == error
    assert ENTRA_ERROR_KEYS <= set(body), body
    description = body["error_description"]
    assert description.startswith(f"AADSTS{code}: "), description
    assert f"Trace ID: {body['trace_id']} Correlation ID: {body['correlation_id']} " \
           f"Timestamp: {body['timestamp']}" in description
    assert body["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"
    if contains is not None:
        assert contains in description, description
    return body


def wait_for(condition, timeout: float = 20.0, interval: float = 0.1):
    """Poll `condition` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


class Federation:
    """A user-assigned managed identity (Reader on the subscription) plus helpers to add FICs to it."""

    def __init__(self, sandbox, unique: str):
        from azure.mgmt.authorization import AuthorizationManagementClient
        from azure.mgmt.msi import ManagedServiceIdentityClient
        from azure.mgmt.resource.resources import ResourceManagementClient

        self.sandbox = sandbox
        self.rg = f"rg-wif-{unique}"
        sandbox.client(ResourceManagementClient).resource_groups.create_or_update(self.rg, {"location": "westeurope"})
        self.msi = sandbox.client(ManagedServiceIdentityClient)
        identity = self.msi.user_assigned_identities.create_or_update(self.rg, f"id-wif-{unique}",
                                                                      {"location": "westeurope"})
        self.identity_name = identity.name
        self.client_id = identity.client_id
        self.principal_id = identity.principal_id
        auth = sandbox.client(AuthorizationManagementClient)
        auth.role_assignments.create(sandbox.sub_scope, str(uuid.uuid4()), {
            "role_definition_id": f"{sandbox.sub_scope}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
            "principal_id": self.principal_id, "principal_type": "ServicePrincipal"})

        self.created: list[str] = []

    def fic(self, issuer: str, subject: str, audience: str = "api://AzureADTokenExchange") -> str:
        name = "fic-" + uuid.uuid4().hex[:12]
        self.msi.federated_identity_credentials.create_or_update(
            self.rg, self.identity_name, name, {"issuer": issuer, "subject": subject, "audiences": [audience]})
        self.created.append(name)
        return name

    def remove_fics(self) -> None:
        """An identity holds at most 20 FICs: each test removes the ones it added."""
        while self.created:
            self.msi.federated_identity_credentials.delete(self.rg, self.identity_name, self.created.pop())


@pytest.fixture(scope="module")
def federated_identity(sandbox):
    """A federated managed identity; FICs are usable at once here (propagation delay 0 for this module)."""
    with sandbox.settings(fic_propagation_seconds=0.0):
        yield Federation(sandbox, uuid.uuid4().hex[:8])


@pytest.fixture
def federation(federated_identity):
    yield federated_identity
    federated_identity.remove_fics()


@pytest.fixture
def subject(unique) -> str:
    return f"system:serviceaccount:ns-{unique}:workload"


@pytest.fixture
def federated(federation, oidc_issuer, subject):
    """(federation, issuer, subject) with a FIC that trusts exactly this issuer and subject."""
    federation.fic(oidc_issuer.url, subject)
    return federation, oidc_issuer, subject


# ---- client secrets -------------------------------------------------------------------------------------
def test_client_secret_credential_gets_an_arm_token(sandbox):
    token = sandbox.credential().get_token(sandbox.arm_scope)
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["appid"] == sandbox.env["AZURE_CLIENT_ID"]
    assert claims["aud"] == sandbox.arm_scope[: -len(".default")]
    assert claims["iss"] == f"https://sts.windows.net/{sandbox.tenant_id}/"
    assert token.expires_on > time.time() + 3000


def test_wrong_client_secret_is_refused_with_7000215(sandbox):
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError) as err:
        sandbox.credential(secret="not-the-secret").get_token(sandbox.arm_scope)
    assert "AADSTS7000215" in str(err.value)


# ---- workload identity federation with the SDKs ----------------------------------------------------------
def test_client_assertion_credential_reads_arm_and_cannot_write(sandbox, federated):
    from azure.core.exceptions import HttpResponseError
    from azure.identity import ClientAssertionCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    federation, issuer, subject = federated
    credential = ClientAssertionCredential(sandbox.tenant_id, federation.client_id, lambda: issuer.mint(subject),
                                           authority=sandbox.authority, disable_instance_discovery=True)
    claims = jwt.decode(credential.get_token(sandbox.arm_scope).token, options={"verify_signature": False})
    assert (claims["oid"], claims["appid"], claims["tid"]) == (federation.principal_id, federation.client_id,
                                                               sandbox.tenant_id)
    client = sandbox.client(ResourceManagementClient, credential=credential)
    assert federation.rg in [g.name for g in client.resource_groups.list()]
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.create_or_update(f"rg-denied-{uuid.uuid4().hex[:6]}", {"location": "westeurope"})
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"


def test_workload_identity_credential_reads_the_token_file(sandbox, federated, tmp_path):
    from azure.identity import WorkloadIdentityCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    federation, issuer, subject = federated
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(issuer.mint(subject))
    credential = WorkloadIdentityCredential(tenant_id=sandbox.tenant_id, client_id=federation.client_id,
                                            token_file_path=str(token_file), authority=sandbox.authority,
                                            disable_instance_discovery=True)
    client = sandbox.client(ResourceManagementClient, credential=credential)
    assert federation.rg in [g.name for g in client.resource_groups.list()]


def test_sdk_surfaces_the_aadsts_code(sandbox, federated):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientAssertionCredential

    federation, issuer, subject = federated
    credential = ClientAssertionCredential(sandbox.tenant_id, federation.client_id,
                                           lambda: issuer.mint(subject + "-other"),
                                           authority=sandbox.authority, disable_instance_discovery=True)
    with pytest.raises(ClientAuthenticationError) as err:
        credential.get_token(sandbox.arm_scope)
    assert "AADSTS700213" in str(err.value)


def test_issuer_with_trailing_slash_used_consistently_works(sandbox, federation, oidc_server, subject):
    issuer = oidc_server.issuer(trailing_slash=True)
    assert issuer.url.endswith("/")
    federation.fic(issuer.url, subject)
    status, body = exchange(sandbox, federation.client_id, issuer.mint(subject))
    assert status == 200, body
    # the discovery document was fetched at issuer-without-slash + /.well-known/openid-configuration
    assert issuer.fetches["discovery"] >= 1


def test_rotated_key_is_picked_up(sandbox, federated):
    federation, issuer, subject = federated
    assert exchange(sandbox, federation.client_id, issuer.mint(subject))[0] == 200
    issuer.rotate()  # new kid; the cached JWKS does not know it yet
    status, body = exchange(sandbox, federation.client_id, issuer.mint(subject))
    assert status == 200, body


# ---- FIC matching: 700211 / 700213 / 7002138 / 700212 / 70021 --------------------------------------------
def test_wrong_issuer_gives_700211(sandbox, federated, oidc_server):
    federation, _, subject = federated
    other = oidc_server.issuer()
    assert_aadsts(exchange(sandbox, federation.client_id, other.mint(subject)), 700211,
                  contains=f"No matching federated identity record found for presented assertion issuer "
                           f"'{other.url}'. Please check your federated identity credential Subject, Audience "
                           "and Issuer against the presented assertion.")


def test_trailing_slash_mismatch_gives_700211(sandbox, federation, oidc_issuer, subject):
    # the FIC names the issuer with a trailing slash; the token's iss has none (or the other way round)
    federation.fic(oidc_issuer.url + "/", subject)
    assert not oidc_issuer.url.endswith("/")
    assert_aadsts(exchange(sandbox, federation.client_id, oidc_issuer.mint(subject)), 700211,
                  contains=f"issuer '{oidc_issuer.url}'")
    # no traffic to the issuer: matching comes before fetching
    assert oidc_issuer.fetches == {"discovery": 0, "jwks": 0}


def test_wrong_subject_gives_700213(sandbox, federated):
    federation, issuer, subject = federated
    wrong = subject.replace(":workload", ":other")
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(wrong)), 700213,
                  contains=f"No matching federated identity record found for presented assertion subject "
                           f"'{wrong}'. Check your federated identity credential Subject, Audience and Issuer "
                           "against the presented assertion.")


def test_subject_differing_only_by_case_gives_7002138(sandbox, federated):
    federation, issuer, subject = federated
    shouted = subject.upper()
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(shouted)), 7002138,
                  contains=f"subject '{shouted}'. The subject matches with case-insensitive comparison, but not "
                           "with case-sensitive comparison.")


def test_wrong_audience_gives_700212(sandbox, federated):
    federation, issuer, subject = federated
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject, audience="api://Other")), 700212,
                  contains="No matching federated identity record found for presented assertion audience "
                           "'api://Other'.")


def test_audience_case_matters(sandbox, federated):
    federation, issuer, subject = federated
    assert_aadsts(exchange(sandbox, federation.client_id,
                           issuer.mint(subject, audience="api://azureadtokenexchange")), 700212)


def test_fic_within_its_propagation_delay_gives_70021_then_works(sandbox, federation, oidc_issuer, subject):
    with sandbox.settings(fic_propagation_seconds=3.0):
        federation.fic(oidc_issuer.url, subject)
        assertion = oidc_issuer.mint(subject)
        assert_aadsts(exchange(sandbox, federation.client_id, assertion), 70021,
                      contains=f"No matching federated identity record found for presented assertion. Assertion "
                               f"Issuer: '{oidc_issuer.url}'. Assertion Subject: '{subject}'. Assertion Audience: "
                               "'api://AzureADTokenExchange'.")
        # the SDK guidance: retry the exchange, do not recreate the FIC
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
            exchange(sandbox, federation.client_id, assertion)), timeout=15)
        assert body["token_type"] == "Bearer"


def test_identity_without_fics_gives_70021(sandbox, oidc_issuer, unique):
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    rg = f"rg-nofic-{unique}"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(rg, {"location": "westeurope"})
    identity = sandbox.client(ManagedServiceIdentityClient).user_assigned_identities.create_or_update(
        rg, f"id-nofic-{unique}", {"location": "westeurope"})
    assert_aadsts(exchange(sandbox, identity.client_id, oidc_issuer.mint("system:serviceaccount:a:b")), 70021)


# ---- the issuer's documents: 90061 / 900612 ---------------------------------------------------------------
def test_unreachable_issuer_gives_90061(sandbox, federation, oidc_issuer, subject):
    import socket

    with socket.socket() as s:  # a loopback port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    issuer = f"https://127.0.0.1:{port}/gone"
    federation.fic(issuer, subject)
    assertion = oidc_issuer.mint(subject, issuer=issuer)
    assert_aadsts(exchange(sandbox, federation.client_id, assertion), 90061, status=400, error="invalid_request",
                  contains="AADSTS90061: Request to External OIDC endpoint failed.")


def test_issuer_outside_loopback_is_never_fetched(sandbox, federation, oidc_issuer, subject):
    issuer = "https://oidc.example.invalid/tenant/issuer/"
    federation.fic(issuer, subject)
    assertion = oidc_issuer.mint(subject, issuer=issuer)
    assert_aadsts(exchange(sandbox, federation.client_id, assertion), 90061, status=400, error="invalid_request",
                  contains="the sandbox only fetches OIDC documents from loopback")


def test_missing_discovery_document_gives_90061(sandbox, federated):
    federation, issuer, subject = federated
    issuer.available = False
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject)), 90061, status=400,
                  error="invalid_request", contains="answered HTTP 404")


def test_discovery_document_with_another_issuer_gives_90061(sandbox, federated):
    federation, issuer, subject = federated
    issuer.discovery_overrides = {"issuer": issuer.url + "/"}
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject)), 90061, status=400,
                  error="invalid_request", contains=f"declares issuer '{issuer.url}/'")


def test_jwks_uri_outside_loopback_gives_90061(sandbox, federated):
    federation, issuer, subject = federated
    issuer.discovery_overrides = {"jwks_uri": "https://keys.example.invalid/jwks"}
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject)), 90061, status=400,
                  error="invalid_request", contains="https://keys.example.invalid/jwks")


def test_unparseable_jwks_gives_900612(sandbox, federated):
    federation, issuer, subject = federated
    issuer.jwks_body = "<html>not a key set</html>"
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject)), 900612, status=400,
                  error="invalid_request", contains="Failed to parse provider signing keys.")


# ---- signature and lifetime: 700027 / 7000272 / 5002738 / 700024 ----------------------------------------
def test_bad_signature_gives_700027(sandbox, federated):
    from cryptography.hazmat.primitives.asymmetric import rsa

    federation, issuer, subject = federated
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = issuer.mint(subject, key=impostor, kid=issuer.kid)  # the published kid, another key
    assert_aadsts(exchange(sandbox, federation.client_id, forged), 700027,
                  contains="Client assertion failed signature validation.")


def test_tampered_claims_give_700027(sandbox, federated):
    import base64

    federation, issuer, subject = federated
    head, _, signature = issuer.mint(subject).split(".")
    claims = jwt.decode(issuer.mint(subject, lifetime=7200), options={"verify_signature": False})
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_aadsts(exchange(sandbox, federation.client_id, f"{head}.{body}.{signature}"), 700027)


def test_unknown_kid_gives_7000272(sandbox, federated):
    from cryptography.hazmat.primitives.asymmetric import rsa

    federation, issuer, subject = federated
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assertion = issuer.mint(subject, key=stranger)
    kid = jwt.get_unverified_header(assertion)["kid"]
    assert_aadsts(exchange(sandbox, federation.client_id, assertion), 7000272,
                  contains=f"The certificate with identifier {kid} used to sign the federated credential could not "
                           f"be found in the metadata of identity provider {issuer.url}.")


def test_es256_is_not_accepted_5002738(sandbox, federated):
    from cryptography.hazmat.primitives.asymmetric import ec

    federation, issuer, subject = federated
    ec_key = ec.generate_private_key(ec.SECP256R1())
    issuer.extra_keys.append(issuer.jwk_of(ec_key.public_key()))  # published, yet Entra refuses ES256
    assertion = issuer.mint(subject, key=ec_key, alg="ES256")
    assert_aadsts(exchange(sandbox, federation.client_id, assertion), 5002738, status=400, error="invalid_request",
                  contains="Invalid JWT token. 'ES256' is not a supported signature algorithm.")


def test_expired_assertion_gives_700024(sandbox, federated):
    federation, issuer, subject = federated
    now = int(time.time())
    body = assert_aadsts(exchange(sandbox, federation.client_id,
                                  issuer.mint(subject, not_before=now - 7200, expires=now - 3600)), 700024,
                         contains="Client assertion is not within its valid time range. Current time: ")
    expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3600)) + ".0000000Z"
    assert f"expiry time of assertion {expiry}. Review the documentation at " \
           "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ." in body["error_description"]


def test_not_yet_valid_assertion_gives_700024(sandbox, federated):
    federation, issuer, subject = federated
    now = int(time.time())
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject, not_before=now + 600)), 700024)


def test_assertion_without_nbf_is_valid_from_the_epoch(sandbox, federated):
    federation, issuer, subject = federated
    assert exchange(sandbox, federation.client_id, issuer.mint(subject, drop=("nbf",)))[0] == 200
    now = int(time.time())
    body = assert_aadsts(exchange(sandbox, federation.client_id,
                                  issuer.mint(subject, drop=("nbf",), expires=now - 60)), 700024)
    assert "assertion valid from 1970-01-01T00:00:00.0000000Z" in body["error_description"]


# ---- request shape and other principals -------------------------------------------------------------------
def test_malformed_assertion_gives_50027(sandbox, federation):
    assert_aadsts(exchange(sandbox, federation.client_id, "not.a.jwt"), 50027, status=400, error="invalid_request",
                  contains="JWT token is invalid or malformed.")


def test_wrong_assertion_type_gives_90011(sandbox, federated):
    federation, issuer, subject = federated
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject),
                           assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
                  90011, status=400, error="invalid_request")


def test_missing_assertion_type_gives_900144(sandbox, federated):
    federation, issuer, subject = federated
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject), assertion_type=None), 900144,
                  status=400, error="invalid_request", contains="'client_assertion_type'")


def test_unknown_client_id_gives_700016(sandbox, oidc_issuer):
    client_id = str(uuid.uuid4())
    assert_aadsts(exchange(sandbox, client_id, oidc_issuer.mint("system:serviceaccount:a:b")), 700016,
                  status=400, error="unauthorized_client", contains=f"'{client_id}'")


def test_application_client_id_with_federated_assertion_gives_70021(sandbox, oidc_issuer):
    app = sandbox.principal(name="wif-app")
    assert_aadsts(exchange(sandbox, app["client_id"], oidc_issuer.mint("system:serviceaccount:a:b")), 70021)


def test_application_certificate_assertion_gives_700027(sandbox, oidc_issuer):
    app = sandbox.principal(name="cert-app")
    endpoint = f"{sandbox.authority.rstrip('/')}/{sandbox.tenant_id}/oauth2/v2.0/token"
    assertion = oidc_issuer.mint(app["client_id"], audience=endpoint, issuer=app["client_id"])
    assert_aadsts(exchange(sandbox, app["client_id"], assertion), 700027,
                  contains="The certificate with identifier used to sign the client assertion is not registered "
                           "on application.")


def test_msal_go_scopes_are_accepted_with_one_default_scope(sandbox, federated):
    """MSAL Go (azidentity) sends 'RESOURCE/.default openid offline_access profile' in client credentials
    requests (microsoft-authentication-library-for-go apps/internal/oauth/ops/accesstokens/accesstokens.go,
    AppendDefaultScopes), which Entra answers with a token for RESOURCE."""
    federation, issuer, subject = federated
    status, body = exchange(sandbox, federation.client_id, issuer.mint(subject),
                            scope=f"{sandbox.arm_scope} openid offline_access profile")
    assert status == 200, body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == sandbox.arm_scope[: -len(".default")]


@pytest.mark.parametrize("scope", ["openid offline_access profile", "{arm} {arm}",
                                   "{arm} https://storage.azure.com/.default", "{arm_no_default} openid"])
def test_client_credentials_need_exactly_one_default_scope(sandbox, federated, scope):
    """Without a resource's /.default scope, or with two, Entra refuses the request: AADSTS1002012
    (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow, "scope")."""
    federation, issuer, subject = federated
    arm = sandbox.arm_scope
    value = scope.format(arm=arm, arm_no_default=arm[: -len("/.default")])
    assert_aadsts(exchange(sandbox, federation.client_id, issuer.mint(subject), scope=value), 1002012,
                  status=400, error="invalid_scope")


def _proof(sandbox, federation, token: str, tmp_path) -> dict:
    """One round of the demo workload (sandbox/go/proof: Go, azidentity's WorkloadIdentityCredential) with
    the variables the webhook injects, against the emulators."""
    import os
    import subprocess

    from .conftest import binary_paths

    token_file = tmp_path / "azure-identity-token"
    token_file.write_text(token)
    sub = sandbox.subscription_id
    env = dict(os.environ, AZURE_CLIENT_ID=federation.client_id, AZURE_TENANT_ID=sandbox.tenant_id,
               AZURE_FEDERATED_TOKEN_FILE=str(token_file), AZURE_AUTHORITY_HOST=sandbox.authority,
               ARCWI_ARM_ENDPOINT=sandbox.arm_url, ARCWI_ARM_SCOPE=sandbox.arm_scope, SSL_CERT_FILE=sandbox.bundle,
               ARCWI_READ_PATH=f"/subscriptions/{sub}/resourceGroups/{federation.rg}?api-version=2021-04-01",
               ARCWI_WRITE_PATH=f"/subscriptions/{sub}/resourceGroups/rg-denied-{uuid.uuid4().hex[:6]}"
                                "?api-version=2021-04-01",
               ARCWI_WRITE_BODY='{"location": "westeurope"}', ARCWI_ROUNDS="1")
    env.pop("AZURE_CLIENT_SECRET", None)
    run = subprocess.run([binary_paths()["workload-proof"]], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_the_demo_workload_exchanges_reads_and_is_refused_a_write(sandbox, federated, tmp_path):
    """azidentity (Go) against the emulators: the exchange (with MSAL Go's scopes), an ARM read (200) and a
    write refused 403 AuthorizationFailed; the claims Entra compared are in the line it prints."""
    federation, issuer, subject = federated
    line = _proof(sandbox, federation, issuer.mint(subject), tmp_path)
    assert (line["exchange"], line["read"], line["write"], line["write_code"], line["proof"]) == \
        ("ok", 200, 403, "AuthorizationFailed", "ok"), line
    assert (line["assertion_iss"], line["assertion_sub"]) == (issuer.url, subject)


def test_the_demo_workload_names_the_aadsts_code(sandbox, federated, tmp_path):
    federation, issuer, subject = federated
    wrong = subject.replace(":workload", ":other")
    line = _proof(sandbox, federation, issuer.mint(wrong), tmp_path)
    assert (line["exchange"], line["aadsts"], line["proof"]) == ("failed", "AADSTS700213", "failed"), line
    assert f"presented assertion subject '{wrong}'" in line["error"]
