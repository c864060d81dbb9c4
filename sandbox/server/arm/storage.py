"""Microsoft.Storage: storage accounts (LRO create, keys, name checks), blob service properties, containers.

Every account created here really exists in Azurite (declared at its start, or added by a restart with
the data kept; see ../azurite.py); containers are created there through the data plane with the
account key, so `primaryEndpoints.blob` and `listKeys` work with azure-storage-blob as against Azure.

Sources:
- REST: azure-rest-api-specs specification/storage/resource-manager/Microsoft.Storage (StorageAccount,
  BlobServiceProperties.tsp, BlobContainer.tsp and their examples): StorageAccounts_Create is a
  long-running PUT answering 202 (Location + Retry-After) or 200; GET/PATCH/DELETE (200, or 204 when
  absent); POST listKeys / regenerateKey; POST checkNameAvailability; blobServices/default GET/PUT
  (PUT answers 200); BlobContainers_Create is a synchronous create-or-replace (201 created, 200
  replaced) and BlobContainers_Delete a synchronous delete (200, 204 when absent). The Create polling
  URL has the form /subscriptions/{sub}/providers/Microsoft.Storage/locations/{location}/
  asyncoperations/{id}?monitor=true (what the storage resource provider returns).
- Account names and their errors: learn.microsoft.com/azure/azure-resource-manager/troubleshooting/
  error-storage-account-name: AccountNameInvalid "<name> is not a valid storage account name. Storage
  account name must be between 3 and 24 characters in length and use numbers and lower-case letters
  only."; InvalidResourceLocation; StorageAccountInAnotherResourceGroup "The account <name> is
  already in another resource group in this subscription."; StorageAccountAlreadyTaken "The storage
  account named <name> is already taken.". checkNameAvailability answers the same messages with
  reason AccountNameInvalid / AlreadyExists (Azure SDK for .NET storage tests, CheckNameAvailability).
- InvalidValuesForRequestParameters "Values for request parameters are invalid: kind, sku." for
  missing or unsupported sku/kind combinations (az CLI issue 27899, terraform-provider-azurerm 8089).
- allowBlobPublicAccess: "The default interpretation is false for this property" in the spec of recent
  api-versions (2023-01-01 and later; earlier versions say true).
- A container with public access on an account that disallows it: 409 PublicAccessNotPermitted
  "Public access is not permitted on this storage account." (learn.microsoft.com/azure/storage/blobs/
  anonymous-read-access-prevent; the same code reaches ARM/Bicep deployments of containers,
  bicep-types-az issue 2147).
- Container names: 3-63 characters, lower-case letters, digits and dashes, every dash preceded and
  followed by a letter or digit (BlobContainer.tsp; data-plane naming rules). Data-plane errors
  InvalidResourceName "The specifed resource name contains invalid characters." (sic) and
  OutOfRangeInput "The specified resource name length is not within the permissible limits.".
- Locks (learn.microsoft.com/azure/azure-resource-manager/management/lock-resources): CanNotDelete
  blocks deleting the account and its child resources (containers); a ReadOnly lock blocks listKeys
  and regenerateKey, which are POST operations.
- Static website is a data-plane setting (Set Blob Service Properties); api-version 2026-04-01 and
  later also carry `staticWebsite` in blobServices/default (BlobServicesPut example of 2026-04-01).
  Enabling it through ARM creates the `$web` container, as Azure does.
"""
from __future__ import annotations

import base64
import re
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

from ..http import ApiError, Response
from . import core

SA = "microsoft.storage/storageaccounts"
BS = "microsoft.storage/storageaccounts/blobservices"
CT = "microsoft.storage/storageaccounts/blobservices/containers"
SA_TYPE = "Microsoft.Storage/storageAccounts"
BS_TYPE = "Microsoft.Storage/storageAccounts/blobServices"
CT_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers"
NS = "Microsoft.Storage"

ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
CONTAINER_CHARS = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
SPECIAL_CONTAINERS = ("$root", "$web", "$logs")
KINDS = ("Storage", "StorageV2", "BlobStorage", "FileStorage", "BlockBlobStorage")
SKUS = ("Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS",
        "Standard_GZRS", "Standard_RAGZRS", "StandardV2_LRS", "StandardV2_GRS", "StandardV2_ZRS",
        "StandardV2_GZRS", "PremiumV2_LRS", "PremiumV2_ZRS")
READ_ONLY_PROPERTIES = ("provisioningState", "creationTime", "primaryEndpoints", "primaryLocation", "statusOfPrimary",
                        "secondaryEndpoints", "secondaryLocation", "statusOfSecondary", "keyCreationTime",
                        "lastGeoFailoverTime", "geoReplicationStats", "blobRestoreStatus")
TLS_VERSIONS = ("TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3")
PUBLIC_ACCESS = {"none": "None", "blob": "Blob", "container": "Container"}
KEY_NAMES = ("key1", "key2")
# api-versions from which new accounts disallow public blob access unless told otherwise
PUBLIC_ACCESS_DEFAULT_FALSE_FROM = "2023-01-01"
# api-versions from which blobServices/default carries staticWebsite
STATIC_WEBSITE_ARM_FROM = "2026-04-01"

_threads: dict[str, threading.Thread] = {}
_threads_lock = threading.Lock()


