#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: federated_credential_info
short_description: List the federated identity credentials of a managed identity
version_added: 0.1.0
description:
  - Returns every federated identity credential (FIC) of a user-assigned managed identity, following
    paged results, with how many more the identity can take (Azure allows 20).
  - The diagnostics compare a cluster's tokens against this list.
  - Without O(identity) and O(resource_group), searches every user-assigned identity of the subscription
    the caller can read, for example for the FICs that still trust an issuer before it is deleted
    (a deleted issuer whose URL someone else registers again would be trusted by them, the dangling issuer).
author:
  - arcwi maintainers (!UNKNOWN)
options:
  resource_group:
    description: Resource group of the identity. Omitted together with O(identity) to search the subscription.
    type: str
  identity:
    description: Name of the user-assigned managed identity. Omitted together with O(resource_group) to search the subscription.
    type: str
  name:
    description: Only the FIC of this name (an empty list when it does not exist).
    type: str
  issuer:
    description: Only the FICs whose issuer is exactly this (byte for byte, as Entra compares).
    type: str
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.INFO_MODULE
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
requirements:
  - azure-mgmt-msi >= 7.0.0
"""

EXAMPLES = r"""
- name: What does the identity trust?
  arcwi.workload_identity.federated_credential_info:
    resource_group: rg-arcwi-demo
    identity: id-demo-workload
  register: fics

- name: Subjects trusted
  ansible.builtin.debug:
    msg: "{{ fics.federated_credentials | map(attribute='subject') | list }}"

- name: Which identities of the subscription still trust this issuer?
  arcwi.workload_identity.federated_credential_info:
    issuer: https://stissuer.blob.core.windows.net/oidc/
  register: trusting
"""

RETURN = r"""
federated_credentials:
  description: The FICs, in the order Azure lists them.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: ARM ID.
      type: str
    name:
      description: Name.
      type: str
    issuer:
      description: Issuer.
      type: str
    subject:
      description: Subject.
      type: str
    audiences:
      description: Audiences.
      type: list
      elements: str
    identity:
      description: Name of the identity the FIC belongs to.
      type: str
    resource_group:
      description: Resource group of that identity.
      type: str
  sample:
    - id: /subscriptions/.../federatedIdentityCredentials/kind-demo
      name: kind-demo
      issuer: https://stissuer.blob.core.windows.net/oidc/
      subject: system:serviceaccount:demo:workload
      audiences: [api://AzureADTokenExchange]
headroom:
  description: How many more FICs the identity can take (20 minus the number it has).
  returned: when O(identity) is given
  type: int
  sample: 19
identity_exists:
  description: Whether the identity exists (the list is empty when it does not).
  returned: when O(identity) is given
  type: bool
  sample: true
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import AzureModule
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import (
    MAX_FICS,
    FederatedCredentialService,
    IdentityService,
    validate_identity_name,
    validate_resource_group_name,
)

try:
    from azure.mgmt.msi import ManagedServiceIdentityClient
except ImportError:
    import traceback

    MSI_IMPORT_ERROR = traceback.format_exc()
else:
    MSI_IMPORT_ERROR = None


def _rg_of(arm_id: str) -> str:
    parts = arm_id.split("/")
    return parts[parts.index("resourceGroups") + 1] if "resourceGroups" in parts else ""


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            resource_group=dict(type="str"),
            identity=dict(type="str"),
            name=dict(type="str"),
            issuer=dict(type="str"),
        ),
        libraries={"azure-mgmt-msi": MSI_IMPORT_ERROR},
        required_together=[("resource_group", "identity")],
        supports_check_mode=True,
    )
    p = module.params
    result = {}
    try:
        client = module.client(ManagedServiceIdentityClient)
        fics_service = FederatedCredentialService(client)
        if p["identity"]:
            validate_resource_group_name(p["resource_group"])
            validate_identity_name(p["identity"], "identity")
            exists = IdentityService(client).get(p["resource_group"], p["identity"]) is not None
            fics = fics_service.list(p["resource_group"], p["identity"]) if exists else []
            fics = [dict(f, identity=p["identity"], resource_group=p["resource_group"]) for f in fics]
            result = {"headroom": MAX_FICS - len(fics), "identity_exists": exists}
        else:
            fics = []
            for identity in client.user_assigned_identities.list_by_subscription():
                rg = _rg_of(identity.id)
                fics += [dict(f, identity=identity.name, resource_group=rg)
                         for f in fics_service.list(rg, identity.name)]
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    selected = [f for f in fics if (p["name"] is None or f["name"].lower() == p["name"].lower())
                and (p["issuer"] is None or f["issuer"] == p["issuer"])]
    module.exit_json(changed=False, federated_credentials=selected, **result)


if __name__ == "__main__":
    main()
