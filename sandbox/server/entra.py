"""Entra emulator: per-tenant OIDC metadata, JWKS and the v2.0 token endpoint.

Flows: client_credentials with (a) a client secret of a service principal and (b) a client assertion
for a managed identity (workload identity federation) -- see `_assertion_grant`.

Sources:
- Token endpoint and error body shape (error, error_description, error_codes, timestamp, trace_id,
  correlation_id, error_uri): learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
  and .../reference-error-codes (AADSTS7000215 invalid secret, AADSTS700016 unknown application,
  AADSTS90002 unknown tenant, AADSTS1002012 scope must end in /.default, AADSTS500011 unknown resource).

Workload identity federation (`_assertion_grant`), rules and the texts Entra answers with:
- Request: client_credentials with client_assertion_type
  `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and client_assertion (RFC 7523; Entra's
  v2-oauth2-client-creds-grant-flow "Second case: Access token request with a federated credential").
  Missing parameter: AADSTS900144 "The request body must contain the following parameter: '{name}'."
  (reference-error-codes). Another assertion type: 400 invalid_request AADSTS90011 "Unexpected client
  assertion type." (AzureAD/azure-activedirectory-library-for-ruby PR 53).
- Unparseable JWT, or no iss/sub: 400 invalid_request AADSTS50027 "JWT token is invalid or malformed."
  (Azure/kubelogin issue 413).
- Matching the assertion against the identity's FICs happens BEFORE Entra fetches the issuer's documents:
  an assertion whose issuer no FIC names gets AADSTS700211/70021 even when that issuer is unreachable
  (Azure/azure-workload-identity issue 616: issuer https://kubernetes.default.svc.cluster.local answered
  70021, not 90061; trevorbox/helm-charts test-federated-identity.md: a changed issuer answered
  700211). Issuer, subject and audience are compared case-sensitively, byte for byte (learn.microsoft.com
  entra/identity-platform/reference-breaking-changes "Federated identity credentials now use
  case-sensitive matching", Aug 2024); a trailing slash is part of the issuer (azure-workload-identity
  docs/book/src/troubleshooting.md; MicrosoftDocs/azure-docs issue 97699).
  * 401 invalid_client AADSTS700211 "No matching federated identity record found for presented assertion
    issuer '{iss}'. Please check your federated identity credential Subject, Audience and Issuer against
    the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
    (Azure/azure-workload-identity issues 1200 and 1350; trevorbox/helm-charts, 2025 text with the
    learn.microsoft.com link; status 401).
  * 401 invalid_client AADSTS700213 "No matching federated identity record found for presented assertion
    subject '{sub}'. Check your federated identity credential Subject, Audience and Issuer against the
    presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
    (azure-workload-identity issue 1200 comment 2025-04; dotnet/maui PR 31978).
  * 401 invalid_client AADSTS7002138, subject equal only case-insensitively: "No matching federated
    identity record found for presented assertion subject '{sub}'. The subject matches with
    case-insensitive comparison, but not with case-sensitive comparison. Check your federated identity
    credential Subject, Audience and Issuer against the presented assertion. See documentation at:
    https://learn.microsoft.com/entra/workload-id/workload-identity-federation. See breaking change
    notification and remediation at: https://learn.microsoft.com/en-us/entra/identity-platform/
    reference-breaking-changes#august-2024." (Azure/login issues 515 and 517).
  * 401 invalid_client AADSTS700212 "No matching federated identity record found for presented assertion
    audience '{aud}'. Please check ..." (AthenZ/athenz AzureAccessTokenProviderTest, recorded Entra
    response of 2024-04, status 401).
  * 401 invalid_client AADSTS70021 "No matching federated identity record found for presented assertion.
    Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud}'. {doc link}"
    (external-secrets/external-secrets issue 2783, 2023: 401 invalid_client; older answers were
    400 invalid_request, azure-workload-identity issue 616). The sandbox answers it while the FIC that
    matches was written less than the `fic_propagation_seconds` setting ago (a new FIC takes seconds to
    minutes to reach Entra: learn.microsoft.com/entra/workload-id/workload-identity-federation-
    considerations), and when the identity has no FIC that Entra would already know of.
- Then Entra fetches `{issuer without trailing slash}/.well-known/openid-configuration` (OpenID Connect
  Discovery 1.0 section 4: "any terminating / MUST be removed before appending
  /.well-known/openid-configuration"; the azwi self-managed docs publish the document under the issuer
  path) and its `jwks_uri`, over HTTPS.
  * 400 invalid_request AADSTS90061 "Request to External OIDC endpoint failed." when either cannot be
    fetched (azure-workload-identity docs/book/src/troubleshooting.md, issue 605, PR 608). The sandbox
    adds a bracketed "[sandbox: ...]" detail naming the URL and the failure, and fetches ONLY from
    https://127.0.0.1 or https://localhost (anything else answers 90061 without any traffic), trusting
    the sandbox CA bundle (sandbox CA + system CAs); no proxies; redirects only to loopback.
  * A discovery document whose `issuer` differs from the assertion's `iss`: OpenID Connect Discovery 1.0
    section 4.3 requires them identical. What Entra answers is not documented; the sandbox refuses with
    AADSTS90061 and says why in its detail (decision, unverified).
  * 400 invalid_request AADSTS900612 "Failed to parse provider signing keys." for a JWKS that is not a
    JSON object with a `keys` list or whose matching key does not parse
    (trevorbox/helm-charts test-federated-identity.md, 2025-07).
- Signature: Entra accepts only RSA algorithms for federated assertions (RS256/384/512, PS256/384/512);
  ES256 and other algorithms answer 400 invalid_request AADSTS5002738 "Invalid JWT token. '{alg}' is not
  a supported signature algorithm." (AzureAD/microsoft-identity-web issue 3467, 2025-09). So the sandbox
  does NOT accept ES256 even though azwi can publish EC keys.
  * kid not in the JWKS: 401 invalid_client AADSTS7000272 "The certificate with identifier {kid} used
    to sign the federated credential could not be found in the metadata of identity provider {iss}.
    Please validate that your Identity Provider's metadata exposes the key used to sign the incoming
    token." (Azure/azure-workload-identity issue 1232).
  * kid found but the signature does not verify: 401 invalid_client AADSTS700027 "Client assertion failed
    signature validation." (reference-error-codes; the exact text Entra sends for a federated assertion
    is not confirmed).
- Lifetime: 401 invalid_client AADSTS700024 "Client assertion is not within its valid time range.
  Current time: {now}, assertion valid from {nbf}, expiry time of assertion {exp}. Review the
  documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
  Times in .NET round-trip form (2025-08-29T05:47:32.1501147Z); a missing nbf shows as
  1970-01-01T00:00:00.0000000Z (AzureAD/microsoft-authentication-library-for-java issue 984;
  risingwavelabs/risingwave issue 16262 for a workload identity token, 401). The sandbox allows no
  clock skew (never looser than Entra); a missing exp counts as expired at the epoch (decision).
- A client assertion for an application (not a managed identity): sandbox applications have neither
  FICs nor certificates. An assertion whose iss is the client id itself is a certificate credential:
  401 invalid_client AADSTS700027 "The certificate with identifier used to sign the client assertion is
  not registered on application. [Reason - The key was not found., ...]" (keycloak/keycloak issue 19425;
  learn.microsoft.com Q&A 5915574); any other assertion is a federated one and gets AADSTS70021 (no FIC).
- Entra caches issuer metadata; the sandbox caches a successful fetch for OIDC_CACHE_SECONDS per issuer,
  refetches once when a kid is missing, and `clear_caches()` (called by the admin reset) drops it.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import jwt

from .. import config, podnet
from . import tokens as tokenmod
from .arm import msi
from .http import ApiError, Response, Router

# the OpenID Connect scopes MSAL adds to token requests (see the client_credentials scope check)
OIDC_SCOPES = frozenset({"openid", "offline_access", "profile"})

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def entra_error(status: int, error: str, code: int, message: str) -> ApiError:
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    description = f"AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}"
    return ApiError(status, error, description, shape="entra", extra={
        "error_codes": [code], "timestamp": stamp, "trace_id": trace, "correlation_id": corr,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}"})


def resources(ctx) -> dict[str, str]:
    """Resources (application ID URIs) this tenant can issue tokens for -> the audience they get."""
    return {
        ctx.arm_audience.rstrip("/"): ctx.arm_audience,
        "https://storage.azure.com": "https://storage.azure.com",
    }


def make_router(ctx) -> Router:
    router = Router("entra")
    loopback = ctx.entra_url.rstrip("/")

    def base_for(request) -> str:
        """The authority's URL as the client reached it: loopback, or the gateway of the sandbox's Docker
        network for pods (sandbox/podnet.py); every endpoint the metadata names is on that same host, as
        Entra's are on login.microsoftonline.com."""
        host = (request.headers.get("Host") or "").strip()
        gateway = podnet.recorded()
        if gateway and host == f"{gateway}:{config.port('entra')}":
            return f"https://{host}"
        return loopback

    def tenant_ok(tenant: str) -> None:
        if tenant.lower() not in (ctx.ident.tenant_id.lower(), "organizations", "common"):
            raise entra_error(400, "invalid_request", 90002,
                              f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                              "are signing into the correct cloud. Check with your subscription administrator, this "
                              "may happen if there are no active subscriptions for the tenant.")

    @router.route("GET", "/{tenant}/v2.0/.well-known/openid-configuration")
    def openid(request):
        tenant = request.params["tenant"]
        tenant_ok(tenant)
        tid = ctx.ident.tenant_id if tenant.lower() in ("common", "organizations") else tenant
        base = base_for(request)
        return Response(200, {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "sandbox.arcwi.invalid",
            "cloud_graph_host_name": "graph.sandbox.arcwi.invalid",
            "msgraph_host": "graph.sandbox.arcwi.invalid",
            "rbac_url": ctx.arm_url,
        })

    @router.route("GET", "/{tenant}/discovery/v2.0/keys")
    def keys(request):
        tenant_ok(request.params["tenant"])
        return Response(200, ctx.tokens.jwks())

    @router.route("POST", "/{tenant}/oauth2/v2.0/token")
    def token(request):
        tenant = request.params["tenant"]
        tenant_ok(tenant)
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            raise entra_error(400, "unsupported_grant_type", 70003,
                              "The app requested an unsupported grant type "
                              f"'{form.get('grant_type', '')}'.")
        client_id = (form.get("client_id") or "").lower()
        if not client_id:
            raise entra_error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: 'client_id'.")
        scope = form.get("scope") or ""
        # MSAL Go (azidentity: WorkloadIdentityCredential, ClientAssertionCredential) adds the OpenID Connect
        # scopes to every token request, client credentials included (microsoft-authentication-library-for-go
        # apps/internal/oauth/ops/accesstokens/accesstokens.go: FromAssertion/FromClientSecret ->
        # addScopeQueryParam -> AppendDefaultScopes "openid offline_access profile"), and Entra answers those
        # requests: the OIDC scopes are set aside, and exactly one resource scope ending in /.default remains
        scopes = [s for s in scope.split() if s not in OIDC_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise entra_error(400, "invalid_scope", 1002012,
                              f"The provided value for scope {scope} is not valid. Client credential flows must "
                              "have a scope value with /.default suffixed to the resource identifier "
                              "(application ID URI).")
        resource = scopes[0][: -len("/.default")]
        audience = resources(ctx).get(resource.rstrip("/"))
        if audience is None:
            raise entra_error(400, "invalid_resource", 500011,
                              f"The resource principal named {resource} was not found in the tenant named "
                              f"{ctx.ident.tenant_id}. This can happen if the application has not been installed by "
                              "the administrator of the tenant or consented to by any user in the tenant. You might "
                              "have sent your authentication request to the wrong tenant.")
        if form.get("client_assertion") or form.get("client_assertion_type"):
            principal = _assertion_grant(ctx, request, form, client_id)
        else:
            principal = _secret_grant(ctx, form, client_id)
        access_token, lifetime = ctx.tokens.mint(audience=audience, object_id=principal["object_id"],
                                                 app_id=principal["app_id"], tenant_id=ctx.ident.tenant_id)
        return Response(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                              "access_token": access_token},
                        headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    return router


def _unknown_application(ctx, client_id: str) -> ApiError:
    return entra_error(400, "unauthorized_client", 700016,
                       f"Application with identifier '{client_id}' was not found in the directory "
                       f"'{ctx.ident.tenant_id}'. This can happen if the application has not been installed by "
                       "the administrator of the tenant or consented to by any user in the tenant. You may have "
                       "sent your authentication request to the wrong tenant.")


def _principal_or_error(ctx, client_id: str):
    principal = ctx.store.principal_by_app(client_id) if GUID.match(client_id) else None
    if principal is None:
        raise _unknown_application(ctx, client_id)
    return principal


def _secret_grant(ctx, form: dict, client_id: str) -> dict:
    principal = _principal_or_error(ctx, client_id)
    secret = form.get("client_secret")
    if not secret:
        raise entra_error(401, "invalid_client", 7000218,
                          "The request body must contain the following parameter: 'client_assertion' or "
                          "'client_secret'.")
    expected = principal["secret_sha256"]
    given = hashlib.sha256(secret.encode()).hexdigest()
    if not expected or not hmac.compare_digest(expected, given):
        raise entra_error(401, "invalid_client", 7000215,
                          "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                          f"secret value, not the client secret ID, for a secret added to app '{client_id}'.")
    return dict(principal)


# ---- workload identity federation ------------------------------------------------------------------
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
WIF_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
CERT_DOC = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
BREAKING_CHANGE_DOC = ("https://learn.microsoft.com/en-us/entra/identity-platform/reference-breaking-changes"
                       "#august-2024")
SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
OIDC_CACHE_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 1 << 20

_cache: dict[str, tuple[float, dict, dict]] = {}  # issuer -> (fetched at, discovery document, jwks)
_cache_lock = threading.Lock()
_tls: ssl.SSLContext | None = None


def clear_caches() -> None:
    """Forget fetched issuer metadata (the admin reset calls this)."""
    global _tls
    with _cache_lock:
        _cache.clear()
        _tls = None


class _FetchFailed(Exception):
    """An issuer document could not be fetched: AADSTS90061 with this detail."""


def _unreachable(detail: str) -> ApiError:
    return entra_error(400, "invalid_request", 90061, f"Request to External OIDC endpoint failed. [sandbox: {detail}]")


def _malformed() -> ApiError:
    return entra_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.")


def _tls_context() -> ssl.SSLContext:
    global _tls
    with _cache_lock:
        if _tls is None:
            from .. import config
            from ..pki import PKI
            bundle = PKI(config.home()).bundle
            _tls = ssl.create_default_context(cafile=str(bundle)) if bundle.exists() else ssl.create_default_context()
        return _tls


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise _FetchFailed(f"'{url}' is not an https URL; Entra fetches issuer documents over HTTPS only")
    if (parts.hostname or "").lower() not in LOOPBACK_HOSTS:
        raise _FetchFailed(f"the sandbox only fetches OIDC documents from loopback (https://127.0.0.1 or "
                           f"https://localhost); '{url}' was not fetched")


class _LoopbackRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            _check_url(newurl)
        except _FetchFailed as exc:
            raise urllib.error.URLError(f"redirected to a URL the sandbox does not fetch: {exc}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str) -> bytes:
    _check_url(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=_tls_context()),
                                         _LoopbackRedirects())
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "arcwi-sandbox-entra"})
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as resp:
            data = resp.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise _FetchFailed(f"GET {url} answered HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _FetchFailed(f"GET {url} failed: {reason}")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _FetchFailed(f"GET {url} returned more than {MAX_DOCUMENT_BYTES} bytes")
    return data


def discovery_url(issuer: str) -> str:
    # OpenID Connect Discovery 1.0, section 4: a terminating "/" is removed before appending
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def _metadata(issuer: str, refresh: bool = False) -> tuple[dict, dict]:
    """(discovery document, JWKS) of an issuer, fetched over HTTPS or from the short cache."""
    now = time.monotonic()
    if not refresh:
        with _cache_lock:
            hit = _cache.get(issuer)
        if hit and now - hit[0] < OIDC_CACHE_SECONDS:
            return hit[1], hit[2]
    url = discovery_url(issuer)
    try:
        raw = _fetch(url)
    except _FetchFailed as exc:
        raise _unreachable(str(exc))
    try:
        discovery = json.loads(raw)
    except ValueError:
        raise _unreachable(f"the discovery document at {url} is not JSON")
    if not isinstance(discovery, dict) or not isinstance(discovery.get("jwks_uri"), str):
        raise _unreachable(f"the discovery document at {url} has no jwks_uri")
    if discovery.get("issuer") != issuer:
        raise _unreachable(f"the discovery document at {url} declares issuer '{discovery.get('issuer')}', "
                           f"which is not the assertion issuer '{issuer}' (OpenID Connect Discovery 1.0, 4.3)")
    jwks_url = discovery["jwks_uri"]
    try:
        raw = _fetch(jwks_url)
    except _FetchFailed as exc:
        raise _unreachable(str(exc))
    try:
        jwks = json.loads(raw)
    except ValueError:
        jwks = None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise entra_error(400, "invalid_request", 900612, "Failed to parse provider signing keys.")
    with _cache_lock:
        _cache[issuer] = (time.monotonic(), discovery, jwks)
    return discovery, jwks


def _net_time(ts: float) -> str:
    """.NET round-trip ("o") format, as Entra prints times: 2025-08-29T05:47:32.1501147Z."""
    ts = max(float(ts), 0.0)
    whole = int(ts)
    ticks = int(round((ts - whole) * 10_000_000))
    if ticks >= 10_000_000:
        whole, ticks = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ticks:07d}Z"


