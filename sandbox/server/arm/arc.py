"""Microsoft.Kubernetes/connectedClusters: the Azure Arc-enabled Kubernetes resource, its agents' heartbeat
and its Arc-hosted OIDC issuer.

Sources:
- REST: azure-rest-api-specs specification/hybridkubernetes/resource-manager/Microsoft.Kubernetes/
  HybridKubernetes: readme.md (the api-versions, see core.API_VERSIONS), stable/2024-01-01/
  connectedClusters.json and the TypeSpec (ConnectedCluster.tsp, models.tsp):
  * PUT create-or-replace is long-running, "final-state-via": "azure-async-operation", answering 200 or
    201; the 201 carries Azure-AsyncOperation and Retry-After (azure-mgmt-hybridkubernetes 2.0.0 reads
    exactly those headers); the CreateClusterExample's 201 body has provisioningState "Accepted".
  * GET; PATCH with ConnectedClusterPatch = tags + properties.{distribution, distributionVersion,
    azureHybridBenefit} (+ gateway from 2025-12-01-preview). oidcIssuerProfile and securityProfile are
    NOT patchable in any version: they are set with PUT (the whole resource).
  * DELETE is long-running ("final-state-via": "location"): 200, 202 or 204 (204: "The resource was not
    found but the request is well formed").
  * list by resource group and by subscription ({value, nextLink}).
  * ConnectedCluster requires identity (type SystemAssigned or None, default SystemAssigned; principalId and
    tenantId read-only) and properties.agentPublicKeyCertificate ("Base64 encoded public certificate used
    by the agent to do the initial handshake"). kubernetesVersion, totalNodeCount, totalCoreCount,
    agentVersion, lastConnectivityTime, connectivityStatus (Connecting, Connected, Offline, Expired) are
    read-only and come from the agents. No name pattern (ResourceNameParameter NamePattern "").
  * oidcIssuerProfile {enabled, issuerUrl (read-only), selfHostedIssuerUrl} and securityProfile
    {workloadIdentity {enabled}}: absent from 2024-02-01-preview and earlier (2024-01-01 included),
    present from 2024-06-01-preview on.
- az connectedk8s (azure-cli-extensions src/connectedk8s): the PUT body is {location, identity
  {type: SystemAssigned}, tags, properties {agentPublicKeyCertificate, distribution, infrastructure}};
  agentPublicKeyCertificate = base64(DER(SEQUENCE {n, e})) of an RSA-4096 key, i.e. PKCS#1 RSAPublicKey
  (custom.py get_public_key), not a SubjectPublicKeyInfo and not a certificate.
- Real issuer URLs look like https://europe.oic.prod-arc.azure.com/<tenantId>/<uuid>/ (a published
  `az connectedk8s show` output); the sandbox mirrors the structure on its web endpoint:
  {web}arc-oidc/<tenantId>/<uuid>/ (trailing slash), stable for the life of the resource.
- Connectivity status (learn.microsoft.com/azure/azure-arc/kubernetes/conceptual-connectivity-modes):
  Connecting until the first agent heartbeat; Connected with a heartbeat within 15 minutes; Offline when
  a previously connected cluster sent none for 15 minutes; Expired when the cluster's managed identity
  certificate (90 days) has expired - "delete and connect again" (FAQ). Durations are sandbox settings
  (core.DEFAULT_SETTINGS arc_*), short by default.
- AZURE_FACTS.md: the OIDC issuer cannot be disabled once enabled.
Assumed, not confirmed from a source (kept as strict as the documented contract): the error codes and
messages of the validation failures below (modelled on ARM's deserialisation errors and the other
emulated RPs); a replacing PUT answering 200 with provisioningState Updating and Azure-AsyncOperation;
that agentPublicKeyCertificate must parse as an RSA public key (PKCS#1 as az sends it, or
SubjectPublicKeyInfo); the Arc issuer's jwks_uri being {issuer}openid/v1/jwks (as AKS's issuer); a
PATCH ignoring properties outside ConnectedClusterPatch.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

from ..http import ApiError, Response
from . import core

CC = "microsoft.kubernetes/connectedclusters"
OPS = "microsoft.kubernetes/locations/operationstatuses"
CC_TYPE = "Microsoft.Kubernetes/connectedClusters"
NS = "Microsoft.Kubernetes"

# oidcIssuerProfile / securityProfile exist from this api-version on (see the module docstring)
OIDC_FROM = "2024-06-01-preview"
# ConnectedClusterPatchProperties.gateway exists from this api-version on
PATCH_GATEWAY_FROM = "2025-12-01-preview"
HYBRID_BENEFIT = ("True", "False", "NotApplicable")
PRIVATE_LINK = ("Enabled", "Disabled")
AUTO_UPGRADE = ("Enabled", "Disabled")
# ARM refuses these characters in any resource name; the Arc spec itself sets no pattern
BAD_NAME_CHARS = re.compile(r"[<>%&:\\?/#*\x00-\x1f]")
# how far a heartbeat's timestamp may be from the service's clock
REPORT_SKEW_SECONDS = 300


def cluster_id(ctx, rg: str, name: str) -> str:
    return f"{core.rg_id(ctx, rg)}/providers/{CC_TYPE}/{name}"


def _now_iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts if ts is not None else time.time(), timezone.utc) \
        .isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _version_at_least(version: str | None, floor: str) -> bool:
    return (version or "")[:10] >= floor[:10]


def _kv_put(db, key: str, value) -> None:
    db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               (key, json.dumps(value)))


def _kv_del(db, key: str) -> None:
    db.execute("DELETE FROM kv WHERE key = ?", (key,))


def _required(prop: str) -> ApiError:
    return ApiError(400, "InvalidRequestContent",
                    f"The request content was invalid and could not be deserialized: 'Required property '{prop}' "
                    "not found in JSON.'")


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# ---- the agent public key ------------------------------------------------------------------------
def load_agent_key(value: str):
    """The RSA public key in agentPublicKeyCertificate (PKCS#1 RSAPublicKey as az sends it, or SPKI)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    if not isinstance(value, str) or not value:
        raise _required("agentPublicKeyCertificate")
    try:
        der = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("The agentPublicKeyCertificate is not valid base64.")
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        raise _bad("The agentPublicKeyCertificate is not a DER-encoded RSA public key.")
    if not isinstance(key, rsa.RSAPublicKey):
        raise _bad("The agentPublicKeyCertificate must hold an RSA public key.")
    return key


# ---- state helpers ---------------------------------------------------------------------------------
def _pending(ctx, rid: str) -> dict | None:
    op = ctx.store.kv_get("arc-pending:" + rid.lower())
    return ctx.store.kv_get("arc-op:" + op) if op else None


def _finish_delete(ctx, db, body: dict) -> None:
    rid = body["id"]
    ctx.store.delete(db, rid)
    principal = (body.get("identity") or {}).get("principalId")
    if principal:
        db.execute("DELETE FROM principals WHERE object_id = ?", (principal.lower(),))
    for key in ("arc-pending:", "arc-jwks:"):
        _kv_del(db, key + rid.lower())
    issuer = _issuer_key(body)
    if issuer:
        _kv_del(db, "arc-issuer:" + issuer)


def _issuer_key(body: dict) -> str | None:
    url = ((body.get("properties") or {}).get("oidcIssuerProfile") or {}).get("issuerUrl")
    if not url:
        return None
    m = re.search(r"/arc-oidc/([^/]+)/([^/]+)/$", url)
    return f"{m.group(1)}/{m.group(2)}".lower() if m else None


def settle(ctx, body: dict | None) -> dict | None:
    """Advance the resource's long-running operation by the clock; None when a delete has completed."""
    if body is None:
        return None
    props = body["properties"]
    if props.get("connectivityStatus") in ("Connected", "Offline") and connectivity(ctx, props) == "Expired":
        # Expired is terminal (the identity certificate lapsed): record it the first time it is seen
        with ctx.store.tx() as db:
            current = ctx.store.get(body["id"], db)
            if current is not None:
                current["properties"]["connectivityStatus"] = "Expired"
                ctx.store.put(db, current["id"], CC, _parent(current["id"]), current)
                body = current
    op = _pending(ctx, body["id"])
    if op is None:
        return body
    now = time.time()
    if now >= op["done_at"]:
        with ctx.store.tx() as db:
            current = ctx.store.get(body["id"], db)
            if current is None:
                return None
            if op["kind"] == "delete":
                _finish_delete(ctx, db, current)
                return None
            current["properties"]["provisioningState"] = "Succeeded"
            ctx.store.put(db, current["id"], CC, _parent(current["id"]), current)
            _kv_del(db, "arc-pending:" + current["id"].lower())
        return current
    if op["kind"] == "create" and body["properties"].get("provisioningState") == "Accepted" and \
            now >= (op["start"] + op["done_at"]) / 2:
        with ctx.store.tx() as db:
            current = ctx.store.get(body["id"], db)
            if current is not None and current["properties"].get("provisioningState") == "Accepted":
                current["properties"]["provisioningState"] = "Provisioning"
                ctx.store.put(db, current["id"], CC, _parent(current["id"]), current)
            return current
    return body


def _parent(rid: str) -> str:
    return rid.split("/providers/", 1)[0]


def connectivity(ctx, props: dict, now: float | None = None) -> str:
    """Connecting until the first heartbeat; then Connected / Offline / Expired by the last heartbeat's age."""
    status = props.get("connectivityStatus") or "Connecting"
    last = props.get("lastConnectivityTime")
    if status == "Connecting" or not last:
        return status
    if status == "Expired":
        return status
    age = (now if now is not None else time.time()) - _parse_iso(last)
    if age >= float(ctx.setting("arc_expired_after_seconds")):
        return "Expired"
    if age >= float(ctx.setting("arc_offline_after_seconds")):
        return "Offline"
    return "Connected"


def view(ctx, request, body: dict) -> dict:
    """The resource as the request's api-version shows it."""
    out = json.loads(json.dumps(body))
    props = out["properties"]
    props["connectivityStatus"] = connectivity(ctx, props)
    if not _version_at_least(request.api_version, OIDC_FROM):
        props.pop("oidcIssuerProfile", None)
        props.pop("securityProfile", None)
    return out


def on_scope_deleted(ctx, scope: str) -> None:
    """A resource group is going: its clusters' identities, issuers and uploaded keys go too."""
    with ctx.store.tx() as db:
        for body in ctx.store.under(scope, CC, db):
            _finish_delete(ctx, db, body)


def find_by_issuer(ctx, tenant: str, key: str) -> dict | None:
    """The cluster whose Arc-hosted issuer is .../arc-oidc/<tenant>/<key>/ (None when gone or disabled)."""
    rid = ctx.store.kv_get(f"arc-issuer:{tenant}/{key}".lower())
    body = settle(ctx, ctx.store.get(rid)) if rid else None
    if body is None or not ((body["properties"].get("oidcIssuerProfile") or {}).get("enabled")):
        return None
    return body


def uploaded_jwks(ctx, rid: str) -> dict | None:
    return ctx.store.kv_get("arc-jwks:" + rid.lower())


# ---- what the agents report (admin API: POST /arc/agent-report) -------------------------------------
def agent_report(ctx, envelope: dict) -> dict:
    """Record a heartbeat: payload signed with the onboarding private key, checked with the resource's key.

    envelope = {"payload": "<JSON text>", "signature": base64(RSASSA-PKCS1-v1_5 SHA-256 over the payload
    bytes)}; payload = {"resourceId", "timestamp" (unix seconds), "kubernetesVersion", "totalNodeCount",
    "totalCoreCount", "agentVersion", "jwks"}.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def refuse(status: int, code: str, message: str) -> ApiError:
        return ApiError(status, code, message)

    if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), str) or \
            not isinstance(envelope.get("signature"), str):
        raise refuse(400, "InvalidRequest", "expected {\"payload\": <JSON text>, \"signature\": <base64>}")
    try:
        payload = json.loads(envelope["payload"])
        signature = base64.b64decode(envelope["signature"], validate=True)
    except (ValueError, binascii.Error):
        raise refuse(400, "InvalidRequest", "payload must be JSON text and signature base64")
    rid = payload.get("resourceId") if isinstance(payload, dict) else None
    if not isinstance(rid, str) or not rid.lower().startswith(ctx.sub_id.lower() + "/"):
        raise refuse(404, "ResourceNotFound", f"no connected cluster '{rid}' in this sandbox's subscription")
    body = settle(ctx, ctx.store.get(rid))
    if body is None or body.get("type") != CC_TYPE:
        raise refuse(404, "ResourceNotFound", f"The Resource '{CC_TYPE}/{rid.rsplit('/', 1)[-1]}' was not found.")
    key = load_agent_key(body["properties"]["agentPublicKeyCertificate"])
    try:
        key.verify(signature, envelope["payload"].encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise refuse(403, "AgentAuthenticationFailed",
                     "The heartbeat is not signed with the private key matching agentPublicKeyCertificate.")
    ts = payload.get("timestamp")
    if not isinstance(ts, (int, float)) or abs(time.time() - ts) > REPORT_SKEW_SECONDS:
        raise refuse(400, "InvalidRequest", "timestamp missing or too far from the service's clock")
    if connectivity(ctx, body["properties"]) == "Expired":
        # the cluster identity certificate expired: agents cannot come back (delete and connect again)
        raise refuse(403, "ClusterIdentityExpired",
                     "The managed identity certificate of the connected cluster has expired; delete the "
                     "connected cluster and connect it again.")
    with ctx.store.tx() as db:
        current = ctx.store.get(rid, db)
        if current is None:
            raise refuse(404, "ResourceNotFound", f"The Resource '{CC_TYPE}/{rid.rsplit('/', 1)[-1]}' was not found.")
        props = current["properties"]
        props["connectivityStatus"] = "Connected"
        props["lastConnectivityTime"] = _now_iso()
        for name in ("kubernetesVersion", "agentVersion"):
            if isinstance(payload.get(name), str) and payload[name]:
                props[name] = payload[name]
        for name in ("totalNodeCount", "totalCoreCount"):
            if isinstance(payload.get(name), int) and not isinstance(payload.get(name), bool):
                props[name] = payload[name]
        ctx.store.put(db, current["id"], CC, _parent(current["id"]), current)
        if isinstance(payload.get("jwks"), dict) and isinstance(payload["jwks"].get("keys"), list):
            _kv_put(db, "arc-jwks:" + current["id"].lower(), payload["jwks"])
    return {"connectivityStatus": "Connected", "lastConnectivityTime": props["lastConnectivityTime"],
            "heartbeatSeconds": float(ctx.setting("arc_heartbeat_seconds"))}


# ---- ARM routes ---------------------------------------------------------------------------------------
def register(router, ctx) -> None:
    sub = "/subscriptions/{sub}"
    base = sub + "/resourcegroups/{rg}/providers/Microsoft.Kubernetes/connectedClusters"

    def op_urls(request, location: str, op: str) -> dict:
        prefix = f"{ctx.arm_url.rstrip('/')}{ctx.sub_id}/providers/{NS}/locations/{location}"
        version = quote(request.api_version or "")
        return {"Azure-AsyncOperation": f"{prefix}/operationStatuses/{op}?api-version={version}",
                "Location": f"{prefix}/operationResults/{op}?api-version={version}",
                "Retry-After": str(ctx.setting("lro_retry_after_seconds"))}

    def start_op(db, rid: str, kind: str, location: str, seconds: float) -> str:
        op = str(uuid.uuid4())
        now = time.time()
        _kv_put(db, "arc-op:" + op, {"id": op, "rid": rid, "kind": kind, "location": location, "start": now,
                                     "done_at": now + seconds})
        _kv_put(db, "arc-pending:" + rid.lower(), op)
        return op

    def get_existing(request, db=None) -> dict:
        """The cluster of the request; with db (inside a transaction) without advancing its operation."""
        rg, name = request.params["rg"], request.params["name"]
        body = ctx.store.get(cluster_id(ctx, rg, name), db)
        if db is None:
            body = settle(ctx, body)
        if body is None:
            core.require_rg(ctx, rg, db)
            raise core.not_found(CC_TYPE, name, rg)
        return body

    def list_in_rg(request):
        core.require_rg(ctx, request.params["rg"])
        items = [settle(ctx, b) for b in ctx.store.under(core.rg_id(ctx, request.params["rg"]), CC)]
        return core.page(request, [view(ctx, request, b) for b in items if b is not None], ctx.arm_url)

    def list_in_sub(request):
        items = [settle(ctx, b) for b in ctx.store.under(ctx.sub_id, CC)]
        return core.page(request, [view(ctx, request, b) for b in items if b is not None], ctx.arm_url)

    def get_cluster(request):
        return Response(200, view(ctx, request, get_existing(request)))

    def writable_properties(request, props: dict, existing: dict | None) -> dict:
        """Validate the writable properties of a PUT and merge them over the stored ones."""
        load_agent_key(props.get("agentPublicKeyCertificate"))
        merged = dict(existing["properties"]) if existing else {}
        for name in ("agentPublicKeyCertificate", "distribution", "distributionVersion", "infrastructure",
                     "privateLinkScopeResourceId"):
            if name in props:
                if props[name] is not None and not isinstance(props[name], str):
                    raise _bad(f"The property '{name}' must be a string.")
                merged[name] = props[name]
            elif name != "agentPublicKeyCertificate":
                merged.pop(name, None)
        hybrid = props.get("azureHybridBenefit", "NotApplicable")
        if hybrid not in HYBRID_BENEFIT:
            raise _bad(f"The value '{hybrid}' is not valid for azureHybridBenefit; allowed values are "
                       f"{', '.join(HYBRID_BENEFIT)}.")
        merged["azureHybridBenefit"] = hybrid
        link = props.get("privateLinkState", "Disabled")
        if link not in PRIVATE_LINK:
            raise _bad(f"The value '{link}' is not valid for privateLinkState; allowed values are "
                       f"{', '.join(PRIVATE_LINK)}.")
        merged["privateLinkState"] = link
        for name in ("aadProfile", "arcAgentProfile", "gateway"):
            value = props.get(name)
            if value is None:
                merged.pop(name, None)
                continue
            if not isinstance(value, dict):
                raise _bad(f"The property '{name}' must be an object.")
            merged[name] = value
        upgrade = (merged.get("arcAgentProfile") or {}).get("agentAutoUpgrade")
        if upgrade is not None and upgrade not in AUTO_UPGRADE:
            raise _bad(f"The value '{upgrade}' is not valid for agentAutoUpgrade; allowed values are "
                       f"{', '.join(AUTO_UPGRADE)}.")
        if _version_at_least(request.api_version, OIDC_FROM):
            merged.update(oidc_and_security(props, existing))
        return merged

    def oidc_and_security(props: dict, existing: dict | None) -> dict:
        out = {}
        before = ((existing or {}).get("properties") or {}).get("oidcIssuerProfile") or {}
        oidc = props.get("oidcIssuerProfile")
        if oidc is not None and not isinstance(oidc, dict):
            raise _bad("The property 'oidcIssuerProfile' must be an object.")
        oidc = oidc or {}
        enabled = oidc.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise _bad("The property 'oidcIssuerProfile.enabled' must be a boolean.")
        if before.get("enabled") and enabled is False:
            # AZURE_FACTS.md (az connectedk8s / Arc workload identity docs): cannot be disabled once enabled
            raise _bad("The OIDC issuer cannot be disabled once it is enabled (oidcIssuerProfile.enabled).")
        now_enabled = bool(before.get("enabled") or enabled)
        profile = {"enabled": now_enabled}
        if now_enabled:
            profile["issuerUrl"] = before.get("issuerUrl") or \
                f"{ctx.web_url}arc-oidc/{ctx.ident.tenant_id}/{uuid.uuid4()}/"
        self_hosted = oidc.get("selfHostedIssuerUrl", before.get("selfHostedIssuerUrl"))
        if self_hosted is not None:
            if not isinstance(self_hosted, str):
                raise _bad("The property 'oidcIssuerProfile.selfHostedIssuerUrl' must be a string.")
            profile["selfHostedIssuerUrl"] = self_hosted
        out["oidcIssuerProfile"] = profile
        security = props.get("securityProfile")
        if security is not None and not isinstance(security, dict):
            raise _bad("The property 'securityProfile' must be an object.")
        wi = (security or {}).get("workloadIdentity")
        if wi is not None and not isinstance(wi, dict):
            raise _bad("The property 'securityProfile.workloadIdentity' must be an object.")
        wi_enabled = (wi or {}).get("enabled")
        if wi_enabled is not None and not isinstance(wi_enabled, bool):
            raise _bad("The property 'securityProfile.workloadIdentity.enabled' must be a boolean.")
        if wi_enabled is None:
            wi_enabled = bool((((existing or {}).get("properties") or {}).get("securityProfile") or {})
                              .get("workloadIdentity", {}).get("enabled"))
        out["securityProfile"] = {"workloadIdentity": {"enabled": wi_enabled}}
        return out

    def put_cluster(request):
        rg, name = request.params["rg"], request.params["name"]
        if not name or len(name) > 260 or BAD_NAME_CHARS.search(name) or name.endswith((".", " ")):
            raise core.invalid("InvalidResourceName", f"The resource name '{name}' is invalid.")
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidRequestContent", "The request content was invalid and could not be "
                                                         "deserialized: the body must be a JSON object.")
        location = (body.get("location") or "")
        location = location.replace(" ", "").lower() if isinstance(location, str) else ""
        if not location:
            raise core.invalid("LocationRequired", "The location property is required for this definition.")
        if location not in core.LOCATIONS:
            raise core.invalid("LocationNotAvailableForResourceType",
                               f"The provided location '{location}' is not available for resource type "
                               f"'{CC_TYPE}'. List of available regions for the resource type is "
                               f"'{','.join(core.LOCATIONS)}'.")
        tags = core.validate_tags(body.get("tags"))
        identity = body.get("identity")
        if not isinstance(identity, dict):
            raise _required("identity")
        if identity.get("type") != "SystemAssigned":
            raise _bad(f"The identity type '{identity.get('type')}' is not supported for a connected cluster; "
                       "the identity type must be 'SystemAssigned'.")
        props = body.get("properties")
        if not isinstance(props, dict):
            raise _required("properties")
        if "agentPublicKeyCertificate" not in props:
            raise _required("agentPublicKeyCertificate")
        rid = cluster_id(ctx, rg, name)
        settle(ctx, ctx.store.get(rid))  # finish a due operation first (settle writes in its own transaction)
        with ctx.store.tx() as db:
            core.require_rg(ctx, rg, db)
            existing = ctx.store.get(rid, db)
            if existing is not None and (_pending(ctx, rid) or {}).get("kind") == "delete":
                raise ApiError(409, "Conflict", f"The connected cluster '{name}' is being deleted.")
            if existing is not None and existing["location"] != location:
                raise core.invalid("InvalidResourceLocation",
                                   f"The resource '{name}' already exists in location '{existing['location']}' "
                                   f"in resource group '{rg}'. A resource with the same name cannot be created "
                                   f"in location '{location}'. Please select a new resource name.")
            merged = writable_properties(request, props, existing)
            now = _now_iso()
            oid = (request.principal or {}).get("oid", "")
            if existing is None:
                principal_id = str(uuid.uuid4())
                merged.update({"provisioningState": "Accepted", "connectivityStatus": "Connecting"})
                new = {"id": rid, "name": name, "type": CC_TYPE, "location": location, "tags": tags,
                       "identity": {"type": "SystemAssigned", "principalId": principal_id,
                                    "tenantId": ctx.ident.tenant_id},
                       "systemData": {"createdBy": oid, "createdByType": "Application", "createdAt": now,
                                      "lastModifiedBy": oid, "lastModifiedByType": "Application",
                                      "lastModifiedAt": now},
                       "properties": merged}
                if body.get("kind") is not None:
                    new["kind"] = body["kind"]
                ctx.store.put(db, rid, CC, core.rg_id(ctx, rg), new)
                ctx.store.add_principal(db, object_id=principal_id, app_id=str(uuid.uuid4()),
                                        tenant_id=ctx.ident.tenant_id, display_name=name, kind="managedIdentity",
                                        resource_id=rid)
                op = start_op(db, rid, "create", location, float(ctx.setting("arc_provisioning_seconds")))
                status, result = 201, new
            else:
                merged["provisioningState"] = "Updating"
                existing.update({"tags": tags, "properties": merged})
                existing["systemData"].update({"lastModifiedBy": oid, "lastModifiedByType": "Application",
                                               "lastModifiedAt": now})
                ctx.store.put(db, existing["id"], CC, core.rg_id(ctx, rg), existing)
                op = start_op(db, existing["id"], "update", location, float(ctx.setting("arc_provisioning_seconds")))
                status, result = 200, existing
            issuer = _issuer_key(result)
            if issuer:
                _kv_put(db, "arc-issuer:" + issuer, result["id"])
        headers = op_urls(request, location, op)
        headers.pop("Location")
        return Response(status, view(ctx, request, result), headers)

    def patch_cluster(request):
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidRequestContent", "The request content was invalid and could not be "
                                                         "deserialized: the body must be a JSON object.")
        get_existing(request)  # 404s, and finishes a due operation outside the transaction below
        with ctx.store.tx() as db:
            existing = get_existing(request, db)
            if "tags" in body:
                existing["tags"] = core.validate_tags(body["tags"])
            props = body.get("properties") or {}
            if not isinstance(props, dict):
                raise _bad("The property 'properties' must be an object.")
            for name in ("distribution", "distributionVersion"):
                if name in props:
                    if props[name] is not None and not isinstance(props[name], str):
                        raise _bad(f"The property '{name}' must be a string.")
                    existing["properties"][name] = props[name]
            if "azureHybridBenefit" in props:
                if props["azureHybridBenefit"] not in HYBRID_BENEFIT:
                    raise _bad(f"The value '{props['azureHybridBenefit']}' is not valid for azureHybridBenefit; "
                               f"allowed values are {', '.join(HYBRID_BENEFIT)}.")
                existing["properties"]["azureHybridBenefit"] = props["azureHybridBenefit"]
            if "gateway" in props and _version_at_least(request.api_version, PATCH_GATEWAY_FROM):
                if not isinstance(props["gateway"], dict):
                    raise _bad("The property 'gateway' must be an object.")
                existing["properties"]["gateway"] = props["gateway"]
            # anything else (oidcIssuerProfile, securityProfile, read-only properties) is not part of
            # ConnectedClusterPatch in any api-version: ignored, as PUT is the way to change those
            oid = (request.principal or {}).get("oid", "")
            existing["systemData"].update({"lastModifiedBy": oid, "lastModifiedByType": "Application",
                                           "lastModifiedAt": _now_iso()})
            ctx.store.put(db, existing["id"], CC, _parent(existing["id"]), existing)
        return Response(200, view(ctx, request, existing))

    def delete_cluster(request):
        rg, name = request.params["rg"], request.params["name"]
        rid = cluster_id(ctx, rg, name)
        existing = settle(ctx, ctx.store.get(rid))
        if existing is None:
            core.require_rg(ctx, rg)
            return Response(204)
        from . import authorization
        blocking = authorization.blocking_locks(ctx, rid)
        if blocking:
            raise ApiError(409, "ScopeLocked",
                           f"The scope '{rid}' cannot perform delete operation because following scope(s) are "
                           f"locked: '{', '.join(blocking)}'. Please remove the lock and try again.")
        pending = _pending(ctx, existing["id"])
        with ctx.store.tx() as db:
            if pending and pending["kind"] == "delete":
                op = pending["id"]
            else:
                existing["properties"]["provisioningState"] = "Deleting"
                ctx.store.put(db, existing["id"], CC, _parent(existing["id"]), existing)
                op = start_op(db, existing["id"], "delete", existing["location"],
                              float(ctx.setting("arc_delete_seconds")))
        return Response(202, headers=op_urls(request, existing["location"], op))

    def operation(request) -> dict:
        op = ctx.store.kv_get("arc-op:" + request.params["op"])
        if op is None or op["location"].lower() != request.params["location"].lower():
            raise ApiError(404, "ResourceNotFound", f"The async operation '{request.params['op']}' was not found.")
        core.authorize(ctx, request, f"{CC_TYPE}/read", op["rid"])
        settle(ctx, ctx.store.get(op["rid"]))
        return op

    def operation_status(request):
        op = operation(request)
        done = time.time() >= op["done_at"]
        out = {"id": f"{ctx.sub_id}/providers/{NS}/locations/{op['location']}/operationStatuses/{op['id']}",
               "name": op["id"], "resourceId": op["rid"], "status": "Succeeded" if done else "InProgress",
               "startTime": _now_iso(op["start"])}
        if done:
            out["endTime"] = _now_iso(op["done_at"])
            return Response(200, out)
        return Response(200, out, {"Retry-After": str(ctx.setting("lro_retry_after_seconds"))})

    def operation_result(request):
        op = operation(request)
        if time.time() < op["done_at"]:
            return Response(202, headers={"Location": f"{ctx.arm_url.rstrip('/')}{request.raw_path}?"
                                                      f"{request.query_string}",
                                          "Retry-After": str(ctx.setting("lro_retry_after_seconds"))})
        return Response(204)

    opts = dict(api=CC, provider=NS)
    router.add("GET", sub + "/providers/Microsoft.Kubernetes/connectedClusters", list_in_sub,
               action=f"{CC_TYPE}/read", **opts)
    router.add("GET", base, list_in_rg, action=f"{CC_TYPE}/read", **opts)
    router.add("GET", base + "/{name}", get_cluster, action=f"{CC_TYPE}/read", **opts)
    router.add("PUT", base + "/{name}", put_cluster, action=f"{CC_TYPE}/write", **opts)
    router.add("PATCH", base + "/{name}", patch_cluster, action=f"{CC_TYPE}/write", **opts)
    router.add("DELETE", base + "/{name}", delete_cluster, action=f"{CC_TYPE}/delete", **opts)
    # polling is authorised as a read of the cluster the operation works on (checked in the handler)
    router.add("GET", sub + "/providers/Microsoft.Kubernetes/locations/{location}/operationStatuses/{op}",
               operation_status, api=OPS, provider=NS)
    router.add("GET", sub + "/providers/Microsoft.Kubernetes/locations/{location}/operationResults/{op}",
               operation_result, api=OPS, provider=NS)
