"""Microsoft.Resources: subscriptions, resource groups, resource providers.

Sources: azure-rest-api-specs specification/resources (resources 2025-04-01, subscriptions 2022-12-01);
errors ResourceGroupNotFound, SubscriptionNotFound, MissingSubscriptionRegistration from ARM's
common deployment errors page.
"""
from __future__ import annotations

import re
import time

from ..http import ApiError, Response
from . import core

RG_NAME = re.compile(r"^[-\w\._\(\)]{1,90}$")
RG = "resourcegroups"


def _rg_body(ctx, name: str, location: str, tags: dict, state: str = "Succeeded") -> dict:
    return {
        "id": core.rg_id(ctx, name),
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": location,
        "tags": tags,
        "properties": {"provisioningState": state},
    }


def _provider_body(ctx, namespace: str) -> dict:
    name = core._canonical_provider(namespace)
    state = ctx.store.kv_get("provider:" + name.lower()) or core.PROVIDERS.get(name, "NotRegistered")
    types = {
        "Microsoft.ManagedIdentity": ["userAssignedIdentities", "userAssignedIdentities/federatedIdentityCredentials"],
        "Microsoft.Storage": ["storageAccounts", "checkNameAvailability", "locations/asyncoperations"],
        "Microsoft.Authorization": ["roleAssignments", "roleDefinitions", "locks"],
        "Microsoft.Kubernetes": ["connectedClusters"],
        "Microsoft.KubernetesConfiguration": ["extensions"],
        "Microsoft.ExtendedLocation": ["customLocations"],
        "Microsoft.Resources": ["resourceGroups", "subscriptions"],
    }.get(name, [])
    return {
        "id": f"{ctx.sub_id}/providers/{name}",
        "namespace": name,
        "registrationState": state,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [{"resourceType": t, "locations": [l.title() for l in core.LOCATIONS[:4]],
                           "apiVersions": list(reversed(core.API_VERSIONS.get(f"{name}/{t}".lower(),
                                                                             core.API_VERSIONS.get("providers"))))}
                          for t in types],
    }


