#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: resource_group
short_description: Create, update or delete an Azure resource group
version_added: 0.1.0
description:
  - Ensures a resource group exists with the given tags, or does not exist.
  - A resource group cannot move; another O(location) for an existing group fails.
  - O(state=absent) deletes the group B(and everything in it), after a lock check done by Azure
    (a C(CanNotDelete) lock anywhere inside makes Azure refuse).
author:
  - arcwi maintainers (!UNKNOWN)
options:
  name:
    description: Name of the resource group.
    type: str
    required: true
  location:
    description: Azure region, for example V(westeurope). Required to create the group.
    type: str
  tags:
    description: Tags of the group. When not set, the tags are left as they are.
    type: dict
  purge_tags:
    description: With O(tags) set, remove tags that are not in O(tags).
    type: bool
    default: true
  state:
    description: Whether the group should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.FULL_SUPPORT
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
requirements:
  - azure-mgmt-resource >= 23.0.0
"""

EXAMPLES = r"""
- name: The group for the demo
  arcwi.workload_identity.resource_group:
    name: rg-arcwi-demo
    location: westeurope
"""

RETURN = r"""
resource_group:
  description: The group after the task (predicted in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    id:
      description: ARM ID (V(null) in check mode before creation).
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-arcwi-demo
    name:
      description: Name.
      type: str
      sample: rg-arcwi-demo
    location:
      description: Region.
      type: str
      sample: westeurope
    tags:
      description: Tags.
      type: dict
      sample: {}
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    RESOURCE_IMPORT_ERROR,
    AzureModule,
    ResourceManagementClient,
    state_spec,
    tags_spec,
)
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import (
    ResourceGroupService,
    ValidationError,
    ensure_resource_group,
    validate_resource_group_name,
)


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            location=dict(type="str"),
            **tags_spec(),
            **state_spec(),
        ),
        libraries={"azure-mgmt-resource": RESOURCE_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    try:
        validate_resource_group_name(p["name"], "name")
        if p["state"] == "present" and p["location"] is not None and not p["location"].strip():
            raise ValidationError("location must not be empty")
        service = ResourceGroupService(module.client(ResourceManagementClient))
        changed, before, after, _tracker = ensure_resource_group(service, p["name"], p["location"], p["tags"],
                                                                 p["purge_tags"], p["state"], module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    module.exit_with_state(changed, "resource_group", before, after)


if __name__ == "__main__":
    main()
