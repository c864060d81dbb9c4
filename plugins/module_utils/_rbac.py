# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
"""Role assignments: resolve a role by name or id, find the assignment of (principal, role, scope),
create it with a deterministic name, retry Entra replication (PrincipalNotFound), delete it."""

from __future__ import annotations

import re
import time
import uuid

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import translate_errors
from ansible_collections.arcwi.workload_identity.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import AzureApiError
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import ValidationError

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PRINCIPAL_TYPES = ("ServicePrincipal", "User", "Group", "ForeignGroup", "Device")
# a fixed namespace: the same (scope, role, principal) always gives the same assignment name, so a
# re-run after a crash PUTs the same resource instead of creating a duplicate
NAMESPACE = uuid.UUID("7c3f6a52-2d4e-4b9a-9a51-8f0e7d1c2b3a")


def assignment_name(scope: str, role_definition_guid: str, principal_id: str) -> str:
    key = f"{scope.rstrip('/').lower()}|{role_definition_guid.lower()}|{principal_id.lower()}"
    return str(uuid.uuid5(NAMESPACE, key))


def validate_scope(scope: str, subscription_id: str | None) -> str:
    scope = (scope or "").rstrip("/")
    if not scope.startswith("/subscriptions/"):
        raise ValidationError(f"scope must be an ARM id starting with /subscriptions/<id> (got {scope!r})")
    if subscription_id and not (scope.lower() == f"/subscriptions/{subscription_id}".lower()
                                or scope.lower().startswith(f"/subscriptions/{subscription_id}/".lower())):
        raise ValidationError(f"scope {scope!r} is outside the subscription {subscription_id}; give a scope "
                              "inside it (or set subscription_id to the scope's subscription)")
    if "//" in scope or re.search(r"\s", scope):
        raise ValidationError(f"scope {scope!r} is not a valid ARM id")
    return scope


def validate_principal(principal_id: str, principal_type: str) -> None:
    if not principal_id or not GUID.match(principal_id):
        raise ValidationError(f"principal_id must be the object id (a GUID) of the principal (got {principal_id!r})")
    if principal_type not in PRINCIPAL_TYPES:
        raise ValidationError(f"principal_type must be one of {', '.join(PRINCIPAL_TYPES)}")


def _get(obj, attr):
    return obj.get(attr) if isinstance(obj, dict) else getattr(obj, attr, None)


def normalise_assignment(a) -> dict | None:
    if a is None:
        return None
    return {"id": _get(a, "id"), "name": _get(a, "name"), "scope": _get(a, "scope"),
            "role_definition_id": _get(a, "role_definition_id"), "principal_id": _get(a, "principal_id"),
            "principal_type": _get(a, "principal_type")}


def normalise_role(d) -> dict:
    return {"id": _get(d, "id"), "name": _get(d, "name"), "role_name": _get(d, "role_name"),
            "role_type": _get(d, "role_type")}


class RoleService:
    def __init__(self, client, models=None):
        self.client = client
        self.models = models

    @translate_errors("look up role definition")
    def find_roles(self, scope, role_name):
        escaped = role_name.replace("'", "''")
        return [normalise_role(d) for d in
                self.client.role_definitions.list(scope, filter=f"roleName eq '{escaped}'")]

    @translate_errors("get role definition", not_found=None)
    def get_role(self, scope, guid):
        return normalise_role(self.client.role_definitions.get(scope, guid))

    @translate_errors("list role assignments")
    def assignments_at(self, scope, principal_id):
        return [normalise_assignment(a) for a in self.client.role_assignments.list_for_scope(
            scope, filter=f"atScope() and principalId eq '{principal_id}'")]

    @translate_errors("create role assignment")
    def create(self, scope, name, role_definition_id, principal_id, principal_type):
        return normalise_assignment(self.client.role_assignments.create(scope, name, {
            "role_definition_id": role_definition_id, "principal_id": principal_id,
            "principal_type": principal_type}))

    @translate_errors("delete role assignment")
    def delete(self, scope, name):
        self.client.role_assignments.delete(scope, name)


def resolve_role(service, scope: str, role: str) -> dict:
    """A role by display name, GUID, or full role definition id."""
    if not role:
        raise ValidationError("role is required (a role name like Reader, or a role definition id)")
    guid = role.rstrip("/").rsplit("/", 1)[-1]
    if GUID.match(guid) and (GUID.match(role) or "/roledefinitions/" in role.lower()):
        found = service.get_role(scope, guid)
        if found is None:
            raise ValidationError(f"role: no role definition with id {guid} is assignable at {scope}")
        return found
    found = service.find_roles(scope, role)
    if not found:
        raise ValidationError(f"role: no role named {role!r} at scope {scope} (role names are case-insensitive; "
                              "check the spelling, e.g. Reader, Contributor, Storage Blob Data Reader)")
    if len(found) > 1:
        raise ValidationError(f"role: {len(found)} roles are named {role!r}; give the role definition id instead")
    return found[0]


def _same_role(a: dict, role: dict) -> bool:
    return (a.get("role_definition_id") or "").rstrip("/").rsplit("/", 1)[-1].lower() == role["name"].lower()


def ensure_role_assignment(service, scope, role, principal_id, principal_type, state, check_mode,
                           propagation_timeout: float = 120.0, clock=time):
    """-> (changed, before, after, tracker)."""
    role_def = resolve_role(service, scope, role)
    existing = [a for a in service.assignments_at(scope, principal_id)
                if (a.get("scope") or "").rstrip("/").lower() == scope.lower() and _same_role(a, role_def)]
    before = existing[0] if existing else None
    tracker = DifferenceTracker()
    if state == "absent":
        if not existing:
            return False, None, None, tracker
        tracker.add(("state",), "present", "absent")
        if not check_mode:
            for a in existing:
                service.delete(scope, a["name"])
        return True, before, None, tracker
    if before is not None:
        return False, before, before, tracker
    tracker.add(("state",), "absent", "present")
    name = assignment_name(scope, role_def["name"], principal_id)
    after = {"id": f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}", "name": name,
             "scope": scope, "role_definition_id": role_def["id"], "principal_id": principal_id,
             "principal_type": principal_type}
    if check_mode:
        return True, None, after, tracker
    deadline = clock.monotonic() + propagation_timeout
    delay = 2.0
    while True:
        try:
            after = service.create(scope, name, role_def["id"], principal_id, principal_type)
            break
        except AzureApiError as err:
            # A principal created moments ago may not have replicated in Entra yet (RBAC troubleshooting:
            # PrincipalNotFound). It is transient: retry with backoff until the deadline.
            if err.code != "PrincipalNotFound" or clock.monotonic() + delay > deadline:
                raise
            clock.sleep(delay)
            delay = min(delay * 2, 20.0)
    return True, None, after, tracker
