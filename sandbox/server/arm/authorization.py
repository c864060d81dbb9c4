"""Microsoft.Authorization: role definitions, role assignments and management locks.

Sources:
- Built-in roles and their ids/actions: learn.microsoft.com/azure/role-based-access-control/built-in-roles
  (Owner 8e3af657-..., Contributor b24988ac-..., Reader acdd72a7-..., User Access Administrator
  18d7d88d-...).
- Role assignments REST 2022-04-01 (specification/authorization): PUT 201; RoleAssignmentExists 409
  for the same principal+role+scope under another name; PrincipalNotFound during replication unless
  principalType is set (learn.microsoft.com/azure/role-based-access-control/troubleshooting,
  "Symptom - ... PrincipalNotFound"); `$filter` atScope(), principalId eq '...', assignedTo('...').
- Role definitions: `$filter=roleName eq '...'`.
- Locks REST 2020-05-01 (specification/resources/.../locks): CanNotDelete and ReadOnly, inherited by
  child scopes; a locked scope answers 409 ScopeLocked
  (learn.microsoft.com/azure/azure-resource-manager/management/lock-resources).
"""
from __future__ import annotations

import re
import time
import uuid

from ..http import ApiError, Response
from . import core

RA = "microsoft.authorization/roleassignments"
RD = "microsoft.authorization/roledefinitions"
LOCK = "microsoft.authorization/locks"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
LOCK_NAME = re.compile(r"^[^<>*%&:\\?/+]{1,90}$")

BUILTIN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": ("Owner", "Grants full access to manage all resources, including the "
                                            "ability to assign roles in Azure RBAC.",
                                            [{"actions": ["*"], "notActions": []}]),
    "b24988ac-6180-42a0-ab88-20f7382dd24c": ("Contributor", "Grants full access to manage all resources, but does "
                                            "not allow you to assign roles in Azure RBAC, manage assignments in "
                                            "Azure Blueprints, or share image galleries.",
                                            [{"actions": ["*"], "notActions": [
                                                "Microsoft.Authorization/*/Delete",
                                                "Microsoft.Authorization/*/Write",
                                                "Microsoft.Authorization/elevateAccess/Action",
                                                "Microsoft.Blueprint/blueprintAssignments/write",
                                                "Microsoft.Blueprint/blueprintAssignments/delete",
                                                "Microsoft.Compute/galleries/share/action",
                                                "Microsoft.Purview/consents/write",
                                                "Microsoft.Purview/consents/delete",
                                                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                                                "Microsoft.Subscription/cancel/action",
                                                "Microsoft.Subscription/enable/action"]}]),
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": ("Reader", "View all resources, but does not allow you to make any "
                                            "changes.", [{"actions": ["*/read"], "notActions": []}]),
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": ("User Access Administrator", "Lets you manage user access to Azure "
                                            "resources.", [{"actions": ["*/read", "Microsoft.Authorization/*",
                                                                        "Microsoft.Support/*"], "notActions": []}]),
    "f1a07417-d97a-45cb-824c-7a7467783830": ("Managed Identity Operator", "Read and Assign User Assigned Identity",
                                            [{"actions": [
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                                                "Microsoft.Authorization/*/read",
                                                "Microsoft.Insights/alertRules/*",
                                                "Microsoft.Resources/subscriptions/resourceGroups/read",
                                                "Microsoft.Resources/deployments/*",
                                                "Microsoft.Support/*"], "notActions": []}]),
    "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59": ("Managed Identity Contributor", "Create, Read, Update, and Delete "
                                            "User Assigned Identity", [{"actions": [
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/read",
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/write",
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/"
                                                "federatedIdentityCredentials/read",
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/"
                                                "federatedIdentityCredentials/write",
                                                "Microsoft.ManagedIdentity/userAssignedIdentities/"
                                                "federatedIdentityCredentials/delete",
                                                "Microsoft.Authorization/*/read",
                                                "Microsoft.Insights/alertRules/*",
                                                "Microsoft.Resources/subscriptions/resourceGroups/read",
                                                "Microsoft.Resources/deployments/*",
                                                "Microsoft.Support/*"], "notActions": []}]),
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": ("Storage Account Contributor", "Lets you manage storage accounts, "
                                            "including accessing storage account keys which provide full access "
                                            "to storage account data.", [{"actions": [
                                                "Microsoft.Authorization/*/read",
                                                "Microsoft.Insights/alertRules/*",
                                                "Microsoft.Insights/diagnosticSettings/*",
                                                "Microsoft.Network/virtualNetworks/subnets/joinViaServiceEndpoint/action",
                                                "Microsoft.ResourceHealth/availabilityStatuses/read",
                                                "Microsoft.Resources/deployments/*",
                                                "Microsoft.Resources/subscriptions/resourceGroups/read",
                                                "Microsoft.Storage/storageAccounts/*",
                                                "Microsoft.Support/*"], "notActions": []}]),
}


