#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_identity
short_description: Create, update or delete a user-assigned managed identity
version_added: 0.1.0
description:
  - Ensures a user-assigned managed identity exists (or does not) in a resource group.
  - The identity's C(client_id), C(principal_id) and C(tenant_id) are assigned by Azure at creation
    and returned; they are what the Kubernetes ServiceAccount annotation, role assignments and
    federated credentials refer to.
  - An identity cannot move to another region; asking for another O(location) fails instead of
    deleting it (which would change its client ID).
author:
  - arcwi maintainers (!UNKNOWN)
options:
  name:
    description: Name of the identity (3-128 letters, digits, C(-) or C(_), starting with a letter or digit).
    type: str
    required: true
  resource_group:
    description: Resource group of the identity. It must exist.
    type: str
    required: true
  location:
    description:
      - Azure region, for example V(westeurope). Required when O(state=present).
    type: str
  tags:
    description:
      - Tags of the identity. When not set, the tags are left as they are.
    type: dict
  purge_tags:
    description:
      - With O(tags) set, remove tags that are not in O(tags). V(false) only adds and updates.
    type: bool
    default: true
  state:
    description: Whether the identity should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.FULL_SUPPORT
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
requirements:
  - azure-mgmt-msi >= 7.0.0
notes:
  - Deleting an identity deletes its federated credentials; role assignments that named it remain
    in Azure as assignments of an unknown principal until removed.
seealso:
  - module: arcwi.workload_identity.federated_credential
  - module: arcwi.workload_identity.role_assignment
"""

EXAMPLES = r"""
- name: An identity for the workload
  arcwi.workload_identity.managed_identity:
    name: id-demo-workload
    resource_group: rg-arcwi-demo
    location: westeurope
    tags:
      owner: platform-team
  register: wi

- name: Show its client id
  ansible.builtin.debug:
    msg: "client id {{ wi.identity.client_id }}"

- name: Remove it
  arcwi.workload_identity.managed_identity:
    name: id-demo-workload
    resource_group: rg-arcwi-demo
    state: absent
"""

RETURN = r"""
identity:
  description: The identity after the task (predicted in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    id:
      description: ARM resource ID (V(null) in check mode before creation).
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-demo
    name:
      description: Name.
      type: str
      sample: id-demo
    location:
      description: Region.
      type: str
      sample: westeurope
    tags:
      description: Tags.
      type: dict
      sample: {owner: platform-team}
    client_id:
      description: Client (application) ID; V(null) in check mode before creation.
      type: str
      sample: 11111111-2222-3333-4444-555555555555
    principal_id:
      description: Object ID of the identity's service principal, for role assignments.
      type: str
      sample: 66666666-7777-8888-9999-000000000000
    tenant_id:
      description: Microsoft Entra tenant of the identity.
      type: str
      sample: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import AzureModule, state_spec, tags_spec
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import IdentityService, ensure_identity

try:
    from azure.mgmt.msi import ManagedServiceIdentityClient
except ImportError:
    import traceback

    MSI_IMPORT_ERROR = traceback.format_exc()
else:
    MSI_IMPORT_ERROR = None


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            resource_group=dict(type="str", required=True),
            location=dict(type="str"),
            **tags_spec(),
            **state_spec(),
        ),
        libraries={"azure-mgmt-msi": MSI_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    try:
        # ensure_identity checks the input before its first call
        service = IdentityService(module.client(ManagedServiceIdentityClient))
        changed, before, after, tracker = ensure_identity(service, p["resource_group"], p["name"], p["location"],
                                                          p["tags"], p["purge_tags"], p["state"], module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    module.exit_with_state(changed, "identity", before, after)


if __name__ == "__main__":
    main()
