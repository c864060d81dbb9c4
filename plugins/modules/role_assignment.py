#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: role_assignment
short_description: Assign an Azure role to a principal at a scope, idempotently
version_added: 0.1.0
description:
  - Ensures the principal O(principal_id) has the role O(role) at O(scope) (or not, with O(state=absent)).
  - Idempotent on the triple (principal, role, scope), whatever name an existing assignment has.
    New assignments get a name derived from the triple, so a run interrupted after the PUT and
    run again never creates a duplicate.
  - A principal created moments ago may not be visible to Azure RBAC yet; the module sends
    O(principal_type) (which avoids most of that) and retries C(PrincipalNotFound) with backoff for
    up to O(propagation_timeout) seconds.
author:
  - arcwi maintainers (!UNKNOWN)
options:
  principal_id:
    description: Object ID of the principal, for a managed identity its C(principal_id).
    type: str
    required: true
  principal_type:
    description: Type of the principal.
    type: str
    choices: [ServicePrincipal, User, Group, ForeignGroup, Device]
    default: ServicePrincipal
  role:
    description:
      - The role, by name (V(Reader), V(Storage Blob Data Reader), case-insensitive) or by role
        definition ID (a GUID or a full C(/subscriptions/.../roleDefinitions/<guid>) ID).
    type: str
    required: true
  scope:
    description:
      - ARM ID of the scope, inside O(subscription_id). Defaults to the subscription itself.
      - Narrow it (a resource group, a single resource) to give the workload less.
    type: str
  propagation_timeout:
    description: How long to retry C(PrincipalNotFound) while a new principal replicates, in seconds.
    type: int
    default: 120
  state:
    description: Whether the assignment should exist. V(absent) removes every assignment of the triple.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.FULL_SUPPORT
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
requirements:
  - azure-mgmt-authorization >= 4.0.0
"""

EXAMPLES = r"""
- name: Reader on the subscription for the workload identity
  arcwi.workload_identity.role_assignment:
    principal_id: "{{ wi.identity.principal_id }}"
    role: Reader

- name: Read blobs of one storage account only
  arcwi.workload_identity.role_assignment:
    principal_id: "{{ wi.identity.principal_id }}"
    role: Storage Blob Data Reader
    scope: "/subscriptions/{{ subscription_id }}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/stdata"

- name: Remove the assignment
  arcwi.workload_identity.role_assignment:
    principal_id: "{{ wi.identity.principal_id }}"
    role: Reader
    state: absent
"""

RETURN = r"""
role_assignment:
  description: The assignment after the task (predicted in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    id:
      description: ARM ID of the assignment.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleAssignments/2b1c...
    name:
      description: Name (a GUID).
      type: str
      sample: 2b1c6a0e-7d3f-5b9e-8c4a-0f1e2d3c4b5a
    scope:
      description: Scope.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000
    role_definition_id:
      description: Role definition ID.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7
    principal_id:
      description: Principal object ID.
      type: str
      sample: 66666666-7777-8888-9999-000000000000
    principal_type:
      description: Principal type.
      type: str
      sample: ServicePrincipal
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import AzureModule, state_spec
from ansible_collections.arcwi.workload_identity.plugins.module_utils._rbac import (
    PRINCIPAL_TYPES,
    RoleService,
    ensure_role_assignment,
    validate_principal,
    validate_scope,
)

try:
    from azure.mgmt.authorization import AuthorizationManagementClient
except ImportError:
    import traceback

    AUTHZ_IMPORT_ERROR = traceback.format_exc()
else:
    AUTHZ_IMPORT_ERROR = None


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            principal_id=dict(type="str", required=True),
            principal_type=dict(type="str", choices=list(PRINCIPAL_TYPES), default="ServicePrincipal"),
            role=dict(type="str", required=True),
            scope=dict(type="str"),
            propagation_timeout=dict(type="int", default=120),
            **state_spec(),
        ),
        libraries={"azure-mgmt-authorization": AUTHZ_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    try:
        validate_principal(p["principal_id"], p["principal_type"])
        subscription = p["subscription_id"]
        scope = validate_scope(p["scope"] or (f"/subscriptions/{subscription}" if subscription else ""),
                               subscription)
        service = RoleService(module.client(AuthorizationManagementClient))
        changed, before, after, _tracker = ensure_role_assignment(
            service, scope, p["role"], p["principal_id"].lower(), p["principal_type"], p["state"], module.check_mode,
            propagation_timeout=float(p["propagation_timeout"]))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    module.exit_with_state(changed, "role_assignment", before, after)


if __name__ == "__main__":
    main()