def _audiences(claims: dict) -> list[str] | None:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    return None


def _no_match(iss: str, sub: str, auds: list[str]) -> ApiError:
    return entra_error(401, "invalid_client", 70021,
                       "No matching federated identity record found for presented assertion. "
                       f"Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. "
                       f"Assertion Audience: '{','.join(auds)}'. {WIF_DOC}")


def _match_fic(ctx, fics: list[dict], iss: str, sub: str, auds: list[str]) -> dict:
    """The FIC that admits this assertion, or Entra's error for why none does."""
    delay = float(ctx.setting("fic_propagation_seconds"))
    now = time.time()

    def matches(fic: dict) -> bool:
        p = fic["properties"]
        return p["issuer"] == iss and p["subject"] == sub and any(a in auds for a in p["audiences"])

    def known(fic: dict) -> bool:  # Entra has seen this FIC: written at least `delay` seconds ago
        return now - msi.fic_written_at(ctx, fic["id"]) >= delay

    visible = [f for f in fics if known(f)]
    for fic in visible:
        if matches(fic):
            return fic
    if not visible or any(matches(f) for f in fics):
        # nothing Entra knows of yet, or the matching FIC has not propagated
        raise _no_match(iss, sub, auds)
    by_issuer = [f for f in visible if f["properties"]["issuer"] == iss]
    if not by_issuer:
        raise entra_error(401, "invalid_client", 700211,
                          f"No matching federated identity record found for presented assertion issuer '{iss}'. "
                          "Please check your federated identity credential Subject, Audience and Issuer against "
                          f"the presented assertion. {WIF_DOC}")
    by_subject = [f for f in by_issuer if f["properties"]["subject"] == sub]
    if not by_subject:
        if any(f["properties"]["subject"].lower() == sub.lower() for f in by_issuer):
            raise entra_error(401, "invalid_client", 7002138,
                              f"No matching federated identity record found for presented assertion subject '{sub}'. "
                              "The subject matches with case-insensitive comparison, but not with case-sensitive "
                              "comparison. Check your federated identity credential Subject, Audience and Issuer "
                              f"against the presented assertion. See documentation at: {WIF_DOC}. See breaking "
                              f"change notification and remediation at: {BREAKING_CHANGE_DOC}.")
        raise entra_error(401, "invalid_client", 700213,
                          f"No matching federated identity record found for presented assertion subject '{sub}'. "
                          "Check your federated identity credential Subject, Audience and Issuer against the "
                          f"presented assertion. {WIF_DOC}")
    raise entra_error(401, "invalid_client", 700212,
                      f"No matching federated identity record found for presented assertion audience "
                      f"'{','.join(auds)}'. Please check your federated identity credential Subject, Audience and "
                      f"Issuer against the presented assertion. {WIF_DOC}")