def _builtin_body(ctx, guid: str) -> dict:
    name, description, permissions = BUILTIN_ROLES[guid]
    return {
        "id": f"{ctx.sub_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": name, "type": "BuiltInRole", "description": description,
            "assignableScopes": ["/"],
            "permissions": [dict(p, dataActions=[], notDataActions=[]) for p in permissions],
            "createdOn": "2015-02-02T21:55:09.8806423Z", "updatedOn": "2024-01-01T00:00:00.0000000Z",
            "createdBy": None, "updatedBy": None,
        },
    }


def _custom_roles(ctx) -> list[dict]:
    return ctx.store.of_type(RD)


def role_definition(ctx, role_definition_id: str) -> dict | None:
    guid = role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
    if guid in BUILTIN_ROLES:
        return _builtin_body(ctx, guid)
    for custom in _custom_roles(ctx):
        if custom["name"].lower() == guid:
            return custom
    return None


def all_role_definitions(ctx) -> list[dict]:
    return [_builtin_body(ctx, g) for g in BUILTIN_ROLES] + _custom_roles(ctx)


def assignments_for(ctx, object_id: str):
    for assignment in ctx.store.of_type(RA):
        if assignment["properties"]["principalId"].lower() == object_id.lower():
            yield assignment


def locks_on(ctx, scope: str) -> list[dict]:
    """Locks that apply to a scope: its own and those of every parent scope."""
    found = []
    for lock in ctx.store.of_type(LOCK):
        lock_scope = lock["id"].rsplit("/providers/Microsoft.Authorization/locks/", 1)[0]
        if core.scope_applies(lock_scope, scope):
            found.append(lock)
    return found


def blocking_locks(ctx, rid: str, include_children: bool = False, operation: str = "delete") -> list[str]:
    """Scopes whose locks forbid the operation on rid (and, for a delete of a container, its children)."""
    scopes = []
    for lock in ctx.store.of_type(LOCK):
        lock_scope = lock["id"].rsplit("/providers/Microsoft.Authorization/locks/", 1)[0]
        level = lock["properties"]["level"]
        if operation == "write" and level != "ReadOnly":
            continue
        if core.scope_applies(lock_scope, rid) or (include_children and core.scope_applies(rid, lock_scope)):
            scopes.append(lock_scope)
    return sorted(set(scopes))


def _check_scope(ctx, scope: str) -> None:
    """A scope must be this subscription, one of its resource groups, or an existing resource."""
    s = scope.rstrip("/")
    m = re.match(r"^/subscriptions/([^/]+)(/resourcegroups/([^/]+))?(/providers/.+)?$", s, re.IGNORECASE)
    if not m:
        raise ApiError(400, "InvalidScope", f"The scope '{scope}' is not valid.")
    core.check_subscription(ctx, m.group(1))
    if m.group(3):
        core.require_rg(ctx, m.group(3))
        if m.group(4) and ctx.store.get(s) is None:
            raise ApiError(404, "ResourceNotFound",
                           f"The Resource '{m.group(4).split('/providers/', 1)[-1]}' under resource group "
                           f"'{m.group(3)}' was not found. For more details please go to "
                           "https://aka.ms/ARMResourceNotFoundFix")
    elif m.group(4):
        raise ApiError(400, "InvalidScope", f"The scope '{scope}' is not valid.")


