"""Shared parts of the ARM emulator: context, api-versions, errors, RBAC, paging, throttling.

Sources (each rule below names its own):
- ARM error envelope and codes: https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors
- api-versions: azure-rest-api-specs (specification/<rp>/resource-manager) and the versions the
  current Python SDKs send (azure-mgmt-msi 7.1: 2024-11-30; azure-mgmt-authorization 4.0: 2022-04-01;
  azure-mgmt-storage 25.3: 2026-09-01; azure-mgmt-resource 26: 2025-04-01; -locks 1.0: 2020-05-01;
  -subscriptions 1.0: 2022-12-01; azure-mgmt-hybridkubernetes 2.0.0: 2026-05-01).
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..http import ApiError, Request, Response, Router

# resource type (lower-case) -> accepted api-versions
API_VERSIONS: dict[str, tuple[str, ...]] = {
    "subscriptions": ("2014-04-01", "2016-06-01", "2019-06-01", "2019-11-01", "2020-01-01", "2021-01-01",
                      "2022-12-01"),
    "resourcegroups": ("2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01", "2020-06-01",
                       "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01",
                       "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01"),
    "providers": ("2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01", "2020-06-01",
                  "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01",
                  "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01"),
    "microsoft.managedidentity/userassignedidentities": (
        "2015-08-31-preview", "2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31",
        "2023-07-31-preview", "2024-11-30", "2025-01-31-preview", "2025-05-31-preview"),
    # federated identity credentials arrived with 2022-01-31-preview
    "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials": (
        "2022-01-31-preview", "2023-01-31", "2023-07-31-preview", "2024-11-30", "2025-01-31-preview",
        "2025-05-31-preview"),
    "microsoft.authorization/roleassignments": ("2015-07-01", "2018-01-01-preview", "2018-09-01-preview",
                                                "2020-03-01-preview", "2020-04-01-preview", "2020-08-01-preview",
                                                "2020-10-01-preview", "2022-01-01-preview", "2022-04-01"),
    "microsoft.authorization/roledefinitions": ("2015-07-01", "2018-01-01-preview", "2022-04-01",
                                                "2022-05-01-preview"),
    "microsoft.authorization/locks": ("2015-01-01", "2016-09-01", "2020-05-01"),
    "microsoft.storage/storageaccounts": ("2019-06-01", "2021-01-01", "2021-04-01", "2021-06-01", "2021-08-01",
                                          "2021-09-01", "2022-05-01", "2022-09-01", "2023-01-01", "2023-04-01",
                                          "2023-05-01", "2024-01-01", "2025-01-01", "2025-06-01", "2025-08-01", "2026-04-01",
                                          "2026-06-01", "2026-09-01"),
}
# Every version tagged in specification/hybridkubernetes/resource-manager/Microsoft.Kubernetes/
# HybridKubernetes/readme.md (stable/ and preview/); 2026-05-01 is azure-mgmt-hybridkubernetes 2.0.0's default.
API_VERSIONS["microsoft.kubernetes/connectedclusters"] = (
    "2020-01-01-preview", "2021-03-01", "2021-04-01-preview", "2021-10-01", "2022-05-01-preview",
    "2022-10-01-preview", "2023-11-01-preview", "2024-01-01", "2024-02-01-preview", "2024-06-01-preview",
    "2024-07-01-preview", "2024-07-15-preview", "2024-12-01-preview", "2025-08-01-preview", "2025-12-01-preview",
    "2026-02-01-preview", "2026-05-01")
API_VERSIONS["microsoft.kubernetes/locations/operationstatuses"] = API_VERSIONS["microsoft.kubernetes/connectedclusters"]
API_VERSIONS["microsoft.storage/storageaccounts/blobservices"] = API_VERSIONS["microsoft.storage/storageaccounts"]
API_VERSIONS["microsoft.storage/storageaccounts/blobservices/containers"] = API_VERSIONS["microsoft.storage/storageaccounts"]
API_VERSIONS["microsoft.storage/checknameavailability"] = API_VERSIONS["microsoft.storage/storageaccounts"]
API_VERSIONS["microsoft.storage/locations/asyncoperations"] = API_VERSIONS["microsoft.storage/storageaccounts"]

LOCATIONS = ("westeurope", "northeurope", "eastus", "eastus2", "westus", "westus2", "westus3", "centralus",
             "uksouth", "ukwest", "francecentral", "germanywestcentral", "swedencentral", "switzerlandnorth",
             "southeastasia", "eastasia", "japaneast", "australiaeast", "canadacentral", "brazilsouth",
             "centralindia", "koreacentral", "southafricanorth", "uaenorth", "norwayeast", "polandcentral")

# Providers and their initial registration state in a new sandbox subscription.
PROVIDERS = {
    "Microsoft.Resources": "Registered",
    "Microsoft.Authorization": "Registered",
    "Microsoft.ManagedIdentity": "Registered",
    "Microsoft.Storage": "Registered",
    "Microsoft.Kubernetes": "NotRegistered",
    "Microsoft.KubernetesConfiguration": "NotRegistered",
    "Microsoft.ExtendedLocation": "NotRegistered",
}

DEFAULT_SETTINGS = {
    # seconds after a FIC write before Entra accepts assertions for it (AADSTS70021 before)
    "fic_propagation_seconds": 2.0,
    # seconds after a principal's creation during which a role assignment without principalType
    # answers PrincipalNotFound (Entra replication)
    "principal_propagation_seconds": 5.0,
    # how long one FIC write occupies its identity; an overlapping write gets the concurrency 409
    "fic_write_seconds": 0.3,
    # managed identity RP write throttling (documented: 0.25/s per resource, 2/s per subscription)
    "throttle_enabled": True,
    "msi_write_rate_per_resource": 0.25,
    "msi_write_burst_per_resource": 2,
    "msi_write_rate_per_subscription": 2.0,
    "msi_write_burst_per_subscription": 10,
    # how long the storage account create LRO stays in progress
    "storage_provisioning_seconds": 1.0,
    # Retry-After the sandbox sends on its long-running operations
    "lro_retry_after_seconds": 1,
    # Microsoft.Kubernetes/connectedClusters (sandbox/server/arm/arc.py): how long a create/replace and a
    # delete stay in progress
    "arc_provisioning_seconds": 1.0,
    "arc_delete_seconds": 1.0,
    # The Arc agents' heartbeat as the sandbox plays it (sandbox/kind/agent.py re-reports this often).
    # The real agents' period is not documented; what is documented is the service's view of it below.
    "arc_heartbeat_seconds": 2.0,
    # No heartbeat for this long turns Connected into Offline. Azure: 15 minutes (900 s): "Offline: ...
    # the service hasn't received any agent heartbeat for 15 minutes" (learn.microsoft.com/azure/azure-arc/
    # kubernetes/conceptual-connectivity-modes, "Connectivity status").
    "arc_offline_after_seconds": 6.0,
    # No heartbeat for this long turns the resource Expired (terminal: reconnecting needs delete + connect).
    # Azure: the cluster's managed identity certificate "has an expiration window of 90 days after it is
    # issued" and the agents renew it from day 46 (same page and the Arc Kubernetes FAQ), so a cluster
    # that stays away expires at most 90 days (7,776,000 s) after its last renewal.
    "arc_expired_after_seconds": 15.0,
}


@dataclass
class Context:
    store: Any
    ident: Any
    tokens: Any
    azurite: Any = None
    settings: dict = field(default_factory=dict)
    arm_url: str = ""
    arm_audience: str = ""
    entra_url: str = ""
    web_url: str = ""
    blob_url: str = ""
    arcdp_url: str = ""
    locks: dict = field(default_factory=dict)
    lock_guard: threading.Lock = field(default_factory=threading.Lock)

    def setting(self, name: str):
        value = self.store.kv_get("setting:" + name)
        return DEFAULT_SETTINGS[name] if value is None else value

    def named_lock(self, name: str) -> threading.Lock:
        with self.lock_guard:
            return self.locks.setdefault(name.lower(), threading.Lock())

    @property
    def sub_id(self) -> str:
        return f"/subscriptions/{self.ident.subscription_id}"


# ---- errors -------------------------------------------------------------------------------------
def not_found(rtype: str, name: str, rg: str) -> ApiError:
    # ARM: ResourceNotFound for a missing resource inside an existing resource group
    return ApiError(404, "ResourceNotFound",
                    f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


def rg_not_found(rg: str) -> ApiError:
    return ApiError(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")


def invalid(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, code, message)


# ---- api-version --------------------------------------------------------------------------------
def check_api_version(request: Request, rtype: str) -> None:
    version = request.api_version
    if not version:
        raise ApiError(400, "MissingApiVersionParameter",
                       "The api-version query parameter (?api-version=) is required for all requests.")
    accepted = API_VERSIONS[rtype.lower()]
    if version not in accepted:
        if rtype.lower() in ("subscriptions", "resourcegroups", "providers"):
            raise ApiError(400, "InvalidApiVersionParameter",
                           f"The api-version '{version}' is invalid. The supported versions are "
                           f"'{','.join(reversed(accepted))}'.")
        namespace, _, typ = rtype.partition("/")
        raise ApiError(400, "NoRegisteredProviderFound",
                       f"No registered resource provider found for location '{request.params.get('location', 'global')}' "
                       f"and API version '{version}' for type '{typ}'. The supported api-versions are "
                       f"'{', '.join(accepted)}'. The supported locations are '{', '.join(LOCATIONS)}'.")


# ---- RBAC ---------------------------------------------------------------------------------------
def _action_regex(pattern: str) -> re.Pattern:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$", re.IGNORECASE)


def permits(permissions: list[dict], action: str) -> bool:
    for perm in permissions:
        if any(_action_regex(a).match(action) for a in perm.get("actions", [])) and \
                not any(_action_regex(n).match(action) for n in perm.get("notActions", [])):
            return True
    return False


def scope_applies(assignment_scope: str, scope: str) -> bool:
    a = assignment_scope.rstrip("/").lower()
    s = scope.rstrip("/").lower()
    return s == a or s.startswith(a + "/") or a == ""


# The actions each principal was granted and refused since the sandbox started (admin API
# /principals/{oid}/actions): what proves a custom role is enough, and that each of its actions is used.
ACTIONS_SEEN: dict[str, dict[str, set]] = {}


def authorize(ctx: Context, request: Request, action: str, scope: str | None = None) -> None:
    """ARM's authorization: some role assignment at the scope or a parent must grant the action."""
    from . import authorization  # late import: authorization registers the role data

    claims = request.principal or {}
    oid = claims.get("oid", "")
    scope = (scope or request.path).rstrip("/")
    for assignment in authorization.assignments_for(ctx, oid):
        props = assignment["properties"]
        if not scope_applies(props["scope"], scope):
            continue
        definition = authorization.role_definition(ctx, props["roleDefinitionId"])
        if definition and permits(definition["properties"]["permissions"], action):
            ACTIONS_SEEN.setdefault(oid, {"granted": set(), "refused": set()})["granted"].add(action)
            return
    ACTIONS_SEEN.setdefault(oid, {"granted": set(), "refused": set()})["refused"].add(action)
    raise ApiError(403, "AuthorizationFailed",
                   f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
                   f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
                   "please refresh your credentials.")


