#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: issuer_storage
short_description: Storage that serves a cluster's OIDC issuer documents anonymously over HTTPS
version_added: 0.1.0
description:
  - Ensures a StorageV2 account (HTTPS only, TLS 1.2 minimum) and the hosting of the OIDC issuer
    documents in it, and returns RV(issuer_base_url), the URL under which they are served.
  - O(hosting=public_container) is the seed runbook's way (public blob access allowed on the
    account, a container with public access C(blob)). O(hosting=static_website) serves the C($web)
    container from the static website endpoint, for tenants whose policy forbids public blob access;
    public blob access is then switched off.
  - O(lock=true) puts a C(CanNotDelete) lock on the account. Federated credentials trust the
    account's URL and account names are global; if the account is deleted while credentials still
    trust it, whoever registers the name next can publish their own keys (dangling issuer). Delete
    the federated credentials before the account.
author:
  - arcwi maintainers (!UNKNOWN)
options:
  name:
    description: Storage account name (3-24 lower-case letters and digits, unique across Azure).
    type: str
    required: true
  resource_group:
    description: Resource group of the account.
    type: str
    required: true
  location:
    description: Azure region. Required when O(state=present).
    type: str
  hosting:
    description: How the documents are served.
    type: str
    choices: [public_container, static_website]
    default: public_container
  container:
    description: Container of the documents with O(hosting=public_container) (C($web) is used for the static website).
    type: str
    default: oidc
  sku:
    description: Storage SKU of a new account.
    type: str
    default: Standard_LRS
  tags:
    description: Tags of the account. When not set, the tags are left as they are.
    type: dict
  lock:
    description: Keep a C(CanNotDelete) lock on the account (V(false) removes the module's lock).
    type: bool
    default: false
  state:
    description: Whether the account should exist. V(absent) deletes the account and every document in it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.FULL_SUPPORT
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
requirements:
  - azure-mgmt-storage >= 21.0.0
  - azure-mgmt-resource-locks >= 1.0.0
  - azure-storage-blob >= 12.19.0
notes:
  - The account key is read with C(listKeys) to configure the static website; it never appears in the result.
seealso:
  - module: arcwi.workload_identity.oidc_documents
"""

EXAMPLES = r"""
- name: Issuer storage, public container (the seed's way)
  arcwi.workload_identity.issuer_storage:
    name: stoidcdemo1234
    resource_group: rg-arcwi-demo
    location: westeurope
    lock: true
  register: issuer_storage

- name: Issuer storage behind the static website endpoint
  arcwi.workload_identity.issuer_storage:
    name: stoidcdemo1234
    resource_group: rg-arcwi-demo
    location: westeurope
    hosting: static_website

- name: The issuer URL to use (trailing slash included)
  ansible.builtin.debug:
    msg: "{{ issuer_storage.issuer_base_url }}"
"""

RETURN = r"""
storage_account:
  description: The account after the task (predicted in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    id:
      description: ARM ID (V(null) in check mode before creation).
      type: str
    name:
      description: Name.
      type: str
    location:
      description: Region.
      type: str
    kind:
      description: Kind (V(StorageV2)).
      type: str
    sku:
      description: SKU name.
      type: str
    tags:
      description: Tags.
      type: dict
    https_only:
      description: Whether only HTTPS is allowed (always V(true)).
      type: bool
    minimum_tls_version:
      description: Minimum TLS version (V(TLS1_2)).
      type: str
    allow_blob_public_access:
      description: Whether public blob access is allowed on the account.
      type: bool
    primary_endpoints:
      description: The account's blob and web endpoints.
      type: dict
      sample: {blob: https://stoidcdemo1234.blob.core.windows.net/, web: https://stoidcdemo1234.z6.web.core.windows.net/}
    hosting:
      description: The hosting.
      type: str
    container:
      description: The container that holds the documents.
      type: str
    locked:
      description: Whether the module's C(CanNotDelete) lock is on the account.
      type: bool
    issuer_base_url:
      description: Same as the top-level RV(issuer_base_url).
      type: str
    provisioning_state:
      description: Provisioning state.
      type: str
issuer_base_url:
  description:
    - The URL the documents are served under, with a trailing slash; an issuer is this URL, optionally
      followed by a path. V(null) in check mode before creation.
  returned: when state is present
  type: str
  sample: https://stoidcdemo1234.blob.core.windows.net/oidc/
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import AzureModule, state_spec
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import validate_resource_group_name
from ansible_collections.arcwi.workload_identity.plugins.module_utils._issuer import (
    HOSTINGS,
    StorageService,
    ensure_issuer_storage,
    validate_account_name,
    validate_container_name,
)

try:
    from azure.mgmt.storage import StorageManagementClient
    from azure.mgmt.resource.locks import ManagementLockClient
except ImportError:
    import traceback

    STORAGE_IMPORT_ERROR = traceback.format_exc()
else:
    STORAGE_IMPORT_ERROR = None


class _Website:
    """Static website switch (a data-plane setting of the blob service)."""

    def __init__(self, module, account, key):
        self.client = module.blob_service_client(account["primary_endpoints"]["blob"],
                                                 credential={"account_name": account["name"], "account_key": key})

    def enabled(self) -> bool:
        website = self.client.get_service_properties().get("static_website")
        return bool(website and website.enabled) and self.client.get_container_client("$web").exists()

    def enable(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import StaticWebsite
        self.client.set_service_properties(static_website=StaticWebsite(enabled=True, index_document="index.html"))
        # Azure creates $web when the website is switched on; not every endpoint does (emulators): make sure
        try:
            self.client.create_container("$web")
        except ResourceExistsError:
            pass


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            resource_group=dict(type="str", required=True),
            location=dict(type="str"),
            hosting=dict(type="str", choices=list(HOSTINGS), default="public_container"),
            container=dict(type="str", default="oidc"),
            sku=dict(type="str", default="Standard_LRS"),
            tags=dict(type="dict"),
            lock=dict(type="bool", default=False),
            **state_spec(),
        ),
        libraries={"azure-mgmt-storage, azure-mgmt-resource-locks": STORAGE_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    try:
        validate_resource_group_name(p["resource_group"])
        validate_account_name(p["name"])
        if p["hosting"] == "public_container":
            validate_container_name(p["container"])
        service = StorageService(module.client(StorageManagementClient), module.client(ManagementLockClient),
                                 module.session.subscription_id)
        changed, before, after, _tracker = ensure_issuer_storage(
            service, lambda account, key: _Website(module, account, key), p["resource_group"], p["name"],
            p["location"], p["hosting"], p["container"], p["sku"], p["tags"], p["lock"], p["state"],
            module.check_mode)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    extra = {"issuer_base_url": after["issuer_base_url"]} if after else {}
    module.exit_with_state(changed, "storage_account", before, after, **extra)


if __name__ == "__main__":
    main()