# ---- helpers ------------------------------------------------------------------------------------
def account_id(ctx, rg: str, name: str) -> str:
    return f"{core.rg_id(ctx, rg)}/providers/Microsoft.Storage/storageAccounts/{name}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _new_key() -> str:
    # Azure account keys: base64 of 64 random bytes (88 characters)
    return base64.b64encode(secrets.token_bytes(64)).decode()


def _keys(ctx, name: str) -> dict | None:
    return ctx.store.kv_get("storage-keys:" + name.lower())


def account_keys(ctx, name: str) -> list[str] | None:
    """[key1, key2] of an account, for the web endpoint and Azurite."""
    keys = _keys(ctx, name)
    return [keys["key1"], keys["key2"]] if keys else None


def find_account(ctx, name: str) -> dict | None:
    for body in ctx.store.of_type(SA):
        if body["name"].lower() == name.lower():
            return body
    return None


def accounts(ctx) -> dict:
    """name -> [key1, key2] of every account (Azurite is started with these)."""
    result = {}
    for body in ctx.store.of_type(SA):
        keys = account_keys(ctx, body["name"])
        if keys:
            result[body["name"]] = keys
    return result


def on_scope_deleted(ctx, scope: str) -> None:
    """A resource group is going: its accounts leave Azurite (and their names become free)."""
    names = [body["name"] for body in ctx.store.under(scope, SA)]
    if not names:
        return
    if ctx.azurite is not None:
        ctx.azurite.remove_accounts(names)
    with ctx.store.tx() as db:
        for name in names:
            db.execute("DELETE FROM kv WHERE key = ?", ("storage-keys:" + name.lower(),))
            db.execute("DELETE FROM kv WHERE key = ?", ("storage-pending:" + name.lower(),))


def _version_at_least(request, version: str) -> bool:
    return (request.api_version or "") >= version


def _invalid_values(*names: str) -> ApiError:
    return ApiError(400, "InvalidValuesForRequestParameters",
                    f"Values for request parameters are invalid: {', '.join(names)}.")


def _scope_locked(rid: str, scopes: list[str], operation: str) -> ApiError:
    return ApiError(409, "ScopeLocked",
                    f"The scope '{rid}' cannot perform {operation} operation because following scope(s) are "
                    f"locked: '{', '.join(scopes)}'. Please remove the lock and try again.")


def _data_plane_error(exc) -> ApiError:
    """A data-plane failure surfaced through ARM (the storage RP passes the service's code on)."""
    code = getattr(exc, "error_code", None) or "ContainerOperationFailure"
    status = getattr(exc, "status_code", None) or 500
    message = str(getattr(exc, "message", "") or exc).split("\n")[0]
    return ApiError(status if 400 <= status < 600 else 500, str(code), message)


def _settle(ctx, body: dict) -> dict:
    """Finish a create whose time is up and whose Azurite account answers."""
    if body["properties"].get("provisioningState") != "Creating":
        return body
    pending = ctx.store.kv_get("storage-pending:" + body["name"].lower())
    if pending and pending.get("error"):
        return body
    done_at = (pending or {}).get("done_at", 0)
    if time.time() < done_at or ctx.azurite is None or not ctx.azurite.has_account(body["name"]):
        return body
    with ctx.store.tx() as db:
        current = ctx.store.get(body["id"], db)
        if current is None:
            return body
        if current["properties"].get("provisioningState") == "Creating":
            current["properties"]["provisioningState"] = "Succeeded"
            ctx.store.put(db, current["id"], SA, _parent_of(current["id"]), current)
        db.execute("DELETE FROM kv WHERE key = ?", ("storage-pending:" + body["name"].lower(),))
    return current


def _parent_of(rid: str) -> str:
    return rid.split("/providers/", 1)[0]


def _get_account(ctx, rg: str, name: str, db=None) -> dict:
    body = ctx.store.get(account_id(ctx, rg, name), db)
    if body is None:
        core.require_rg(ctx, rg, db)
        raise core.not_found(SA_TYPE, name, rg)
    return body


def _ensure_in_azurite(ctx, name: str) -> None:
    keys = account_keys(ctx, name)
    if ctx.azurite is not None and keys and not ctx.azurite.has_account(name):
        ctx.azurite.ensure_account(name, keys)


def _name_error(name: str) -> str:
    return (f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 "
            "characters in length and use numbers and lower-case letters only.")


def _check_container_name(name: str) -> None:
    if name in SPECIAL_CONTAINERS:
        return
    if not 3 <= len(name) <= 63:
        raise ApiError(400, "OutOfRangeInput", "The specified resource name length is not within the permissible "
                                               "limits.")
    if not CONTAINER_CHARS.match(name):
        raise ApiError(400, "InvalidResourceName", "The specifed resource name contains invalid characters.")


# ---- Azurite side of public access ----------------------------------------------------------------
def _sdk_access(value: str):
    return {"None": None, "Blob": "blob", "Container": "container"}[value]


def _apply_access(ctx, account: str, container: str, value: str) -> None:
    """Set a container's public access in Azurite, keeping its stored access policies."""
    from azure.storage.blob import AccessPolicy

    client = ctx.azurite.client(account).get_container_client(container)
    try:
        current = client.get_container_access_policy()
        identifiers = {si.id: si.access_policy or AccessPolicy() for si in current.get("signed_identifiers") or []}
        client.set_container_access_policy(signed_identifiers=identifiers, public_access=_sdk_access(value))
    finally:
        client.close()