def _verify_signature(assertion: str, header: dict, iss: str) -> None:
    alg = header.get("alg")
    if alg not in SUPPORTED_ALGS:
        raise entra_error(400, "invalid_request", 5002738,
                          f"Invalid JWT token. '{alg}' is not a supported signature algorithm.")
    kid = header.get("kid")

    def candidates(jwks: dict) -> list:
        keys = [k for k in jwks["keys"] if isinstance(k, dict)]
        return [k for k in keys if k.get("kid") == kid] if kid is not None else keys

    _, jwks = _metadata(iss)
    found = candidates(jwks)
    if not found:
        # the issuer may have rotated its keys since the cached fetch
        _, jwks = _metadata(iss, refresh=True)
        found = candidates(jwks)
    if not found:
        raise entra_error(401, "invalid_client", 7000272,
                          f"The certificate with identifier {kid} used to sign the federated credential could not "
                          f"be found in the metadata of identity provider {iss}. Please validate that your Identity "
                          "Provider's metadata exposes the key used to sign the incoming token.")
    parsed = []
    for jwk in found:
        if jwk.get("kty") != "RSA":
            continue  # an RS*/PS* signature cannot come from a non-RSA key
        try:
            parsed.append(jwt.PyJWK(jwk, algorithm=alg))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            if kid is not None:
                raise entra_error(400, "invalid_request", 900612, "Failed to parse provider signing keys.")
    for key in parsed:
        try:
            jwt.decode(assertion, key.key, algorithms=[alg],
                       options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                                "verify_iat": False, "verify_aud": False, "verify_iss": False})
            return
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            continue
    raise entra_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")