# ---- paging -------------------------------------------------------------------------------------
def page(request: Request, items: list, base_url: str, size: int = 100) -> Response:
    """ARM list shape: {"value": [...], "nextLink": ...} with a $skiptoken continuation."""
    try:
        start = int(request.q("$skiptoken", "0") or 0)
    except ValueError:
        raise ApiError(400, "InvalidSkipToken", "The provided skip token is not valid.")
    try:
        top = int(request.q("$top")) if request.q("$top") else None
    except ValueError:
        raise ApiError(400, "InvalidTopValue", "The value of '$top' query parameter is not valid.")
    size = min(size, top) if top else size
    chunk = items[start:start + size]
    body: dict[str, Any] = {"value": chunk}
    if start + size < len(items) and not top:
        query = [f"api-version={request.api_version}"]
        for key in ("$filter",):
            if request.q(key):
                from urllib.parse import quote
                query.append(f"{key}={quote(request.q(key))}")
        query.append(f"$skiptoken={start + size}")
        body["nextLink"] = f"{base_url.rstrip('/')}{request.raw_path}?{'&'.join(query)}"
    return Response(200, body)


# ---- throttling ---------------------------------------------------------------------------------
class TokenBuckets:
    """Per-key token buckets; `take` answers 0 or the seconds to wait (for Retry-After)."""

    def __init__(self):
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: str, rate: float, burst: float) -> float:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1:
                self.buckets[key] = (tokens - 1, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / rate if rate > 0 else 60.0

    def clear(self) -> None:
        with self.lock:
            self.buckets.clear()


BUCKETS = TokenBuckets()


def throttle_msi_write(ctx: Context, resource_id: str) -> None:
    """Managed identity RP write limits; 429 with Retry-After like ARM's throttling answer."""
    if not ctx.setting("throttle_enabled"):
        return
    for key, rate, burst in (
        ("res:" + resource_id.lower(), ctx.setting("msi_write_rate_per_resource"),
         ctx.setting("msi_write_burst_per_resource")),
        ("sub:" + ctx.ident.subscription_id, ctx.setting("msi_write_rate_per_subscription"),
         ctx.setting("msi_write_burst_per_subscription")),
    ):
        wait = BUCKETS.take(key, float(rate), float(burst))
        if wait > 0:
            raise ApiError(429, "TooManyRequests",
                           "The request is being throttled as the limit has been reached for operation type - "
                           "Write. For more information, see - https://aka.ms/srpthrottlinglimits",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})