def _sync_public_access(ctx, account_body: dict) -> None:
    """allowBlobPublicAccess false overrides every container's level (Azure: "This enhanced security
    setting for a storage account overrides the individual settings for blob containers").
    Azure answers anonymous requests on such an account with 409 PublicAccessNotPermitted while keeping
    each container's setting: the blob endpoint (blob.py) answers so. Behind it, the containers are also
    made private in Azurite, and their level is restored when public access is allowed again."""
    name = account_body["name"]
    allowed = bool(account_body["properties"].get("allowBlobPublicAccess"))
    if ctx.azurite is None or not ctx.azurite.has_account(name):
        return
    intents = {c["name"]: c["properties"].get("publicAccess", "None")
               for c in ctx.store.children(account_body["id"] + "/blobServices/default", CT)}
    with ctx.azurite.using():
        service = ctx.azurite.client(name)
        try:
            for item in service.list_containers():
                actual = PUBLIC_ACCESS.get((item.public_access or "none").lower(), "None")
                if allowed:
                    wanted = intents.get(item.name, actual)
                else:
                    # while public access was allowed, Azurite's level was the truth: keep it aside
                    _remember_intent(ctx, account_body, item.name, actual)
                    wanted = "None"
                if wanted != actual:
                    _apply_access(ctx, name, item.name, wanted)
        finally:
            service.close()


def _remember_intent(ctx, account_body: dict, container: str, value: str) -> None:
    cid = f"{account_body['id']}/blobServices/default/containers/{container}"
    body = ctx.store.get(cid) or _container_body(cid, container, value, {}, None, None)
    body["properties"]["publicAccess"] = value
    with ctx.store.tx() as db:
        ctx.store.put(db, cid, CT, account_body["id"] + "/blobServices/default", body)


def _container_body(cid: str, name: str, public_access: str, metadata: dict, etag, last_modified) -> dict:
    return {
        "id": cid, "name": name, "type": CT_TYPE, "etag": etag or f"\"0x{uuid.uuid4().hex[:15].upper()}\"",
        "properties": {
            "publicAccess": public_access, "leaseStatus": "Unlocked", "leaseState": "Available",
            "lastModifiedTime": last_modified or _now(), "metadata": metadata or {},
            "hasImmutabilityPolicy": False, "hasLegalHold": False, "deleted": False, "remainingRetentionDays": 0,
            "defaultEncryptionScope": "$account-encryption-key", "denyEncryptionScopeOverride": False,
        },
    }


