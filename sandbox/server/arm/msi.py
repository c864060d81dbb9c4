"""Microsoft.ManagedIdentity: user-assigned identities and their federated identity credentials.

Sources:
- REST: azure-rest-api-specs specification/msi/resource-manager (2023-01-31, 2024-11-30):
  PUT 201 created / 200 updated; GET; PATCH; DELETE 200 or 204; lists with value + nextLink.
- FIC rules: learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations:
  at most 20 per identity; issuer+subject unique ("Issuer and subject combination already exists
  for this Managed Identity."); name 3-120 chars `^[a-zA-Z0-9]{1}[a-zA-Z0-9-_]{2,119}$`, immutable;
  issuer https, at most 600 chars, leading/trailing whitespace blocks the exchange; subject at most
  600 chars, case-sensitive; exactly one audience ("Federated identity credentials must have exactly
  one audience."); no wildcards.
- Concurrency: "Too many Federated Identity Credentials are written concurrently for the managed
  identity '<id>'. Concurrent Federated Identity Credentials writes under the same managed identity
  are not supported." HTTP 409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity
  (same considerations page; Terraform azurerm serialises these writes since 3.40.0).
- Managed identity names: 3-128 characters, letters, digits, hyphens and underscores, starting with a
  letter or digit (learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules).
"""
from __future__ import annotations

import re
import threading
import time
import uuid
from urllib.parse import urlsplit

from ..http import ApiError, Response
from . import core

UAI = "microsoft.managedidentity/userassignedidentities"
FIC = "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials"
UAI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
FIC_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"

IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
FIC_NAME = re.compile(r"^[a-zA-Z0-9]{1}[a-zA-Z0-9-_]{2,119}$")
MAX_FICS = 20
FIC_PAGE_SIZE = 10

_writing: dict[str, float] = {}
_writing_lock = threading.Lock()


def identity_id(ctx, rg: str, name: str) -> str:
    return f"{core.rg_id(ctx, rg)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"


def fic_written_at(ctx, fic_id: str) -> float:
    return ctx.store.kv_get("fic-written:" + fic_id.lower()) or 0.0


def fics_of_client(ctx, client_id: str) -> tuple[dict | None, list[dict]]:
    """For the Entra emulator: the identity with this client id and its FICs."""
    principal = ctx.store.principal_by_app(client_id)
    if principal is None or principal["kind"] != "managedIdentity":
        return None, []
    identity = ctx.store.get(principal["resource_id"])
    if identity is None:
        return None, []
    return identity, ctx.store.children(identity["id"], FIC)


def on_scope_deleted(ctx, scope: str) -> None:
    """A resource group is going: its identities' principals go with it."""
    for identity in ctx.store.under(scope, UAI):
        _drop_principal(ctx, identity)


def _drop_principal(ctx, identity: dict) -> None:
    with ctx.store.tx() as db:
        db.execute("DELETE FROM principals WHERE object_id = ?", (identity["properties"]["principalId"].lower(),))
        db.execute("DELETE FROM kv WHERE key LIKE ?", ("fic-written:" + identity["id"].lower() + "/%",))


