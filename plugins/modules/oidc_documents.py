#!/usr/bin/python
# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: oidc_documents
short_description: Publish and verify a cluster's OIDC discovery document and JWKS in Azure Storage
version_added: 0.1.0
description:
  - Writes C(.well-known/openid-configuration) and C(openid/v1/jwks) under O(issuer) in the storage
    that M(arcwi.workload_identity.issuer_storage) prepared, only when their content differs from what
    is published, with content type C(application/json).
  - Then (O(verify=true)) fetches both anonymously over HTTPS, as Microsoft Entra does, and checks
    that the C(issuer) served is byte-equal to O(issuer) and that every key of O(jwks) is served.
    Freshly written content is polled for up to O(verify_timeout) seconds.
  - The discovery document is the one C(azwi) and kube-apiserver publish, its C(jwks_uri) being
    O(issuer) without a trailing slash, followed by C(/openid/v1/jwks).
author:
  - arcwi maintainers (!UNKNOWN)
options:
  issuer:
    description:
      - The issuer URL, byte for byte the cluster's C(--service-account-issuer), trailing slash
        included or not. It must start with O(base_url).
    type: str
    required: true
  base_url:
    description: The URL the storage serves documents under (RV(arcwi.workload_identity.issuer_storage#module:issuer_base_url)).
    type: str
    required: true
  storage_account:
    description: Name of the storage account.
    type: str
    required: true
  resource_group:
    description: Resource group of the storage account.
    type: str
    required: true
  container:
    description: Container holding the documents (C($web) for the static website).
    type: str
    default: oidc
  jwks:
    description: The JWK set to publish, as returned by M(arcwi.workload_identity.jwks_generate) (public keys only).
    type: dict
    required: true
  verify:
    description: Fetch both documents anonymously over HTTPS afterwards and check them.
    type: bool
    default: true
  verify_timeout:
    description: How long to wait for the published documents to be served, in seconds.
    type: int
    default: 30
extends_documentation_fragment:
  - arcwi.workload_identity.azure
  - arcwi.workload_identity.attributes
  - arcwi.workload_identity.attributes.ACTIONGROUP_AZURE
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; verification runs only when nothing would change.
  diff_mode:
    support: full
  idempotent:
    support: full
requirements:
  - azure-mgmt-storage >= 21.0.0
  - azure-storage-blob >= 12.19.0
  - requests
  - urllib3 >= 1.26.0
notes:
  - What is published is read anonymously through the issuer URL (what Microsoft Entra sees); the
    account key is read with C(listKeys), and never returned, only when something must be written.
  - Reads retry connection failures, 429 and 5xx with backoff, honouring Retry-After. A read that still
    fails makes the module fail without writing, rather than rewrite documents it could not compare.
"""

EXAMPLES = r"""
- name: Keys of the cluster
  arcwi.workload_identity.jwks_generate:
    public_keys: [/etc/arcwi/sa.pub]
  register: jwks

- name: Publish and verify
  arcwi.workload_identity.oidc_documents:
    issuer: "{{ issuer_storage.issuer_base_url }}"
    base_url: "{{ issuer_storage.issuer_base_url }}"
    storage_account: stoidcdemo1234
    resource_group: rg-arcwi-demo
    jwks: "{{ jwks.jwks }}"
"""

RETURN = r"""
published:
  description: The documents as published (or to be published in check mode), by blob path under the issuer.
  returned: always
  type: dict
  contains:
    .well-known/openid-configuration:
      description: The discovery document.
      type: dict
    openid/v1/jwks:
      description: The JWK set.
      type: dict
discovery_url:
  description: URL of the discovery document.
  returned: always
  type: str
  sample: https://stoidcdemo1234.blob.core.windows.net/oidc/.well-known/openid-configuration
jwks_url:
  description: URL of the JWK set (the discovery document's C(jwks_uri)).
  returned: always
  type: str
  sample: https://stoidcdemo1234.blob.core.windows.net/oidc/openid/v1/jwks
read_back:
  description: What an anonymous HTTPS GET served; empty when verification did not run.
  returned: always
  type: dict
  contains:
    discovery:
      description: The discovery document served.
      type: dict
    served_kids:
      description: The kids the served JWK set holds.
      type: list
      elements: str
kids:
  description: The kids of O(jwks).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import AzureModule
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import validate_resource_group_name
from ansible_collections.arcwi.workload_identity.plugins.module_utils._issuer import (
    DISCOVERY_PATH,
    JWKS_PATH,
    TRANSIENT_STATUS,
    BlobDocuments,
    StorageService,
    blob_prefix,
    ensure_documents,
    published_document,
    validate_account_name,
    validate_container_name,
    validate_jwks,
    verify_published,
)

try:
    from azure.mgmt.storage import StorageManagementClient
    from azure.storage.blob import ContentSettings
except ImportError:
    import traceback

    STORAGE_IMPORT_ERROR = traceback.format_exc()
else:
    STORAGE_IMPORT_ERROR = None

try:
    import requests
except ImportError:
    import traceback

    REQUESTS_IMPORT_ERROR = traceback.format_exc()
else:
    REQUESTS_IMPORT_ERROR = None


def _session():
    """A requests session whose GETs retry connection failures, 429 and 5xx with backoff, honouring
    Retry-After (urllib3's Retry); Azure Storage answers 503 ServerBusy or 500 OperationTimedOut when busy."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=4, backoff_factor=0.5, status_forcelist=TRANSIENT_STATUS, allowed_methods=frozenset({"GET"}),
                  respect_retry_after_header=True, raise_on_status=False)
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def _anonymous_get(session, url):
    """GET without any credential, TLS verified (system CAs or REQUESTS_CA_BUNDLE), like Entra does."""
    try:
        response = session.get(url, timeout=15, allow_redirects=False)
    except requests.RequestException as exc:
        return 0, str(exc).encode(), None
    return response.status_code, response.content, response.headers.get("Content-Type")


def main() -> None:
    module = AzureModule(
        argument_spec=dict(
            issuer=dict(type="str", required=True),
            base_url=dict(type="str", required=True),
            storage_account=dict(type="str", required=True),
            resource_group=dict(type="str", required=True),
            container=dict(type="str", default="oidc"),
            jwks=dict(type="dict", required=True),
            verify=dict(type="bool", default=True),
            verify_timeout=dict(type="int", default=30),
        ),
        libraries={"azure-mgmt-storage, azure-storage-blob": STORAGE_IMPORT_ERROR, "requests": REQUESTS_IMPORT_ERROR},
        supports_check_mode=True,
    )
    p = module.params
    issuer = p["issuer"]
    try:
        validate_resource_group_name(p["resource_group"])
        validate_account_name(p["storage_account"], "storage_account")
        validate_container_name(p["container"])
        prefix = blob_prefix(issuer, p["base_url"])
        kids = validate_jwks(p["jwks"])
        storage = StorageService(module.client(StorageManagementClient), None, module.session.subscription_id)
        account = storage.get(p["resource_group"], p["storage_account"])
        if account is None:
            raise ValueError(f"storage_account '{p['storage_account']}' not found in resource group "
                             f"'{p['resource_group']}' (create it with issuer_storage first)")

        session = _session()

        def read(path):
            url = f"{issuer.rstrip('/')}/{path}"
            return published_document(url, *_anonymous_get(session, url))

        def writer():
            # the account key is read only when something must be written (listKeys is a POST)
            key = storage.key(p["resource_group"], p["storage_account"])
            service = module.blob_service_client(account["primary_endpoints"]["blob"],
                                                 credential={"account_name": account["name"], "account_key": key})
            return BlobDocuments(service.get_container_client(p["container"]), ContentSettings)

        changed, published, before, _tracker = ensure_documents(read, writer, prefix, issuer, p["jwks"],
                                                                module.check_mode)
        read_back = {}
        if p["verify"] and not (module.check_mode and changed):
            read_back = verify_published(lambda url: _anonymous_get(session, url)[:2], issuer, kids,
                                         timeout=float(p["verify_timeout"]))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        module.fail_from(exc)
    base = issuer.rstrip("/")
    result = {"changed": changed, "published": published, "read_back": read_back, "kids": kids,
              "discovery_url": f"{base}/{DISCOVERY_PATH}", "jwks_url": f"{base}/{JWKS_PATH}"}
    if module.diff_mode:
        result["diff"] = {"before": before, "after": published}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