def _iso(dt) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def register(router, ctx) -> None:
    sub = "/subscriptions/{sub}"
    base = sub + "/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts"
    acct = base + "/{name}"
    opts = dict(api=SA, provider=NS)

    # ---- storage accounts ---------------------------------------------------------------------
    def list_in_sub(request):
        items = [_settle(ctx, b) for b in ctx.store.under(ctx.sub_id, SA)]
        return core.page(request, items, ctx.arm_url)

    def list_in_rg(request):
        core.require_rg(ctx, request.params["rg"])
        items = [_settle(ctx, b) for b in ctx.store.under(core.rg_id(ctx, request.params["rg"]), SA)]
        return core.page(request, items, ctx.arm_url)

    def get_account(request):
        body = _get_account(ctx, request.params["rg"], request.params["name"])
        return Response(200, _settle(ctx, body))

    def validate_create(request, body: dict) -> tuple[str, dict, str]:
        location = (body.get("location") or "").replace(" ", "").lower()
        if not location:
            raise core.invalid("LocationRequired", "The location property is required for this definition.")
        if location not in core.LOCATIONS:
            raise core.invalid("LocationNotAvailableForResourceType",
                               f"The provided location '{location}' is not available for resource type "
                               f"'{SA_TYPE}'. List of available regions for the resource type is "
                               f"'{','.join(core.LOCATIONS)}'.")
        sku = body.get("sku")
        kind = body.get("kind")
        bad = []
        if not isinstance(kind, str) or kind not in KINDS:
            bad.append("kind")
        if not isinstance(sku, dict) or sku.get("name") not in SKUS:
            bad.append("sku")
        if bad:
            raise _invalid_values(*bad)
        sku_name = sku["name"]
        premium_only = kind in ("FileStorage", "BlockBlobStorage")
        if (premium_only and not sku_name.startswith("Premium")) or \
                (sku_name.startswith(("StandardV2", "PremiumV2")) and kind != "FileStorage") or \
                (kind == "BlobStorage" and sku_name.startswith("Premium")):
            raise _invalid_values("kind", "sku")
        return location, {"name": sku_name, "tier": "Premium" if sku_name.startswith("Premium") else "Standard"}, kind

    def validate_properties(request, props: dict, kind: str, creating: bool) -> dict:
        if not isinstance(props, dict):
            raise core.invalid("InvalidRequestContent", "The request content was invalid: 'properties' must be an "
                                                        "object.")
        # read-only properties a client may echo back are the RP's, not the client's
        out = {k: v for k, v in props.items() if k not in READ_ONLY_PROPERTIES}
        if "allowBlobPublicAccess" in props and not isinstance(props["allowBlobPublicAccess"], bool):
            raise _invalid_values("allowBlobPublicAccess")
        if "supportsHttpsTrafficOnly" in props and not isinstance(props["supportsHttpsTrafficOnly"], bool):
            raise _invalid_values("supportsHttpsTrafficOnly")
        tls = props.get("minimumTlsVersion")
        if tls is not None and tls not in TLS_VERSIONS:
            raise ApiError(400, "InvalidRequestPropertyValue",
                           f"The value '{tls}' is not allowed for property minimumTlsVersion.")
        tier = props.get("accessTier")
        if tier is not None and tier not in ("Hot", "Cool", "Cold", "Premium"):
            raise ApiError(400, "InvalidRequestPropertyValue",
                           f"The value '{tier}' is not allowed for property accessTier.")
        if creating:
            if kind == "BlobStorage" and not tier:
                raise ApiError(400, "InvalidRequestPropertyValue",
                               "Account property accessTier is required for the request.")
            out.setdefault("allowBlobPublicAccess",
                           not _version_at_least(request, PUBLIC_ACCESS_DEFAULT_FALSE_FROM))
            out.setdefault("minimumTlsVersion",
                           "TLS1_2" if _version_at_least(request, PUBLIC_ACCESS_DEFAULT_FALSE_FROM) else "TLS1_0")
            out.setdefault("supportsHttpsTrafficOnly", True)
            if kind in ("StorageV2", "BlobStorage"):
                out.setdefault("accessTier", "Hot")
        return out

    def new_account_body(rid: str, name: str, location: str, sku: dict, kind: str, tags: dict, props: dict) -> dict:
        now = _now()
        endpoints = {"blob": f"{ctx.blob_url}{name}/"}
        if kind in ("StorageV2", "BlockBlobStorage"):
            endpoints["web"] = f"{ctx.web_url}{name}/"  # static website hosting exists on these kinds
        properties = dict(props)
        properties.update({
            "provisioningState": "Creating", "creationTime": now,
            "primaryEndpoints": endpoints, "primaryLocation": location, "statusOfPrimary": "available",
            "keyCreationTime": {"key1": now, "key2": now},
            "encryption": props.get("encryption") or {
                "keySource": "Microsoft.Storage", "requireInfrastructureEncryption": False,
                "services": {"blob": {"enabled": True, "keyType": "Account", "lastEnabledTime": now},
                             "file": {"enabled": True, "keyType": "Account", "lastEnabledTime": now}}},
            "networkAcls": props.get("networkAcls") or {"bypass": "AzureServices", "virtualNetworkRules": [],
                                                       "ipRules": [], "defaultAction": "Allow"},
        })
        return {"id": rid, "name": name, "type": SA_TYPE, "location": location, "tags": tags, "sku": sku,
                "kind": kind, "properties": properties}

    def put_account(request):
        rg, name = request.params["rg"], request.params["name"]
        if not ACCOUNT_NAME.match(name):
            raise core.invalid("AccountNameInvalid", _name_error(name))
        body = request.json()
        location, sku, kind = validate_create(request, body)
        tags = core.validate_tags(body.get("tags"))
        rid = account_id(ctx, rg, name)
        with ctx.store.tx() as db:
            core.require_rg(ctx, rg, db)
            existing = ctx.store.get(rid, db)
            if existing is None:
                other = next((b for b in ctx.store.of_type(SA, db) if b["name"].lower() == name.lower()), None)
                if other is not None:
                    # one sandbox is one subscription: every other holder of the name is in another group
                    raise ApiError(409, "StorageAccountInAnotherResourceGroup",
                                   f"The account {name} is already in another resource group in this subscription.")
            else:
                if existing["location"] != location:
                    raise ApiError(409, "InvalidResourceLocation",
                                   f"The resource '{name}' already exists in location '{existing['location']}' in "
                                   f"resource group '{rg}'. A resource with the same name cannot be created in "
                                   f"location '{location}'. Please select a new resource name.")
                if existing["sku"]["name"] != sku["name"]:
                    raise _invalid_values("sku")  # az CLI issue 27899: a create may not change the sku
                if existing["kind"] != kind and not (existing["kind"] == "Storage" and kind == "StorageV2"):
                    raise _invalid_values("kind")
                props = validate_properties(request, body.get("properties") or {}, kind, creating=False)
                before = bool(existing["properties"].get("allowBlobPublicAccess"))
                existing["properties"].update(props)
                existing["tags"] = tags
                if existing["kind"] != kind:  # Storage -> StorageV2 upgrade brings the web endpoint
                    existing["properties"]["primaryEndpoints"]["web"] = f"{ctx.web_url}{name}/"
                existing["kind"] = kind
                ctx.store.put(db, existing["id"], SA, _parent_of(existing["id"]), existing)
                updated = existing
            if existing is None:
                props = validate_properties(request, body.get("properties") or {}, kind, creating=True)
                new = new_account_body(rid, name, location, sku, kind, tags, props)
                ctx.store.put(db, rid, SA, core.rg_id(ctx, rg), new)
                now = _now()
                keys = {"key1": _new_key(), "key2": _new_key(), "key1_created": now, "key2_created": now}
                db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                           "excluded.value", ("storage-keys:" + name.lower(), _json(keys)))
                op = str(uuid.uuid4())
                pending = {"op": op, "id": rid,
                           "done_at": time.time() + float(ctx.setting("storage_provisioning_seconds"))}
                db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                           "excluded.value", ("storage-pending:" + name.lower(), _json(pending)))
                db.execute("INSERT INTO kv(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = "
                           "excluded.value", ("storage-op:" + op, _json({"name": name, "id": rid})))
        if existing is not None:
            if before != bool(updated["properties"].get("allowBlobPublicAccess")):
                with ctx.named_lock("storage-access:" + name):
                    _sync_public_access(ctx, updated)
            return Response(200, _settle(ctx, updated))
        _start_provisioning(ctx, name, [keys["key1"], keys["key2"]])
        return Response(202, headers={"Location": _op_url(ctx, location, op, request.api_version),
                                      "Retry-After": str(ctx.setting("lro_retry_after_seconds"))})

    def patch_account(request):
        rg, name = request.params["rg"], request.params["name"]
        body = request.json()
        with ctx.store.tx() as db:
            existing = _get_account(ctx, rg, name, db)
            before = bool(existing["properties"].get("allowBlobPublicAccess"))
            if "tags" in body:
                existing["tags"] = core.validate_tags(body["tags"])
            if body.get("sku") is not None:
                sku_name = (body["sku"] or {}).get("name") if isinstance(body["sku"], dict) else None
                premium = existing["sku"]["name"].startswith("Premium")
                if sku_name not in SKUS or sku_name.startswith("Premium") != premium:
                    raise _invalid_values("sku")
                existing["sku"] = {"name": sku_name, "tier": existing["sku"]["tier"]}
            if body.get("kind") is not None and body["kind"] != existing["kind"]:
                if not (existing["kind"] == "Storage" and body["kind"] == "StorageV2"):
                    raise _invalid_values("kind")
                existing["kind"] = "StorageV2"
                existing["properties"]["primaryEndpoints"]["web"] = f"{ctx.web_url}{name}/"
            props = validate_properties(request, body.get("properties") or {}, existing["kind"], creating=False)
            existing["properties"].update(props)
            ctx.store.put(db, existing["id"], SA, _parent_of(existing["id"]), existing)
        if before != bool(existing["properties"].get("allowBlobPublicAccess")):
            with ctx.named_lock("storage-access:" + name):
                _sync_public_access(ctx, existing)
        return Response(200, _settle(ctx, existing))

    def delete_account(request):
        rg, name = request.params["rg"], request.params["name"]
        rid = account_id(ctx, rg, name)
        existing = ctx.store.get(rid)
        if existing is None:
            core.require_rg(ctx, rg)
            return Response(204)
        from . import authorization
        blocking = authorization.blocking_locks(ctx, rid)
        if blocking:
            raise _scope_locked(rid, blocking, "delete")
        if ctx.azurite is not None:
            ctx.azurite.remove_account(existing["name"])
        with ctx.store.tx() as db:
            ctx.store.delete(db, rid)
            db.execute("DELETE FROM kv WHERE key = ?", ("storage-keys:" + name.lower(),))
            db.execute("DELETE FROM kv WHERE key = ?", ("storage-pending:" + name.lower(),))
        return Response(200)

    def operation_status(request):
        op = ctx.store.kv_get("storage-op:" + request.params["op"])
        if op is None:
            raise ApiError(404, "ResourceNotFound", f"The async operation '{request.params['op']}' was not found.")
        core.authorize(ctx, request, f"{SA_TYPE}/read", op["id"])
        body = ctx.store.get(op["id"])
        if body is None:
            raise ApiError(404, "ResourceNotFound", f"The storage account '{op['name']}' was deleted while it was "
                                                    "being created.")
        pending = ctx.store.kv_get("storage-pending:" + body["name"].lower()) or {}
        if pending.get("error"):
            raise ApiError(500, "InternalServerError", f"The storage account could not be provisioned: "
                                                       f"{pending['error']}")
        body = _settle(ctx, body)
        if body["properties"].get("provisioningState") == "Creating":
            return Response(202, headers={"Location": _op_url(ctx, request.params["location"], request.params["op"],
                                                              request.api_version),
                                          "Retry-After": str(ctx.setting("lro_retry_after_seconds"))})
        return Response(200, body)

    def list_keys(request):
        rg, name = request.params["rg"], request.params["name"]
        body = _get_account(ctx, rg, name)
        _refuse_if_readonly(ctx, body["id"], "listKeys")
        return Response(200, _keys_view(ctx, name))

    def regenerate_key(request):
        rg, name = request.params["rg"], request.params["name"]
        body = _get_account(ctx, rg, name)
        _refuse_if_readonly(ctx, body["id"], "regenerateKey")
        key_name = (request.json().get("keyName") or "")
        if key_name.lower() not in KEY_NAMES:
            raise ApiError(400, "InvalidRequestPropertyValue",
                           f"The value '{key_name}' is not allowed for property keyName.")
        key_name = key_name.lower()
        with ctx.store.tx() as db:
            keys = _keys(ctx, name)
            keys[key_name] = _new_key()
            keys[key_name + "_created"] = _now()
            db.execute("UPDATE kv SET value = ? WHERE key = ?", (_json(keys), "storage-keys:" + name.lower()))
            current = ctx.store.get(body["id"], db)
            current["properties"].setdefault("keyCreationTime", {})[key_name] = keys[key_name + "_created"]
            ctx.store.put(db, current["id"], SA, _parent_of(current["id"]), current)
        if ctx.azurite is not None:
            ctx.azurite.ensure_account(name, [keys["key1"], keys["key2"]])
        return Response(200, _keys_view(ctx, name))

    def check_name(request):
        body = request.json()
        name = body.get("name")
        rtype = body.get("type")
        if not isinstance(name, str) or rtype is None:
            raise _invalid_values("name" if not isinstance(name, str) else "type")
        if str(rtype).lower() != SA_TYPE.lower():
            raise ApiError(400, "InvalidResourceType",
                           f"The resource type '{rtype}' is not supported. The supported type is '{SA_TYPE}'.")
        if not ACCOUNT_NAME.match(name):
            return Response(200, {"nameAvailable": False, "reason": "AccountNameInvalid", "message": _name_error(name)})
        if find_account(ctx, name) is not None:
            return Response(200, {"nameAvailable": False, "reason": "AlreadyExists",
                                  "message": f"The storage account named {name} is already taken."})
        return Response(200, {"nameAvailable": True})

    router.add("GET", sub + "/providers/Microsoft.Storage/storageAccounts", list_in_sub, action=f"{SA_TYPE}/read",
               **opts)
    router.add("GET", base, list_in_rg, action=f"{SA_TYPE}/read", **opts)
    router.add("GET", acct, get_account, action=f"{SA_TYPE}/read", **opts)
    router.add("PUT", acct, put_account, action=f"{SA_TYPE}/write", **opts)
    router.add("PATCH", acct, patch_account, action=f"{SA_TYPE}/write", **opts)
    router.add("DELETE", acct, delete_account, action=f"{SA_TYPE}/delete", **opts)
    router.add("POST", acct + "/listKeys", list_keys, action=f"{SA_TYPE}/listkeys/action", **opts)
    router.add("POST", acct + "/regenerateKey", regenerate_key, action=f"{SA_TYPE}/regeneratekey/action", **opts)
    router.add("POST", sub + "/providers/Microsoft.Storage/checkNameAvailability", check_name,
               api="microsoft.storage/checknameavailability", provider=NS,
               action="Microsoft.Storage/checknameavailability/read")
    # polling is authorised as a read of the account being created (checked in the handler)
    router.add("GET", sub + "/providers/Microsoft.Storage/locations/{location}/asyncoperations/{op}",
               operation_status, api="microsoft.storage/locations/asyncoperations", provider=NS)

    # ---- blob service properties --------------------------------------------------------------
    bs_path = acct + "/blobServices/default"
    bs_opts = dict(api=BS, provider=NS)

    def blob_service_body(request, account: dict) -> dict:
        stored = ctx.store.get(account["id"] + "/blobServices/default")
        props = dict((stored or {}).get("properties") or {
            "cors": {"corsRules": []}, "deleteRetentionPolicy": {"allowPermanentDelete": False, "enabled": False}})
        # the data plane shares these settings: read them from Azurite, the single source of truth
        if ctx.azurite is not None and ctx.azurite.has_account(account["name"]):
            live = _live_service_properties(ctx, account["name"])
            if live is not None:
                props["cors"] = {"corsRules": live["cors"]}
                props["deleteRetentionPolicy"] = dict(props.get("deleteRetentionPolicy") or {},
                                                      **live["deleteRetentionPolicy"])
                if _version_at_least(request, STATIC_WEBSITE_ARM_FROM):
                    props["staticWebsite"] = live["staticWebsite"]
        if not _version_at_least(request, STATIC_WEBSITE_ARM_FROM):
            props.pop("staticWebsite", None)
        return {"id": account["id"] + "/blobServices/default", "name": "default", "type": BS_TYPE,
                "sku": account["sku"], "properties": props}

    def list_blob_services(request):
        account = _get_account(ctx, request.params["rg"], request.params["name"])
        return Response(200, {"value": [blob_service_body(request, account)]})

    def get_blob_service(request):
        account = _get_account(ctx, request.params["rg"], request.params["name"])
        return Response(200, blob_service_body(request, account))

    def put_blob_service(request):
        account = _get_account(ctx, request.params["rg"], request.params["name"])
        props = (request.json().get("properties") or {})
        if not isinstance(props, dict):
            raise core.invalid("InvalidRequestContent", "The request content was invalid: 'properties' must be an "
                                                        "object.")
        cors = props.get("cors")
        rules = (cors or {}).get("corsRules") if isinstance(cors, dict) else None
        if cors is not None and not isinstance(rules, list):
            raise _invalid_values("cors")
        if rules is not None and len(rules) > 5:
            # Blob service: at most five CORS rules (Set Blob Service Properties)
            raise ApiError(400, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the correct "
                                                      "format.")
        retention = props.get("deleteRetentionPolicy")
        if isinstance(retention, dict) and retention.get("enabled"):
            days = retention.get("days")
            if not isinstance(days, int) or not 1 <= days <= 365:
                raise ApiError(400, "InvalidRequestPropertyValue",
                               f"The value '{days}' is not allowed for property deleteRetentionPolicy.days.")
        website = props.get("staticWebsite") if _version_at_least(request, STATIC_WEBSITE_ARM_FROM) else None
        if website is not None and account["kind"] not in ("StorageV2", "BlockBlobStorage"):
            raise ApiError(400, "FeatureNotSupportedForAccount",
                           "Static website is not supported for this account kind.")
        bid = account["id"] + "/blobServices/default"
        stored = ctx.store.get(bid) or {"properties": {}}
        merged = dict(stored["properties"])
        merged.update({k: v for k, v in props.items() if k != "staticWebsite"})
        _push_service_properties(ctx, account, props, website)
        with ctx.store.tx() as db:
            ctx.store.put(db, bid, BS, account["id"], {"id": bid, "name": "default", "type": BS_TYPE,
                                                       "properties": merged})
        return Response(200, blob_service_body(request, account))

    router.add("GET", acct + "/blobServices", list_blob_services, action=f"{BS_TYPE}/read", **bs_opts)
    router.add("GET", bs_path, get_blob_service, action=f"{BS_TYPE}/read", **bs_opts)
    router.add("PUT", bs_path, put_blob_service, action=f"{BS_TYPE}/write", **bs_opts)

    # ---- containers -----------------------------------------------------------------------------
    ct_opts = dict(api=CT, provider=NS)

    def container_view(account: dict, item) -> dict:
        cid = f"{account['id']}/blobServices/default/containers/{item.name}"
        actual = PUBLIC_ACCESS.get((item.public_access or "none").lower(), "None")
        stored = ctx.store.get(cid)
        # an account that disallows public access holds the containers' own levels aside (see _sync_public_access)
        level = (stored or {}).get("properties", {}).get("publicAccess", actual) \
            if not account["properties"].get("allowBlobPublicAccess") else actual
        return _container_body(cid, item.name, level, dict(item.metadata or {}), item.etag, _iso(item.last_modified))

    def live_container(account: dict, name: str):
        from azure.core.exceptions import ResourceNotFoundError
        _ensure_in_azurite(ctx, account["name"])
        with ctx.azurite.using():
            client = ctx.azurite.client(account["name"]).get_container_client(name)
            try:
                props = client.get_container_properties()
            except ResourceNotFoundError:
                return None
            finally:
                client.close()
        props.name = name
        return props

    def get_container(request):
        account = _get_account(ctx, request.params["rg"], request.params["name"])
        name = request.params["container"]
        item = live_container(account, name)
        if item is None:
            raise core.not_found(f"{CT_TYPE}", f"{account['name']}/default/{name}", request.params["rg"])
        return Response(200, container_view(account, item))

    def list_containers(request):
        account = _get_account(ctx, request.params["rg"], request.params["name"])
        _ensure_in_azurite(ctx, account["name"])
        prefix = None
        flt = request.q("$filter")
        if flt:
            m = re.fullmatch(r"\s*name\s+ge\s+'([^']*)'\s*", flt, re.IGNORECASE) or \
                re.fullmatch(r"\s*startswith\(name,\s*'([^']*)'\)\s*", flt, re.IGNORECASE)
            prefix = m.group(1) if m else flt.strip()
        with ctx.azurite.using():
            client = ctx.azurite.client(account["name"])
            try:
                items = [container_view(account, c) for c in client.list_containers(name_starts_with=prefix,
                                                                                     include_metadata=True)]
            finally:
                client.close()
        size = int(request.q("$maxpagesize") or 100)
        return core.page(request, items, ctx.arm_url, size=max(1, min(size, 5000)))

    def put_container(request):
        from azure.core.exceptions import AzureError, ResourceExistsError
        rg, name, container = request.params["rg"], request.params["name"], request.params["container"]
        account = _get_account(ctx, rg, name)
        _check_container_name(container)
        props = request.json().get("properties") or {}
        if not isinstance(props, dict):
            raise core.invalid("InvalidRequestContent", "The request content was invalid: 'properties' must be an "
                                                        "object.")
        level = props.get("publicAccess", "None")
        if level is None:
            level = "None"
        if not isinstance(level, str) or level.lower() not in PUBLIC_ACCESS:
            raise _invalid_values("publicAccess")
        level = PUBLIC_ACCESS[level.lower()]
        metadata = props.get("metadata") or {}
        cid = f"{account['id']}/blobServices/default/containers/{container}"
        _ensure_in_azurite(ctx, account["name"])
        with ctx.named_lock("storage-access:" + account["name"]):
            account = _get_account(ctx, rg, name)
            if level != "None" and not account["properties"].get("allowBlobPublicAccess"):
                raise ApiError(409, "PublicAccessNotPermitted",
                               "Public access is not permitted on this storage account.")
            created = True
            with ctx.azurite.using():
                service = ctx.azurite.client(account["name"])
                client = service.get_container_client(container)
                try:
                    try:
                        client.create_container(metadata=metadata or None, public_access=_sdk_access(level))
                    except ResourceExistsError:
                        created = False
                        if metadata:
                            client.set_container_metadata(metadata)
                        _apply_access(ctx, account["name"], container, level)
                    item = client.get_container_properties()
                except AzureError as exc:
                    raise _data_plane_error(exc) from exc
                finally:
                    client.close()
                    service.close()
            body = _container_body(cid, container, level, dict(item.metadata or {}), item.etag,
                                   _iso(item.last_modified))
            with ctx.store.tx() as db:
                ctx.store.put(db, cid, CT, account["id"] + "/blobServices/default", body)
        return Response(201 if created else 200, body)

    def delete_container(request):
        from azure.core.exceptions import AzureError, ResourceNotFoundError
        rg, name, container = request.params["rg"], request.params["name"], request.params["container"]
        account = _get_account(ctx, rg, name)
        cid = f"{account['id']}/blobServices/default/containers/{container}"
        from . import authorization
        blocking = authorization.blocking_locks(ctx, cid)
        if blocking:
            raise _scope_locked(cid, blocking, "delete")
        _ensure_in_azurite(ctx, account["name"])
        existed = True
        with ctx.azurite.using():
            client = ctx.azurite.client(account["name"])
            try:
                client.delete_container(container)
            except ResourceNotFoundError:
                existed = False
            except AzureError as exc:
                raise _data_plane_error(exc) from exc
            finally:
                client.close()
        with ctx.store.tx() as db:
            ctx.store.delete(db, cid)
        return Response(200 if existed else 204)

    router.add("GET", bs_path + "/containers", list_containers, action=f"{CT_TYPE}/read", **ct_opts)
    router.add("GET", bs_path + "/containers/{container}", get_container, action=f"{CT_TYPE}/read", **ct_opts)
    router.add("PUT", bs_path + "/containers/{container}", put_container, action=f"{CT_TYPE}/write", **ct_opts)
    router.add("DELETE", bs_path + "/containers/{container}", delete_container, action=f"{CT_TYPE}/delete",
               **ct_opts)