# ---- resource helpers ---------------------------------------------------------------------------
def rg_id(ctx: Context, rg: str) -> str:
    return f"{ctx.sub_id}/resourceGroups/{rg}"


def require_rg(ctx: Context, rg: str, db=None) -> dict:
    body = ctx.store.get(rg_id(ctx, rg), db)
    if body is None:
        raise rg_not_found(rg)
    return body


def check_subscription(ctx: Context, sub: str) -> None:
    if sub.lower() != ctx.ident.subscription_id.lower():
        raise ApiError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")


def provider_registered(ctx: Context, namespace: str) -> bool:
    state = ctx.store.kv_get("provider:" + namespace.lower())
    if state is None:
        state = PROVIDERS.get(_canonical_provider(namespace), "NotRegistered")
    return state == "Registered"


def _canonical_provider(namespace: str) -> str:
    for name in PROVIDERS:
        if name.lower() == namespace.lower():
            return name
    return namespace


def require_provider(ctx: Context, namespace: str) -> None:
    if not provider_registered(ctx, namespace):
        raise ApiError(409, "MissingSubscriptionRegistration",
                       f"The subscription is not registered to use namespace '{_canonical_provider(namespace)}'. "
                       "See https://aka.ms/rps-not-found for how to register subscriptions.",
                       extra={"details": [{"code": "MissingSubscriptionRegistration",
                                           "target": _canonical_provider(namespace),
                                           "message": f"The subscription is not registered to use namespace "
                                                      f"'{_canonical_provider(namespace)}'. See https://aka.ms/"
                                                      "rps-not-found for how to register subscriptions."}]})


