# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
"""Hosting the OIDC issuer documents in Azure Storage, and the documents themselves.

Two hostings (AZURE_FACTS.md, "OIDC issuer documents"):
- public_container: public blob access allowed on the account, a container with public access
  `blob`; issuer base URL `{primaryEndpoints.blob}{container}/` (the seed runbook's way).
- static_website: the `$web` container served by the static website endpoint
  `primaryEndpoints.web`, for tenants whose policy forbids public blob access
  (azure-workload-identity's scripts/wi-kind-setup.sh).
"""

from __future__ import annotations

import json
import re
import time

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import as_rest, translate_errors
from ansible_collections.arcwi.workload_identity.plugins.module_utils._diff import DifferenceTracker, compare
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError
from ansible_collections.arcwi.workload_identity.plugins.module_utils._identity import (
    ValidationError,
    compare_tags,
    validate_issuer,
    validate_resource_group_name,
)

ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
LOCK_NAME = "arcwi-issuer-cannot-delete"
DISCOVERY_PATH = ".well-known/openid-configuration"
JWKS_PATH = "openid/v1/jwks"
HOSTINGS = ("public_container", "static_website")


class VerificationError(ArcwiError):
    """The published documents do not serve what was asked for."""


def validate_account_name(name: str, field: str = "name") -> None:
    if not name or not ACCOUNT_NAME.match(name):
        raise ValidationError(f"{field} '{name}' is not a valid storage account name: 3-24 lower-case letters "
                              "and digits (it is part of a global DNS name)")


def validate_container_name(name: str, field: str = "container") -> None:
    if name == "$web":
        return
    if not name or not CONTAINER_NAME.match(name):
        raise ValidationError(f"{field} '{name}' is not a valid container name: 3-63 lower-case letters, digits "
                              "and single hyphens, starting and ending with a letter or digit")


def normalise_account(acct) -> dict | None:
    rest = as_rest(acct)
    if rest is None:
        return None
    props = rest.get("properties") or {}
    endpoints = props.get("primaryEndpoints") or {}
    return {
        "id": rest.get("id"), "name": rest.get("name"), "location": rest.get("location"),
        "kind": rest.get("kind"), "sku": (rest.get("sku") or {}).get("name"),
        "tags": dict(rest.get("tags") or {}),
        "https_only": props.get("supportsHttpsTrafficOnly"),
        "minimum_tls_version": props.get("minimumTlsVersion"),
        "allow_blob_public_access": bool(props.get("allowBlobPublicAccess", False)),
        "primary_endpoints": {"blob": endpoints.get("blob"), "web": endpoints.get("web")},
        "provisioning_state": props.get("provisioningState"),
    }