# ---- provisioning, keys, service properties -------------------------------------------------------
def _json(value) -> str:
    import json
    return json.dumps(value)


def _op_url(ctx, location: str, op: str, api_version: str | None) -> str:
    return (f"{ctx.arm_url.rstrip('/')}{ctx.sub_id}/providers/Microsoft.Storage/locations/{location}/"
            f"asyncoperations/{op}?monitor=true&api-version={quote(api_version or '')}")


def _start_provisioning(ctx, name: str, keys: list[str]) -> None:
    """The create's background half: the account must answer in Azurite before the LRO succeeds."""
    def work():
        try:
            if ctx.azurite is not None:
                ctx.azurite.ensure_account(name, keys)
        except Exception as exc:  # noqa: BLE001 - reported through the operation status
            pending = ctx.store.kv_get("storage-pending:" + name.lower()) or {}
            pending["error"] = str(exc).splitlines()[0]
            ctx.store.kv_set("storage-pending:" + name.lower(), pending)
        finally:
            with _threads_lock:
                _threads.pop(name, None)

    thread = threading.Thread(target=work, name=f"provision-{name}", daemon=True)
    with _threads_lock:
        _threads[name] = thread
    thread.start()


def _refuse_if_readonly(ctx, rid: str, operation: str) -> None:
    from . import authorization
    locked = authorization.blocking_locks(ctx, rid, operation="write")
    if locked:
        raise ApiError(409, "ScopeLocked",
                       f"The scope '{rid}' cannot perform {operation} operation because following scope(s) are "
                       f"locked: '{', '.join(locked)}'. Please remove the lock and try again.")