def validate_tags(tags: Any) -> dict:
    """ARM tag limits: at most 50 tags, name <= 512 chars, value <= 256 chars, no <>%&\\?/ in names."""
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise invalid("InvalidRequestContent", "The request content was invalid: 'tags' must be an object.")
    if len(tags) > 50:
        raise invalid("InvalidTagCount", "The number of tags exceeds the limit of 50.")
    for name, value in tags.items():
        if len(name) > 512 or re.search(r"[<>%&\\?/]", name):
            raise invalid("InvalidTagNameCharacters",
                          f"The tag names '{name}' have reserved characters '<,>,%,&,\\,?,/' or control characters.")
        if value is not None and len(str(value)) > 256:
            raise invalid("InvalidTagValueLength",
                          f"The tag value '{value}' exceeds the maximum length of 256 characters.")
    return tags


def make_router(ctx: Context) -> Router:
    """Build the ARM router with authentication (and per-route api-version, RBAC, provider checks)."""
    from . import arc, authorization, metadata, msi, resources, storage

    router = Router("arm")

    def before(request: Request, route) -> None:
        opts = route.options
        if opts.get("anonymous"):
            return
        request.principal = ctx.tokens.verify_arm(
            request.headers.get("Authorization"), [ctx.arm_audience, ctx.arm_audience.rstrip("/")])
        if "sub" in request.params:
            check_subscription(ctx, request.params["sub"])
        if opts.get("api"):
            check_api_version(request, opts["api"])
        if opts.get("provider"):
            require_provider(ctx, opts["provider"])
        action = opts["action"](request) if callable(opts.get("action")) else opts.get("action")
        if action:
            scope = opts["scope"](request) if callable(opts.get("scope")) else None
            authorize(ctx, request, action, scope)
        # A ReadOnly lock on the scope or a parent refuses writes (locks themselves excepted).
        if request.method in ("PUT", "PATCH") and "/microsoft.authorization/locks" not in request.path.lower():
            from . import authorization
            locked = authorization.blocking_locks(ctx, request.path.rstrip("/"), operation="write")
            if locked:
                raise ApiError(409, "ScopeLocked",
                               f"The scope '{request.path.rstrip('/')}' cannot perform write operation because "
                               f"following scope(s) are locked: '{', '.join(locked)}'. Please remove the lock and "
                               "try again.")

    router.before.append(before)
    for module in (metadata, resources, msi, authorization, storage, arc):
        module.register(router, ctx)
    return router