def _parse_filter(expr: str | None) -> dict:
    """Supported role assignment filters: atScope(), principalId eq '...', assignedTo('...'), and 'and'."""
    result = {}
    if not expr:
        return result
    for clause in re.split(r"\s+and\s+", expr.strip(), flags=re.IGNORECASE):
        clause = clause.strip()
        if re.fullmatch(r"atScope\(\)", clause, re.IGNORECASE):
            result["at_scope"] = True
        elif m := re.fullmatch(r"principalId\s+eq\s+'([^']+)'", clause, re.IGNORECASE):
            result["principal"] = m.group(1).lower()
        elif m := re.fullmatch(r"assignedTo\('([^']+)'\)", clause, re.IGNORECASE):
            result["principal"] = m.group(1).lower()
        else:
            raise ApiError(400, "UnsupportedQuery", f"The filter '{expr}' is not supported. Supported filters are "
                                                    "atScope(), principalId eq '{id}', assignedTo('{id}').")
    return result


def register(router, ctx) -> None:
    auth = "/providers/Microsoft.Authorization"

    # ---- role definitions ---------------------------------------------------------------------
    def list_definitions(request):
        scope = request.params.get("scope", "")
        if scope:
            _check_scope(ctx, scope)
        expr = request.q("$filter")
        items = all_role_definitions(ctx)
        if expr:
            m = re.fullmatch(r"\s*roleName\s+eq\s+'(.*)'\s*", expr, re.IGNORECASE)
            t = re.fullmatch(r"\s*type\s+eq\s+'(BuiltInRole|CustomRole)'\s*", expr, re.IGNORECASE)
            if m:
                items = [d for d in items if d["properties"]["roleName"].lower() == m.group(1).lower()]
            elif t:
                items = [d for d in items if d["properties"]["type"].lower() == t.group(1).lower()]
            else:
                raise ApiError(400, "UnsupportedQuery", f"The filter '{expr}' is not supported.")
        if scope:
            items = [d for d in items if any(a == "/" or core.scope_applies(a, scope)
                                             for a in d["properties"]["assignableScopes"])]
        return core.page(request, items, ctx.arm_url)

    def get_definition(request):
        body = role_definition(ctx, request.params["rd"])
        if body is None:
            raise ApiError(404, "RoleDefinitionDoesNotExist",
                           f"The specified role definition with ID '{request.params['rd']}' does not exist.")
        return Response(200, body)

    def put_definition(request):
        scope, guid = request.params["scope"], request.params["rd"]
        if not GUID.match(guid):
            raise ApiError(400, "InvalidRoleDefinitionId", f"The role definition ID '{guid}' is not valid. "
                                                          "The role definition ID must be a GUID.")
        if guid.lower() in BUILTIN_ROLES:
            raise ApiError(403, "RoleDefinitionUpdateNotPermitted", "Built-in role definitions cannot be changed.")
        _check_scope(ctx, scope)
        props = (request.json().get("properties") or {})
        name = props.get("roleName")
        if not name:
            raise ApiError(400, "RoleDefinitionNameNullOrEmpty", "The role definition name cannot be null or empty.")
        assignable = props.get("assignableScopes") or []
        if not assignable:
            raise ApiError(400, "InvalidAssignableScopes", "The assignable scopes of a custom role cannot be empty.")
        for a in assignable:
            _check_scope(ctx, a)
        for existing in all_role_definitions(ctx):
            if existing["properties"]["roleName"].lower() == name.lower() and existing["name"].lower() != guid.lower():
                raise ApiError(409, "RoleDefinitionWithSameNameExists",
                               "A custom role with the same name already exists in this directory. Use a different "
                               "name.")
        rid = f"{ctx.sub_id}{auth}/roleDefinitions/{guid}"
        body = {"id": rid, "name": guid, "type": "Microsoft.Authorization/roleDefinitions",
                "properties": {"roleName": name, "type": "CustomRole", "description": props.get("description", ""),
                               "assignableScopes": assignable,
                               "permissions": [{"actions": p.get("actions", []), "notActions": p.get("notActions", []),
                                                "dataActions": p.get("dataActions", []),
                                                "notDataActions": p.get("notDataActions", [])}
                                               for p in props.get("permissions", [])]}}
        existed = ctx.store.get(rid) is not None
        with ctx.store.tx() as db:
            ctx.store.put(db, rid, RD, ctx.sub_id, body)
        return Response(200 if existed else 201, body)

    def delete_definition(request):
        guid = request.params["rd"]
        rid = f"{ctx.sub_id}{auth}/roleDefinitions/{guid}"
        body = ctx.store.get(rid)
        if body is None:
            return Response(204)
        if any(a["properties"]["roleDefinitionId"].lower().endswith(guid.lower()) for a in ctx.store.of_type(RA)):
            raise ApiError(409, "RoleDefinitionHasAssignments",
                           "There are existing role assignments referencing role. Delete the assignments first.")
        with ctx.store.tx() as db:
            ctx.store.delete(db, rid)
        return Response(200, body)

    rd_read = dict(api=RD, action="Microsoft.Authorization/roleDefinitions/read")
    router.add("GET", auth + "/roleDefinitions", list_definitions, **rd_read)
    router.add("GET", auth + "/roleDefinitions/{rd}", get_definition, **rd_read)
    router.add("GET", "{scope:path}" + auth + "/roleDefinitions", list_definitions, **rd_read)
    router.add("GET", "{scope:path}" + auth + "/roleDefinitions/{rd}", get_definition, **rd_read)
    router.add("PUT", "{scope:path}" + auth + "/roleDefinitions/{rd}", put_definition, api=RD,
               action="Microsoft.Authorization/roleDefinitions/write")
    router.add("DELETE", "{scope:path}" + auth + "/roleDefinitions/{rd}", delete_definition, api=RD,
               action="Microsoft.Authorization/roleDefinitions/delete")

    # ---- role assignments ---------------------------------------------------------------------
    def ra_id(scope: str, name: str) -> str:
        return f"{scope.rstrip('/')}{auth}/roleAssignments/{name}"

    def put_assignment(request):
        scope, name = request.params["scope"], request.params["ra"]
        if not GUID.match(name):
            raise ApiError(400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid. "
                                                           "The role assignment ID must be a GUID.")
        _check_scope(ctx, scope)
        props = request.json().get("properties") or {}
        principal_id = (props.get("principalId") or "").lower()
        rd_id = props.get("roleDefinitionId") or ""
        ptype = props.get("principalType")
        if not principal_id or not GUID.match(principal_id):
            raise ApiError(400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
        definition = role_definition(ctx, rd_id) if rd_id else None
        if definition is None or "/roledefinitions/" not in rd_id.lower():
            raise ApiError(400, "RoleDefinitionDoesNotExist",
                           f"The specified role definition with ID '{rd_id.rsplit('/', 1)[-1]}' does not exist.")
        if not any(a == "/" or core.scope_applies(a, scope) for a in definition["properties"]["assignableScopes"]):
            raise ApiError(400, "RoleAssignmentScopeNotAssignableToRoleDefinition",
                           f"The role '{definition['properties']['roleName']}' is not available to be assigned at "
                           f"the scope '{scope}'.")
        principal = ctx.store.principal_by_object(principal_id)
        replicating = principal is not None and \
            time.time() - principal["created"] < float(ctx.setting("principal_propagation_seconds"))
        if principal is None or (replicating and not ptype):
            raise ApiError(400, "PrincipalNotFound",
                           f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                           f"{ctx.ident.tenant_id}. Check that you have the correct principal ID. If you are creating "
                           "this principal and then immediately assigning a role, this error might be related to a "
                           "replication delay. In this case, set the role assignment principalType property to a "
                           "value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype")
        if ptype and ptype not in ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device"):
            raise ApiError(400, "InvalidPrincipalType", f"The principal type '{ptype}' is not valid.")
        if ptype and ptype != "ServicePrincipal":
            raise ApiError(400, "UnmatchedPrincipalType",
                           f"The PrincipalId '{principal_id.replace('-', '')}' has type 'ServicePrincipal' , which is "
                           f"different from specified PrincipalType '{ptype}'.")
        rid = ra_id(scope, name)
        norm_scope = scope.rstrip("/")
        norm_rd = f"{ctx.sub_id}{auth}/roleDefinitions/{definition['name']}"
        with ctx.store.tx() as db:
            existing = ctx.store.get(rid, db)
            for other in ctx.store.of_type(RA, db):
                p = other["properties"]
                if other["id"].lower() != rid.lower() and p["principalId"].lower() == principal_id and \
                        p["scope"].lower() == norm_scope.lower() and \
                        p["roleDefinitionId"].rsplit("/", 1)[-1].lower() == definition["name"].lower():
                    raise ApiError(409, "RoleAssignmentExists", "The role assignment already exists.",
                                   extra={"details": [{"code": "RoleAssignmentExists",
                                                       "message": f"The role assignment already exists. The ID of the "
                                                                  f"existing role assignment is "
                                                                  f"{other['name'].replace('-', '')}."}]})
            if existing:
                p = existing["properties"]
                if p["principalId"].lower() != principal_id or \
                        p["roleDefinitionId"].rsplit("/", 1)[-1].lower() != definition["name"].lower():
                    raise ApiError(400, "RoleAssignmentUpdateNotPermitted",
                                   "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
                return Response(201, existing)
            now = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())
            body = {"id": rid, "name": name, "type": "Microsoft.Authorization/roleAssignments",
                    "properties": {"roleDefinitionId": norm_rd, "principalId": principal_id,
                                   "principalType": ptype or "ServicePrincipal", "scope": norm_scope,
                                   "condition": None, "conditionVersion": None, "description": props.get("description"),
                                   "createdOn": now, "updatedOn": now,
                                   "createdBy": (request.principal or {}).get("oid"),
                                   "updatedBy": (request.principal or {}).get("oid"),
                                   "delegatedManagedIdentityResourceId": None}}
            ctx.store.put(db, rid, RA, norm_scope, body)
        return Response(201, body)

    def get_assignment(request):
        rid = ra_id(request.params["scope"], request.params["ra"])
        body = ctx.store.get(rid)
        if body is None:
            raise ApiError(404, "RoleAssignmentNotFound", "The role assignment '%s' is not found."
                           % request.params["ra"])
        return Response(200, body)

    def delete_assignment(request):
        rid = ra_id(request.params["scope"], request.params["ra"])
        body = ctx.store.get(rid)
        if body is None:
            return Response(204)
        with ctx.store.tx() as db:
            ctx.store.delete(db, rid)
        return Response(200, body)

    def list_assignments(request):
        scope = request.params.get("scope") or ctx.sub_id
        if request.params.get("scope"):
            _check_scope(ctx, scope)
        flt = _parse_filter(request.q("$filter"))
        items = []
        for a in ctx.store.of_type(RA):
            p = a["properties"]
            above_or_at = core.scope_applies(p["scope"], scope)
            below = core.scope_applies(scope, p["scope"])
            if flt.get("at_scope") and not above_or_at:
                continue
            if not (above_or_at or below):
                continue
            if flt.get("principal") and p["principalId"].lower() != flt["principal"]:
                continue
            items.append(a)
        return core.page(request, items, ctx.arm_url)

    ra_read = dict(api=RA, action="Microsoft.Authorization/roleAssignments/read")
    router.add("GET", "{scope:path}" + auth + "/roleAssignments", list_assignments, **ra_read)
    router.add("GET", "{scope:path}" + auth + "/roleAssignments/{ra}", get_assignment, **ra_read)
    router.add("PUT", "{scope:path}" + auth + "/roleAssignments/{ra}", put_assignment, api=RA,
               action="Microsoft.Authorization/roleAssignments/write")
    router.add("DELETE", "{scope:path}" + auth + "/roleAssignments/{ra}", delete_assignment, api=RA,
               action="Microsoft.Authorization/roleAssignments/delete")

    # ---- locks --------------------------------------------------------------------------------
    def lock_id(scope: str, name: str) -> str:
        return f"{scope.rstrip('/')}{auth}/locks/{name}"

    def put_lock(request):
        scope, name = request.params["scope"], request.params["lock"]
        _check_scope(ctx, scope)
        if not LOCK_NAME.match(name):
            raise ApiError(400, "LockNameInvalid", f"The lock name '{name}' is invalid.")
        props = request.json().get("properties") or {}
        level = props.get("level")
        if level not in ("CanNotDelete", "ReadOnly"):
            raise ApiError(400, "LockLevelInvalid", f"The lock level '{level}' is invalid. Valid lock levels are "
                                                    "'CanNotDelete' and 'ReadOnly'.")
        notes = props.get("notes")
        if notes is not None and len(notes) > 512:
            raise ApiError(400, "LockNotesTooLong", "The lock notes cannot exceed 512 characters.")
        rid = lock_id(scope, name)
        body = {"id": rid, "name": name, "type": "Microsoft.Authorization/locks",
                "properties": {"level": level, "notes": notes, "owners": props.get("owners")}}
        existed = ctx.store.get(rid) is not None
        with ctx.store.tx() as db:
            ctx.store.put(db, rid, LOCK, scope.rstrip("/"), body)
        return Response(200 if existed else 201, body)

    def get_lock(request):
        rid = lock_id(request.params["scope"], request.params["lock"])
        body = ctx.store.get(rid)
        if body is None:
            raise ApiError(404, "LockNotFound", f"The lock '{request.params['lock']}' could not be found.")
        return Response(200, body)

    def delete_lock(request):
        rid = lock_id(request.params["scope"], request.params["lock"])
        if ctx.store.get(rid) is None:
            return Response(204)
        with ctx.store.tx() as db:
            ctx.store.delete(db, rid)
        return Response(200)

    def list_locks(request):
        scope = request.params["scope"]
        _check_scope(ctx, scope)
        return core.page(request, locks_on(ctx, scope) if request.q("$filter") == "atScope()" else
                         [lk for lk in ctx.store.of_type(LOCK) if core.scope_applies(scope, lk["id"])
                          or core.scope_applies(lk["id"].rsplit(auth, 1)[0], scope)], ctx.arm_url)

    lk = dict(api=LOCK)
    router.add("GET", "{scope:path}" + auth + "/locks", list_locks, action="Microsoft.Authorization/locks/read", **lk)
    router.add("GET", "{scope:path}" + auth + "/locks/{lock}", get_lock, action="Microsoft.Authorization/locks/read",
               **lk)
    router.add("PUT", "{scope:path}" + auth + "/locks/{lock}", put_lock, action="Microsoft.Authorization/locks/write",
               **lk)
    router.add("DELETE", "{scope:path}" + auth + "/locks/{lock}", delete_lock,
               action="Microsoft.Authorization/locks/delete", **lk)


def seed(ctx) -> None:
    """Operator: Owner and User Access Administrator on the subscription (idempotent)."""
    for guid, role in (("a1b2c3d4-0000-4000-8000-000000000001", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
                       ("a1b2c3d4-0000-4000-8000-000000000002", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9")):
        rid = f"{ctx.sub_id}/providers/Microsoft.Authorization/roleAssignments/{guid}"
        if ctx.store.get(rid):
            continue
        body = {"id": rid, "name": guid, "type": "Microsoft.Authorization/roleAssignments",
                "properties": {"roleDefinitionId": f"{ctx.sub_id}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                               "principalId": ctx.ident.operator_object_id, "principalType": "ServicePrincipal",
                               "scope": ctx.sub_id, "condition": None, "conditionVersion": None, "description":
                               "arcwi sandbox operator", "createdOn": "2026-01-01T00:00:00.0000000Z",
                               "updatedOn": "2026-01-01T00:00:00.0000000Z", "createdBy": None, "updatedBy": None,
                               "delegatedManagedIdentityResourceId": None}}
        with ctx.store.tx() as db:
            ctx.store.put(db, rid, RA, ctx.sub_id, body)