def register(router, ctx) -> None:
    base = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
    ns = "Microsoft.ManagedIdentity"

    # ---- identities -------------------------------------------------------------------------
    def list_in_rg(request):
        core.require_rg(ctx, request.params["rg"])
        items = ctx.store.under(core.rg_id(ctx, request.params["rg"]), UAI)
        return core.page(request, items, ctx.arm_url)

    def list_in_sub(request):
        return core.page(request, ctx.store.under(ctx.sub_id, UAI), ctx.arm_url)

    def get_identity(request):
        rg, name = request.params["rg"], request.params["name"]
        body = ctx.store.get(identity_id(ctx, rg, name))
        if body is None:
            core.require_rg(ctx, rg)
            raise core.not_found(UAI_TYPE, name, rg)
        return Response(200, body)

    def put_identity(request):
        rg, name = request.params["rg"], request.params["name"]
        if not IDENTITY_NAME.match(name):
            raise core.invalid("InvalidResourceName",
                               f"Resource name {name} is invalid. The name can be between 3 and 128 characters long, "
                               "can contain only alphanumeric characters, hyphens and underscores, and must start "
                               "with a letter or number.")
        body = request.json()
        location = (body.get("location") or "").replace(" ", "").lower()
        if not location:
            raise core.invalid("LocationRequired", "The location property is required for this definition.")
        if location not in core.LOCATIONS:
            raise core.invalid("LocationNotAvailableForResourceType",
                               f"The provided location '{location}' is not available for resource type "
                               f"'{UAI_TYPE}'. List of available regions for the resource type is "
                               f"'{','.join(core.LOCATIONS)}'.")
        tags = core.validate_tags(body.get("tags"))
        isolation = (body.get("properties") or {}).get("isolationScope", "None")
        if isolation not in ("None", "Regional"):
            raise core.invalid("InvalidRequestContent", f"isolationScope '{isolation}' is not valid; "
                                                        "allowed values are 'None' and 'Regional'.")
        rid = identity_id(ctx, rg, name)
        core.throttle_msi_write(ctx, rid)
        with ctx.store.tx() as db:
            core.require_rg(ctx, rg, db)
            existing = ctx.store.get(rid, db)
            if existing:
                if existing["location"] != location:
                    raise core.invalid("InvalidResourceLocation",
                                       f"The resource '{name}' already exists in location '{existing['location']}' "
                                       f"in resource group '{rg}'. A resource with the same name cannot be created "
                                       f"in location '{location}'. Please select a new resource name.")
                existing["tags"] = tags
                existing["properties"]["isolationScope"] = isolation
                ctx.store.put(db, existing["id"], UAI, core.rg_id(ctx, rg), existing)
                return Response(200, existing)
            principal_id, client_id = str(uuid.uuid4()), str(uuid.uuid4())
            new = {
                "id": rid, "name": name, "type": UAI_TYPE, "location": location, "tags": tags,
                "properties": {"tenantId": ctx.ident.tenant_id, "principalId": principal_id,
                               "clientId": client_id, "isolationScope": isolation},
            }
            ctx.store.put(db, rid, UAI, core.rg_id(ctx, rg), new)
            ctx.store.add_principal(db, object_id=principal_id, app_id=client_id, tenant_id=ctx.ident.tenant_id,
                                    display_name=name, kind="managedIdentity", resource_id=rid)
        return Response(201, new)

    def patch_identity(request):
        rg, name = request.params["rg"], request.params["name"]
        body = request.json()
        rid = identity_id(ctx, rg, name)
        core.throttle_msi_write(ctx, rid)
        with ctx.store.tx() as db:
            existing = ctx.store.get(rid, db)
            if existing is None:
                core.require_rg(ctx, rg, db)
                raise core.not_found(UAI_TYPE, name, rg)
            if "tags" in body:
                existing["tags"] = core.validate_tags(body["tags"])
            if body.get("location") and body["location"].replace(" ", "").lower() != existing["location"]:
                raise core.invalid("InvalidResourceLocation", "The location of an identity cannot be changed.")
            ctx.store.put(db, existing["id"], UAI, core.rg_id(ctx, rg), existing)
        return Response(200, existing)

    def delete_identity(request):
        rg, name = request.params["rg"], request.params["name"]
        rid = identity_id(ctx, rg, name)
        existing = ctx.store.get(rid)
        if existing is None:
            core.require_rg(ctx, rg)
            return Response(204)
        from . import authorization
        blocking = authorization.blocking_locks(ctx, rid)
        if blocking:
            raise ApiError(409, "ScopeLocked",
                           f"The scope '{rid}' cannot perform delete operation because following scope(s) are "
                           f"locked: '{', '.join(blocking)}'. Please remove the lock and try again.")
        core.throttle_msi_write(ctx, rid)
        _drop_principal(ctx, existing)
        with ctx.store.tx() as db:
            ctx.store.delete(db, rid)
        return Response(200)

    opts = dict(api=UAI, provider=ns)
    router.add("GET", "/subscriptions/{sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", list_in_sub,
               action=f"{UAI_TYPE}/read", **opts)
    router.add("GET", base, list_in_rg, action=f"{UAI_TYPE}/read", **opts)
    router.add("GET", base + "/{name}", get_identity, action=f"{UAI_TYPE}/read", **opts)
    router.add("PUT", base + "/{name}", put_identity, action=f"{UAI_TYPE}/write", **opts)
    router.add("PATCH", base + "/{name}", patch_identity, action=f"{UAI_TYPE}/write", **opts)
    router.add("DELETE", base + "/{name}", delete_identity, action=f"{UAI_TYPE}/delete", **opts)

    # ---- federated identity credentials -------------------------------------------------------
    def parent(request, db=None) -> dict:
        rg, name = request.params["rg"], request.params["name"]
        body = ctx.store.get(identity_id(ctx, rg, name), db)
        if body is None:
            core.require_rg(ctx, rg, db)
            raise core.not_found(UAI_TYPE, name, rg)
        return body

    def list_fics(request):
        identity = parent(request)
        return core.page(request, ctx.store.children(identity["id"], FIC), ctx.arm_url, size=FIC_PAGE_SIZE)

    def get_fic(request):
        identity = parent(request)
        body = ctx.store.get(identity["id"] + "/federatedIdentityCredentials/" + request.params["fic"])
        if body is None:
            raise core.not_found(f"{UAI_TYPE}/federatedIdentityCredentials",
                                 f"{identity['name']}/{request.params['fic']}", request.params["rg"])
        return Response(200, body)

    def validate_fic(name: str, props: dict) -> tuple[str, str, list]:
        if not FIC_NAME.match(name):
            raise core.invalid("BadRequest",
                               f"Invalid federated identity credential name '{name}'. The name must be 3 to 120 "
                               "characters long, start with a letter or number, and contain only letters, "
                               "numbers, hyphens and underscores.")
        if not isinstance(props, dict):
            raise core.invalid("InvalidRequestContent", "The request content must contain 'properties'.")
        if "claimsMatchingExpression" in props:
            raise core.invalid("BadRequest", "Flexible federated identity credentials (claimsMatchingExpression) "
                                             "are not supported for this issuer; specify issuer and subject.")
        issuer, subject, audiences = props.get("issuer"), props.get("subject"), props.get("audiences")
        if not isinstance(issuer, str) or not issuer:
            raise core.invalid("BadRequest", "The issuer of a federated identity credential is required.")
        if len(issuer) > 600:
            raise core.invalid("BadRequest", "The issuer of a federated identity credential cannot exceed "
                                             "600 characters.")
        if issuer != issuer.strip() or re.search(r"\s", issuer):
            raise core.invalid("BadRequest", "The issuer of a federated identity credential must not contain "
                                             "whitespace.")
        parts = urlsplit(issuer)
        if parts.scheme != "https" or not parts.netloc:
            raise core.invalid("BadRequest", "The issuer of a federated identity credential must be a valid URL "
                                             "with the 'https' scheme.")
        if "*" in issuer:
            raise core.invalid("BadRequest", "Wildcards are not supported in the issuer of a federated identity "
                                             "credential.")
        if not isinstance(subject, str) or not subject:
            raise core.invalid("BadRequest", "The subject of a federated identity credential is required.")
        if len(subject) > 600:
            raise core.invalid("BadRequest", "The subject of a federated identity credential cannot exceed "
                                             "600 characters.")
        if "*" in subject:
            raise core.invalid("BadRequest", "Wildcards are not supported in the subject of a federated identity "
                                             "credential.")
        if not isinstance(audiences, list) or len(audiences) != 1:
            raise core.invalid("BadRequest", "Federated identity credentials must have exactly one audience.")
        if not isinstance(audiences[0], str) or not audiences[0] or len(audiences[0]) > 600:
            raise core.invalid("BadRequest", "The audience of a federated identity credential must be a non-empty "
                                             "string of at most 600 characters.")
        return issuer, subject, audiences

    def begin_fic_write(identity: dict) -> None:
        key = identity["id"].lower()
        with _writing_lock:
            if _writing.get(key, 0) > time.monotonic():
                raise ApiError(409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                               "Too many Federated Identity Credentials are written concurrently for the managed "
                               f"identity '{identity['id']}'. Concurrent Federated Identity Credentials writes under "
                               "the same managed identity are not supported.")
            _writing[key] = time.monotonic() + float(ctx.setting("fic_write_seconds"))

    def end_fic_write(identity: dict) -> None:
        key = identity["id"].lower()
        remaining = _writing.get(key, 0) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)  # the write takes this long; overlapping writes collide meanwhile
        with _writing_lock:
            _writing.pop(key, None)

    def put_fic(request):
        name = request.params["fic"]
        body = request.json()
        issuer, subject, audiences = validate_fic(name, body.get("properties"))
        identity = parent(request)
        fid = identity["id"] + "/federatedIdentityCredentials/" + name
        core.throttle_msi_write(ctx, fid)
        begin_fic_write(identity)
        try:
            with ctx.store.tx() as db:
                siblings = ctx.store.children(identity["id"], FIC, db)
                existing = next((f for f in siblings if f["name"].lower() == name.lower()), None)
                others = [f for f in siblings if f is not existing]
                if existing is None and len(siblings) >= MAX_FICS:
                    raise core.invalid("BadRequest",
                                       f"The managed identity '{identity['id']}' already has the maximum number of "
                                       f"{MAX_FICS} federated identity credentials.")
                for other in others:
                    if other["properties"]["issuer"] == issuer and other["properties"]["subject"] == subject:
                        raise core.invalid("BadRequest",
                                           "Issuer and subject combination already exists for this Managed Identity.")
                new = {"id": existing["id"] if existing else fid,
                       "name": existing["name"] if existing else name,
                       "type": FIC_TYPE,
                       "properties": {"issuer": issuer, "subject": subject, "audiences": audiences}}
                ctx.store.put(db, new["id"], FIC, identity["id"], new)
                db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                           "excluded.value", ("fic-written:" + new["id"].lower(), str(time.time())))
        finally:
            end_fic_write(identity)
        return Response(200 if existing else 201, new)

    def delete_fic(request):
        identity = parent(request)
        fid = identity["id"] + "/federatedIdentityCredentials/" + request.params["fic"]
        if ctx.store.get(fid) is None:
            return Response(204)
        core.throttle_msi_write(ctx, fid)
        begin_fic_write(identity)
        try:
            with ctx.store.tx() as db:
                ctx.store.delete(db, fid)
                db.execute("DELETE FROM kv WHERE key = ?", ("fic-written:" + fid.lower(),))
        finally:
            end_fic_write(identity)
        return Response(200)

    fopts = dict(api=FIC, provider=ns)
    ftype = f"{UAI_TYPE}/federatedIdentityCredentials"
    router.add("GET", base + "/{name}/federatedIdentityCredentials", list_fics, action=f"{ftype}/read", **fopts)
    router.add("GET", base + "/{name}/federatedIdentityCredentials/{fic}", get_fic, action=f"{ftype}/read", **fopts)
    router.add("PUT", base + "/{name}/federatedIdentityCredentials/{fic}", put_fic, action=f"{ftype}/write", **fopts)
    router.add("DELETE", base + "/{name}/federatedIdentityCredentials/{fic}", delete_fic, action=f"{ftype}/delete",
               **fopts)