def _keys_view(ctx, name: str) -> dict:
    keys = _keys(ctx, name)
    return {"keys": [{"keyName": k, "value": keys[k], "permissions": "FULL", "creationTime": keys[k + "_created"]}
                     for k in KEY_NAMES]}


def _live_service_properties(ctx, name: str) -> dict | None:
    from azure.core.exceptions import AzureError
    with ctx.azurite.using():
        client = ctx.azurite.client(name)
        try:
            props = client.get_service_properties()
        except AzureError:
            return None
        finally:
            client.close()
    website = props.get("static_website")
    retention = props.get("delete_retention_policy")
    return {
        "cors": [{"allowedOrigins": _split(r.allowed_origins), "allowedMethods": _split(r.allowed_methods),
                  "allowedHeaders": _split(r.allowed_headers), "exposedHeaders": _split(r.exposed_headers),
                  "maxAgeInSeconds": r.max_age_in_seconds} for r in props.get("cors") or []],
        "deleteRetentionPolicy": {"enabled": bool(retention and retention.enabled),
                                  **({"days": retention.days} if retention and retention.enabled else {})},
        "staticWebsite": {"enabled": bool(website and website.enabled),
                          "indexDocument": website.index_document if website else None,
                          "errorDocument404Path": website.error_document404_path if website else None,
                          "defaultIndexDocumentPath": getattr(website, "default_index_document_path", None)
                          if website else None},
    }