class StorageService:
    """ARM side: accounts, containers, keys (never returned), locks. Bodies in REST shape, which both
    SDK generations accept."""

    def __init__(self, storage_client, lock_client, subscription_id):
        self.client = storage_client
        self.locks = lock_client
        self.subscription_id = subscription_id

    @translate_errors("get storage account", not_found=None)
    def get(self, rg, name):
        return normalise_account(self.client.storage_accounts.get_properties(rg, name))

    @translate_errors("check storage account name")
    def name_available(self, name):
        query = {"name": name, "type": "Microsoft.Storage/storageAccounts"}
        result = as_rest(self.client.storage_accounts.check_name_availability(query))
        return bool(result.get("nameAvailable")), result.get("message")

    @translate_errors("create storage account")
    def create(self, rg, name, location, sku, tags, public_access):
        return normalise_account(self.client.storage_accounts.begin_create(rg, name, {
            "location": location, "sku": {"name": sku}, "kind": "StorageV2", "tags": tags,
            "properties": {"supportsHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2",
                           "allowBlobPublicAccess": public_access}}).result())

    @translate_errors("update storage account")
    def update(self, rg, name, tags, public_access):
        return normalise_account(self.client.storage_accounts.update(rg, name, {
            "tags": tags, "properties": {"supportsHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2",
                                         "allowBlobPublicAccess": public_access}}))

    @translate_errors("delete storage account")
    def delete(self, rg, name):
        self.client.storage_accounts.delete(rg, name)

    @translate_errors("get container", not_found=None)
    def get_container(self, rg, name, container):
        rest = as_rest(self.client.blob_containers.get(rg, name, container))
        return {"name": rest.get("name"), "public_access": (rest.get("properties") or {}).get("publicAccess") or "None"}

    @translate_errors("create container")
    def put_container(self, rg, name, container, public_access):
        self.client.blob_containers.create(rg, name, container, {"properties": {"publicAccess": public_access}})

    @translate_errors("list storage account keys")
    def key(self, rg, name):
        return as_rest(self.client.storage_accounts.list_keys(rg, name))["keys"][0]["value"]

    def _lock_scope(self, rg, name):
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Storage/" \
               f"storageAccounts/{name}"

    @translate_errors("get lock", not_found=None)
    def get_lock(self, rg, name):
        rest = as_rest(self.locks.management_locks.get_by_scope(self._lock_scope(rg, name), LOCK_NAME))
        return {"name": rest.get("name"), "level": (rest.get("properties") or {}).get("level")}

    @translate_errors("create lock")
    def put_lock(self, rg, name):
        self.locks.management_locks.create_or_update_by_scope(self._lock_scope(rg, name), LOCK_NAME, {
            "properties": {
                "level": "CanNotDelete",
                "notes": "Protects the OIDC issuer of a Kubernetes cluster: federated credentials trust this "
                         "account's URL. Delete them before this account (dangling-issuer risk)."}})

    @translate_errors("delete lock")
    def delete_lock(self, rg, name):
        self.locks.management_locks.delete_by_scope(self._lock_scope(rg, name), LOCK_NAME)


def issuer_base_url(account: dict, hosting: str, container: str) -> str | None:
    if hosting == "static_website":
        return account["primary_endpoints"].get("web")
    blob = account["primary_endpoints"].get("blob")
    return f"{blob.rstrip('/')}/{container}/" if blob else None


def ensure_issuer_storage(service, website, rg, name, location, hosting, container, sku, tags, lock, state,
                          check_mode):
    """-> (changed, before, after, tracker). `website` is a callable(account, key) -> WebsiteService."""
    validate_resource_group_name(rg)
    validate_account_name(name)
    if hosting not in HOSTINGS:
        raise ValidationError(f"hosting must be one of {', '.join(HOSTINGS)}")
    container = "$web" if hosting == "static_website" else container
    validate_container_name(container)
    tracker = DifferenceTracker()
    before = service.get(rg, name)
    if state == "absent":
        if before is None:
            return False, None, None, tracker
        tracker.add(("state",), "present", "absent")
        if not check_mode:
            service.delete(rg, name)
        return True, _view(before, hosting, container), None, tracker
    if not location:
        raise ValidationError("location is required when state=present")
    location = location.replace(" ", "").lower()
    public = hosting == "public_container"
    if before is None:
        tags = {k: str(v) for k, v in (tags or {}).items()}
        available, message = service.name_available(name)
        if not available:
            raise ValidationError(f"name: storage account name '{name}' is not available ({message}); account names "
                                  "are global across Azure, choose another")
        tracker.add(("storage_account",), None, name)
        account = {"id": None, "name": name, "location": location, "kind": "StorageV2", "sku": sku,
                   "tags": tags, "https_only": True, "minimum_tls_version": "TLS1_2",
                   "allow_blob_public_access": public, "primary_endpoints": {"blob": None, "web": None},
                   "provisioning_state": None}
        if not check_mode:
            account = service.create(rg, name, location, sku, tags, public)
    else:
        if before["location"] != location:
            raise ValidationError(f"location: storage account '{name}' is in {before['location']}, not {location}")
        want = {"https_only": True, "minimum_tls_version": "TLS1_2"}
        # public_container needs public blob access; static_website never needs it, so it is switched off
        want["allow_blob_public_access"] = public
        compare(want, before, tracker=tracker)
        if tags is not None:
            want["tags"] = {k: str(v) for k, v in tags.items()}
            compare_tags(want["tags"], before, tracker)
        account = dict(before, **want)
        if tracker and not check_mode:
            account = service.update(rg, name, want.get("tags", before["tags"]), public)
    # hosting
    if public:
        current = service.get_container(rg, name, container) if before else None
        if current is None or current["public_access"].lower() != "blob":
            tracker.add(("container", container, "public_access"), current and current["public_access"], "Blob")
            if not check_mode:
                service.put_container(rg, name, container, "Blob")
    else:
        # in check mode an account that does not exist yet has no website to read: it would be enabled
        site = website(account, service.key(rg, name)) if (before or not check_mode) else None
        if site is None or not site.enabled():
            tracker.add(("static_website", "enabled"), False, True)
            if not check_mode:
                site.enable()
    # lock
    current_lock = service.get_lock(rg, name) if before else None
    if lock and current_lock is None:
        tracker.add(("lock",), None, LOCK_NAME)
        if not check_mode:
            service.put_lock(rg, name)
    elif not lock and current_lock is not None:
        tracker.add(("lock",), LOCK_NAME, None)
        if not check_mode:
            service.delete_lock(rg, name)
    after = _view(account, hosting, container, locked=lock)
    return bool(tracker), (_view(before, hosting, container, locked=current_lock is not None)
                           if before else None), after, tracker