def register(router, ctx) -> None:
    sub = "/subscriptions/{sub}"

    def subscription_body():
        return {
            "id": ctx.sub_id,
            "subscriptionId": ctx.ident.subscription_id,
            "tenantId": ctx.ident.tenant_id,
            "displayName": "arcwi sandbox subscription",
            "state": "Enabled",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                     "spendingLimit": "Off"},
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "tags": {},
        }

    def list_subscriptions(request):
        core.check_api_version(request, "subscriptions")
        from . import authorization
        visible = any(True for _ in authorization.assignments_for(ctx, request.principal.get("oid", "")))
        return Response(200, {"value": [subscription_body()] if visible else []})

    def get_subscription(request):
        core.check_api_version(request, "subscriptions")
        core.authorize(ctx, request, "Microsoft.Resources/subscriptions/read", ctx.sub_id)
        return Response(200, subscription_body())

    router.add("GET", "/subscriptions", list_subscriptions)
    router.add("GET", sub, get_subscription)

    # ---- resource groups --------------------------------------------------------------------
    def rg_scope(request):
        return core.rg_id(ctx, request.params["rg"])

    def list_rgs(request):
        items = ctx.store.children(ctx.sub_id, RG)
        return core.page(request, items, ctx.arm_url)

    def get_rg(request):
        body = core.require_rg(ctx, request.params["rg"])
        if request.method == "HEAD":
            return Response(204)
        return Response(200, body)

    def put_rg(request):
        name = request.params["rg"]
        if not RG_NAME.match(name) or name.endswith("."):
            raise core.invalid("InvalidResourceGroup",
                               f"The provided resource group name '{name}' has these invalid characters: "
                               "Resource group names only allow alphanumeric characters, periods, underscores, "
                               "hyphens and parenthesis and cannot end in a period.")
        body = request.json()
        location = (body.get("location") or "").replace(" ", "").lower()
        if not location:
            raise core.invalid("LocationRequired", "The location property is required for this definition.")
        if location not in core.LOCATIONS:
            raise core.invalid("LocationNotAvailableForResourceGroup",
                               f"The provided location '{location}' is not available for resource group. "
                               f"List of available regions is '{','.join(core.LOCATIONS)}'.")
        tags = core.validate_tags(body.get("tags"))
        rid = core.rg_id(ctx, name)
        with ctx.store.tx() as db:
            existing = ctx.store.get(rid, db)
            if existing:
                if existing["location"] != location:
                    raise core.invalid("InvalidResourceGroupLocation",
                                       f"Invalid resource group location '{location}'. The Resource group already "
                                       f"exists in location '{existing['location']}'.", status=409)
                new = dict(existing, tags=tags)
                ctx.store.put(db, existing["id"], RG, ctx.sub_id, new)
                return Response(200, new)
            new = _rg_body(ctx, name, location, tags)
            ctx.store.put(db, rid, RG, ctx.sub_id, new)
        return Response(201, new)

    def patch_rg(request):
        name = request.params["rg"]
        body = request.json()
        with ctx.store.tx() as db:
            existing = core.require_rg(ctx, name, db)
            if "tags" in body:
                existing["tags"] = core.validate_tags(body["tags"])
            ctx.store.put(db, existing["id"], RG, ctx.sub_id, existing)
        return Response(200, existing)

    def delete_rg(request):
        name = request.params["rg"]
        rid = core.rg_id(ctx, name)
        existing = ctx.store.get(rid)
        if existing is None:
            # ARM answers 404 ResourceGroupNotFound to the delete of a missing group
            raise core.rg_not_found(name)
        from . import authorization
        blocking = authorization.blocking_locks(ctx, rid, include_children=True)
        if blocking:
            raise ApiError(409, "ScopeLocked",
                           f"The scope '{rid}' cannot perform delete operation because following scope(s) are "
                           f"locked: '{', '.join(blocking)}'. Please remove the lock and try again.")
        # resources inside (and their hooks, e.g. principals of identities, Azurite accounts) go too
        from . import arc, msi, storage
        msi.on_scope_deleted(ctx, rid)
        storage.on_scope_deleted(ctx, rid)
        arc.on_scope_deleted(ctx, rid)
        with ctx.store.tx() as db:
            ctx.store.delete(db, rid)
        return Response(202, headers={"Location": f"{ctx.arm_url.rstrip('/')}{ctx.sub_id}/operationresults/"
                                                   f"rgdelete-{int(time.time())}?api-version={request.api_version}",
                                      "Retry-After": "0"})

    def rg_delete_result(request):
        return Response(200)

    opts = dict(api="resourcegroups")
    router.add("GET", sub + "/resourcegroups", list_rgs, action="Microsoft.Resources/subscriptions/resourcegroups/read",
               **opts)
    router.add("GET", sub + "/resourcegroups/{rg}", get_rg,
               action="Microsoft.Resources/subscriptions/resourcegroups/read", **opts)
    router.add("PUT", sub + "/resourcegroups/{rg}", put_rg,
               action="Microsoft.Resources/subscriptions/resourcegroups/write", **opts)
    router.add("PATCH", sub + "/resourcegroups/{rg}", patch_rg,
               action="Microsoft.Resources/subscriptions/resourcegroups/write", **opts)
    router.add("DELETE", sub + "/resourcegroups/{rg}", delete_rg,
               action="Microsoft.Resources/subscriptions/resourcegroups/delete", **opts)
    router.add("GET", sub + "/operationresults/{op}", rg_delete_result, api="resourcegroups")

    # ---- providers ----------------------------------------------------------------------------
    def list_providers(request):
        return core.page(request, [_provider_body(ctx, n) for n in core.PROVIDERS], ctx.arm_url)

    def get_provider(request):
        return Response(200, _provider_body(ctx, request.params["ns"]))

    def register_provider(request):
        name = core._canonical_provider(request.params["ns"])
        if name not in core.PROVIDERS:
            raise ApiError(404, "InvalidResourceNamespace",
                           f"The resource namespace '{request.params['ns']}' is invalid.")
        # Registration is asynchronous in Azure: Registering first, Registered on a later read.
        current = ctx.store.kv_get("provider:" + name.lower()) or core.PROVIDERS[name]
        if current != "Registered":
            ctx.store.kv_set("provider:" + name.lower(), "Registering")
            ctx.store.kv_set("provider-registered-at:" + name.lower(), time.time() + 1.0)
        return Response(200, _provider_body(ctx, name))

    def unregister_provider(request):
        name = core._canonical_provider(request.params["ns"])
        ctx.store.kv_set("provider:" + name.lower(), "Unregistered")
        return Response(200, _provider_body(ctx, name))

    def settle(request, route=None):
        ns = request.params.get("ns")
        if ns:
            name = core._canonical_provider(ns).lower()
            if ctx.store.kv_get("provider:" + name) == "Registering" and \
                    time.time() >= (ctx.store.kv_get("provider-registered-at:" + name) or 0):
                ctx.store.kv_set("provider:" + name, "Registered")

    popts = dict(api="providers")
    router.add("GET", sub + "/providers", list_providers, action="Microsoft.Resources/subscriptions/read", **popts)
    router.add("GET", sub + "/providers/{ns}", lambda r: (settle(r), get_provider(r))[1],
               action="Microsoft.Resources/subscriptions/read", **popts)
    # Registering needs the provider's own action: "{namespace}/register/action" (learn.microsoft.com
    # azure/role-based-access-control/permissions, e.g. "Microsoft.Kubernetes/register/action: Registers
    # Subscription with Microsoft.Kubernetes resource provider"; azure-resource-manager/management/
    # resource-providers-and-types: "you must have permission to do the /register/action operation for
    # the resource provider").
    router.add("POST", sub + "/providers/{ns}/register", register_provider,
               action=lambda r: f"{core._canonical_provider(r.params['ns'])}/register/action", **popts)
    router.add("POST", sub + "/providers/{ns}/unregister", unregister_provider,
               action=lambda r: f"{core._canonical_provider(r.params['ns'])}/unregister/action", **popts)