def _split(value) -> list[str]:
    if isinstance(value, list):
        return value
    return [v for v in (value or "").split(",") if v]


def _push_service_properties(ctx, account: dict, props: dict, website: dict | None) -> None:
    """ARM's blob service settings that the data plane also holds go to Azurite."""
    from azure.core.exceptions import AzureError, ResourceExistsError
    from azure.storage.blob import CorsRule, RetentionPolicy, StaticWebsite

    if ctx.azurite is None:
        return
    _ensure_in_azurite(ctx, account["name"])
    kwargs = {}
    cors = props.get("cors")
    if isinstance(cors, dict) and isinstance(cors.get("corsRules"), list):
        kwargs["cors"] = [CorsRule(r.get("allowedOrigins") or [], r.get("allowedMethods") or [],
                                   allowed_headers=r.get("allowedHeaders") or [],
                                   exposed_headers=r.get("exposedHeaders") or [],
                                   max_age_in_seconds=int(r.get("maxAgeInSeconds") or 0))
                          for r in cors["corsRules"]]
    retention = props.get("deleteRetentionPolicy")
    if isinstance(retention, dict):
        kwargs["delete_retention_policy"] = RetentionPolicy(enabled=bool(retention.get("enabled")),
                                                            days=retention.get("days") if retention.get("enabled")
                                                            else None)
    if isinstance(website, dict):
        kwargs["static_website"] = StaticWebsite(
            enabled=bool(website.get("enabled")), index_document=website.get("indexDocument"),
            error_document404_path=website.get("errorDocument404Path"),
            default_index_document_path=website.get("defaultIndexDocumentPath"))
    if not kwargs:
        return
    with ctx.azurite.using():
        client = ctx.azurite.client(account["name"])
        try:
            client.set_service_properties(**kwargs)
            if isinstance(website, dict) and website.get("enabled"):
                try:  # enabling static website creates the $web container (Azure does the same)
                    client.create_container("$web")
                except ResourceExistsError:
                    pass
        except AzureError as exc:
            raise _data_plane_error(exc) from exc
        finally:
            client.close()