def _view(account, hosting, container, locked=False):
    if account is None:
        return None
    view = dict(account)
    view["hosting"] = hosting
    view["container"] = container
    view["locked"] = bool(locked)
    view["issuer_base_url"] = issuer_base_url(account, hosting, container) if account.get("primary_endpoints") \
        else None
    return view


# --------------------------------------------------------------------------------------------------
# documents

def discovery_document(issuer: str) -> dict:
    """The document azwi and kube-apiserver publish (AZURE_FACTS.md, 'OIDC issuer documents')."""
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer.rstrip('/')}/{JWKS_PATH}",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }


def canonical(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


def blob_prefix(issuer: str, base_url: str) -> str:
    """The blob path of the issuer under the container: issuer must lie under base_url."""
    validate_issuer(issuer)
    if not base_url:
        raise ValidationError("base_url is required (the issuer_base_url issuer_storage returned)")
    base = base_url if base_url.endswith("/") else base_url + "/"
    if not (issuer == base.rstrip("/") or issuer.startswith(base)):
        raise ValidationError(f"issuer {issuer!r} is not served by the storage it is published to ({base}); the "
                              "issuer must start with issuer_base_url")
    rest = issuer[len(base):] if issuer.startswith(base) else ""
    rest = rest.strip("/")
    return f"{rest}/" if rest else ""


def validate_jwks(jwks) -> list:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValidationError("jwks must be a JWK set with at least one key: {\"keys\": [...]} (from jwks_generate)")
    kids = []
    for i, key in enumerate(jwks["keys"]):
        if not isinstance(key, dict) or not key.get("kid") or not key.get("kty"):
            raise ValidationError(f"jwks.keys[{i}] must have kid and kty")
        if any(k in key for k in ("d", "p", "q", "dp", "dq", "qi")):
            raise ValidationError(f"jwks.keys[{i}] holds private key material; publish public keys only")
        kids.append(key["kid"])
    return kids


class BlobDocuments:
    """Data plane writes of the two documents in one container (account key credential)."""

    def __init__(self, container_client, content_settings_cls):
        self.container = container_client
        self.content_settings_cls = content_settings_cls

    def write(self, blob_name, data: bytes):
        self.container.upload_blob(blob_name, data, overwrite=True,
                                   content_settings=self.content_settings_cls(content_type="application/json",
                                                                              cache_control="max-age=300"))


TRANSIENT_STATUS = (429, 500, 502, 503, 504)


class PublishedReadError(ArcwiError):
    """What is published could not be read (after retries), so whether it must be written is unknown."""


def published_document(url: str, status: int, body: bytes, content_type):
    """-> (bytes|None, content_type) of an anonymous GET of a published document.

    200 is the document; any other answer that says "not served" (404, or a 403/409 of a container
    that is not public yet) means it must be written. A connection failure (status 0), 429 or 5xx
    left after the caller's retries says nothing about the document: writing on it would report a
    change that may not be one (and predict one in check mode), so it fails instead.
    """
    if status == 200:
        return body, content_type
    if status == 0 or status in TRANSIENT_STATUS:
        detail = body.decode("utf-8", "replace")[:200] if body else ""
        answer = f"HTTP {status}" if status else "no answer"
        raise PublishedReadError(f"reading {url} failed after retries ({answer}{': ' + detail if detail else ''}); "
                                 "nothing was written, run again when the storage endpoint answers")
    return None, None


def ensure_documents(read, writer, prefix: str, issuer: str, jwks: dict, check_mode: bool):
    """-> (changed, published: {path: doc}, before: {path: doc|None}, tracker)

    ``read(path) -> (bytes|None, content_type)`` reads what is served under the issuer (anonymously:
    what Entra sees, and no key is needed when nothing changes); ``writer()`` returns the object
    whose ``write(blob_name, data)`` publishes, created only when something must be written.
    """
    tracker = DifferenceTracker()
    wanted = {DISCOVERY_PATH: discovery_document(issuer), JWKS_PATH: jwks}
    before = {}
    target = None
    for path, doc in wanted.items():
        data, content_type = read(path)
        parsed = None
        if data is not None:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = data.decode("utf-8", "replace")
        before[path] = parsed
        if data != canonical(doc) or (content_type or "").split(";")[0].strip() != "application/json":
            tracker.add((path,), parsed, doc)
            if not check_mode:
                target = target or writer()
                target.write(prefix + path, canonical(doc))
    return bool(tracker), wanted, before, tracker


def verify_published(fetch, issuer: str, kids: list, timeout: float = 30.0, clock=time):
    """Anonymous HTTPS GET of both documents; the issuer must be byte-equal, every kid served.

    ``fetch(url) -> (status, bytes)``. Polls until ``timeout`` for freshly written content.
    """
    discovery_url = f"{issuer.rstrip('/')}/{DISCOVERY_PATH}"
    deadline = clock.monotonic() + timeout
    problem = "not fetched"
    read = {}
    while True:
        status, body = fetch(discovery_url)
        if status == 200:
            try:
                discovery = json.loads(body)
            except ValueError:
                discovery = None
            if not isinstance(discovery, dict):
                problem = f"{discovery_url} is not a JSON object"
            elif discovery.get("issuer") != issuer:
                problem = (f"{discovery_url} says issuer {discovery.get('issuer')!r}, expected {issuer!r} byte for "
                           "byte (Entra would answer AADSTS700211 or 90061)")
            else:
                jwks_url = discovery.get("jwks_uri", "")
                jstatus, jbody = fetch(jwks_url)
                if jstatus != 200:
                    problem = f"{jwks_url} answered HTTP {jstatus} to an anonymous GET"
                else:
                    try:
                        served = [k.get("kid") for k in json.loads(jbody).get("keys", [])]
                    except (ValueError, AttributeError):
                        served = []
                    missing = [k for k in kids if k not in served]
                    read = {"discovery": discovery, "discovery_url": discovery_url, "jwks_url": jwks_url,
                            "served_kids": served}
                    if not missing:
                        return read
                    problem = f"{jwks_url} does not serve kid(s) {', '.join(missing)} (serves {served})"
        else:
            problem = (f"{discovery_url} answered HTTP {status} to an anonymous GET (Entra would answer AADSTS90061); "
                       "is the container public, or the static website enabled?")
        if clock.monotonic() >= deadline:
            raise VerificationError(f"issuer verification failed: {problem}")
        clock.sleep(1.0)
