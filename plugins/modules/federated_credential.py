#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: federated_credential
short_description: Trust a Kubernetes service account (or any OIDC subject) from a managed identity
version_added: 0.1.0
description:
  - Ensures a federated identity credential (FIC) on a user-assigned managed identity, so tokens
    whose C(iss), C(sub) and C(aud) equal O(issuer), O(subject) and O(audiences) can be exchanged for
    Microsoft Entra tokens of the identity.
  - Every rule Azure applies is checked before any call, with a message naming the field (name
    pattern, https issuer of at most 600 characters without whitespace, subject of at most 600
    characters (and the C(system:serviceaccount:NAMESPACE:NAME) form when it starts that way),
    exactly one audience, no wildcards).
  - At most 20 FICs per identity and one per issuer+subject; the module counts and compares first
    and fails clearly instead of letting Azure refuse.
  - An existing FIC of the same name is updated in place when issuer, subject or audience differ.
    O(audiences) is compared as a set.
  - Writes to one identity are serialised with a lock file per identity on the machine running the
    module (forks, several hosts of one play) and retries of Azure's
    C(ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity) conflict for writers
    elsewhere. A new FIC can take a while before Entra accepts tokens for it (AADSTS70021 until then).
author:
  - arcwi maintainers (!UNKNOWN)
options:
  resource_group:
    description: Resource group of the identity.
    type: str
    required: true
  identity:
    description: Name of the user-assigned managed identity.
    type: str
    required: true
  name:
    description: Name of the FIC (3-120 letters, digits, C(-) or C(_), starting with a letter or digit). It cannot be renamed.
    type: str
    required: true
  issuer:
    description:
      - Issuer URL, byte for byte what the cluster puts in the C(iss) claim (the apiserver's
        C(--service-account-issuer)), trailing slash included or not. Required when O(state=present).
    type: str
  subject:
    description:
      - Subject, for a Kubernetes service account C(system:serviceaccount:<namespace>:<name>).
        Case-sensitive. Required when O(state=present).
    type: str
  audiences:
    description: The audience of the tokens. Exactly one.
    type: list
    elements: str
    default: [api://AzureADTokenExchange]
  state:
    description: Whether the FIC should exist.
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
seealso:
  - module: arcwi.workload_identity.federated_credential_info
  - module: arcwi.workload_identity.managed_identity
"""

EXAMPLES = r"""
- name: Trust the workload's service account
  arcwi.workload_identity.federated_credential:
    resource_group: rg-arcwi-demo
    identity: id-demo-workload
    name: kind-demo-workload
    issuer: "{{ oidc_issuer_url }}"
    subject: system:serviceaccount:demo:workload

- name: Remove it
  arcwi.workload_identity.federated_credential:
    resource_group: rg-arcwi-demo
    identity: id-demo-workload
    name: kind-demo-workload
    state: absent
"""

RETURN = r"""
federated_credential:
  description: The FIC after the task (predicted in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    id:
      description: ARM ID (V(null) in check mode before creation).
      type: str
      sample: /subscriptions/.../userAssignedIdentities/id-demo/federatedIdentityCredentials/kind-demo
    name:
      description: Name.
      type: str
      sample: kind-demo-workload
    issuer:
      description: Issuer.
      type: str
      sample: https://stissuer.blob.core.windows.net/oidc/
    subject:
      description: Subject.
      type: str
      sample: system:serviceaccount:demo:workload
    audiences:
      description: Audiences.
      type: list
      elements: str
      sample: [api://AzureADTokenExchange]
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import FIC_WRITE_CONFLICTS, AzureModule, state_spec
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import (
    FederatedCredentialService,
    IdentityService,
    ensure_federated_credential,
)

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
            resource_group=dict(type="str", required=True),
            identity=dict(type="str", required=True),
            name=dict(type="str", required=True),
            issuer=dict(type="str"),
            subject=dict(type="str"),
            audiences=dict(type="list", elements="str", default=["api://AzureADTokenExchange"]),
            **state_spec(),
        ),
        libraries={"azure-mgmt-msi": MSI_IMPORT_ERROR},
        required_if=[("state", "present", ("issuer", "subject"))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        # ensure_federated_credential checks every rule before its first call
        client = module.client(ManagedServiceIdentityClient, retry_error_codes=FIC_WRITE_CONFLICTS)
        changed, before, after, _tracker = ensure_federated_credential(
            IdentityService(client), FederatedCredentialService(client), p["resource_group"], p["identity"],
            p["name"], p["issuer"], p["subject"], p["audiences"], p["state"], module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    module.exit_with_state(changed, "federated_credential", before, after)


if __name__ == "__main__":
    main()