def _check_lifetime(claims: dict) -> None:
    now = time.time()

    def number(name: str, default: float) -> float:
        value = claims.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default

    nbf = number("nbf", 0.0)
    exp = number("exp", 0.0)
    if now >= exp or now < nbf:
        raise entra_error(401, "invalid_client", 700024,
                          f"Client assertion is not within its valid time range. Current time: {_net_time(now)}, "
                          f"assertion valid from {_net_time(nbf)}, expiry time of assertion {_net_time(exp)}. "
                          f"Review the documentation at {CERT_DOC} .")


def _assertion_grant(ctx, request, form: dict, client_id: str) -> dict:
    """Workload identity federation for a managed identity's client id (see the module docstring)."""
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if not assertion_type:
        raise entra_error(400, "invalid_request", 900144,
                          "The request body must contain the following parameter: 'client_assertion_type'.")
    if assertion_type != JWT_BEARER:
        raise entra_error(400, "invalid_request", 90011, "Unexpected client assertion type.")
    if not assertion:
        raise entra_error(400, "invalid_request", 900144,
                          "The request body must contain the following parameter: 'client_assertion'.")
    principal = _principal_or_error(ctx, client_id)
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _malformed()
    iss, sub, auds = claims.get("iss"), claims.get("sub"), _audiences(claims)
    if not (isinstance(iss, str) and iss and isinstance(sub, str) and sub and auds is not None):
        raise _malformed()

    if principal["kind"] != "managedIdentity":
        if iss.lower() == client_id.lower():
            raise entra_error(401, "invalid_client", 700027,
                              "The certificate with identifier used to sign the client assertion is not registered on "
                              "application. [Reason - The key was not found., Please visit the Azure Portal, Graph "
                              "Explorer or directly use MS Graph to see configured keys for app Id "
                              f"'{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/"
                              "deployments to determine the corresponding service endpoint and "
                              "https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http"
                              " to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/"
                              f"{principal['object_id']}'].")
        raise _no_match(iss, sub, auds)  # sandbox applications carry no federated identity credentials

    identity, fics = msi.fics_of_client(ctx, client_id)
    if identity is None:
        raise _unknown_application(ctx, client_id)  # the identity went away with its principal
    _match_fic(ctx, fics, iss, sub, auds)
    _verify_signature(assertion, header, iss)
    _check_lifetime(claims)
    return dict(principal)
