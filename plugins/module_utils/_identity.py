# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
"""Resource groups, user-assigned identities and their federated identity credentials.

Layers (STYLE.md habit 4): a *service* wraps one SDK client and returns normalised dicts (or None
for "absent"); *ensure* functions hold the decisions (desired vs actual) and take the service as an
argument, so they are unit-testable without a network. Check mode runs the same path and skips the
write; the predicted state has the same shape as the real one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import translate_errors
from ansible_collections.arcwi.workload_identity.plugins.module_utils._diff import DifferenceTracker, compare
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError

FIC_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,119}$")
IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
RG_NAME = re.compile(r"^[-\w.()]{1,90}$")
# Kubernetes: namespace is a DNS-1123 label, a ServiceAccount name a DNS-1123 subdomain
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_FICS = 20
DEFAULT_AUDIENCE = "api://AzureADTokenExchange"


class ValidationError(ArcwiError):
    """Bad input, found before any call to Azure. The message names the field and the rule."""


# --------------------------------------------------------------------------------------------------
# validation (pure)

def validate_resource_group_name(name: str, field: str = "resource_group") -> None:
    if not name or not RG_NAME.match(name) or name.endswith("."):
        raise ValidationError(f"{field} '{name}' is invalid: 1-90 letters, digits, '.', '_', '-', '(' or ')', "
                              "not ending in '.'")


def validate_identity_name(name: str, field: str = "name") -> None:
    if not name or not IDENTITY_NAME.match(name):
        raise ValidationError(f"{field} '{name}' is invalid: a user-assigned identity name is 3-128 letters, "
                              "digits, '-' or '_', starting with a letter or digit")


def validate_issuer(issuer: str, field: str = "issuer") -> None:
    if not issuer:
        raise ValidationError(f"{field} is required")
    if issuer != issuer.strip() or re.search(r"\s", issuer):
        raise ValidationError(f"{field} must not contain whitespace (got {issuer!r}); Entra compares it byte "
                              "for byte with the token's iss claim")
    if len(issuer) > 600:
        raise ValidationError(f"{field} must be at most 600 characters (got {len(issuer)})")
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.netloc:
        raise ValidationError(f"{field} must be an https URL (got {issuer!r})")
    if "*" in issuer:
        raise ValidationError(f"{field} must not contain wildcards")
    if parts.query or parts.fragment:
        raise ValidationError(f"{field} must not have a query or fragment (got {issuer!r})")


def validate_subject(subject: str, field: str = "subject") -> None:
    if not subject:
        raise ValidationError(f"{field} is required and must not be empty")
    if len(subject) > 600:
        raise ValidationError(f"{field} must be at most 600 characters (got {len(subject)})")
    if "*" in subject:
        raise ValidationError(f"{field} must not contain wildcards: Entra matches it exactly")
    if subject != subject.strip():
        raise ValidationError(f"{field} must not have leading or trailing whitespace (got {subject!r})")
    if subject.startswith("system:serviceaccount:"):
        validate_service_account_subject(subject, field)


def service_account_subject(namespace: str, service_account: str) -> str:
    subject = f"system:serviceaccount:{namespace}:{service_account}"
    validate_service_account_subject(subject)
    return subject


def validate_service_account_subject(subject: str, field: str = "subject") -> None:
    parts = subject.split(":")
    if len(parts) != 4 or parts[0] != "system" or parts[1] != "serviceaccount":
        raise ValidationError(f"{field} must be system:serviceaccount:NAMESPACE:SERVICEACCOUNT (got {subject!r})")
    namespace, account = parts[2], parts[3]
    if len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
        raise ValidationError(f"{field}: namespace {namespace!r} is not a valid Kubernetes namespace (lower-case "
                              "letters, digits and '-', at most 63, starting and ending alphanumeric)")
    if len(account) > 253 or not DNS1123_SUBDOMAIN.match(account):
        raise ValidationError(f"{field}: service account {account!r} is not a valid Kubernetes name (lower-case "
                              "DNS subdomain, at most 253 characters)")


def validate_audiences(audiences) -> list:
    unique = list(dict.fromkeys(audiences or []))
    if len(unique) != 1:
        raise ValidationError(f"audiences must hold exactly one audience, Entra allows one per federated "
                              f"credential (got {len(unique)}: {unique})")
    if not unique[0] or len(unique[0]) > 600:
        raise ValidationError("audiences[0] must be a non-empty string of at most 600 characters")
    return unique


def validate_fic_name(name: str, field: str = "name") -> None:
    if not name or not FIC_NAME.match(name):
        raise ValidationError(f"{field} '{name}' is invalid: a federated credential name is 3-120 characters, "
                              "letters, digits, '-' or '_', starting with a letter or digit")


# --------------------------------------------------------------------------------------------------
# normalisation

def _get(obj, attr, default=None):
    if isinstance(obj, dict):
        return obj.get(attr, default)
    return getattr(obj, attr, default)


def normalise_resource_group(rg) -> dict | None:
    if rg is None:
        return None
    return {"id": _get(rg, "id"), "name": _get(rg, "name"), "location": _get(rg, "location"),
            "tags": dict(_get(rg, "tags") or {})}


def normalise_identity(identity) -> dict | None:
    if identity is None:
        return None
    return {
        "id": _get(identity, "id"), "name": _get(identity, "name"), "location": _get(identity, "location"),
        "tags": dict(_get(identity, "tags") or {}), "client_id": _get(identity, "client_id"),
        "principal_id": _get(identity, "principal_id"), "tenant_id": _get(identity, "tenant_id"),
    }


def normalise_fic(fic) -> dict | None:
    if fic is None:
        return None
    return {"id": _get(fic, "id"), "name": _get(fic, "name"), "issuer": _get(fic, "issuer"),
            "subject": _get(fic, "subject"), "audiences": list(_get(fic, "audiences") or [])}


# --------------------------------------------------------------------------------------------------
# services

class ResourceGroupService:
    def __init__(self, client):
        self.client = client

    @translate_errors("get resource group", not_found=None)
    def get(self, name):
        return normalise_resource_group(self.client.resource_groups.get(name))

    @translate_errors("create or update resource group")
    def put(self, name, location, tags):
        return normalise_resource_group(
            self.client.resource_groups.create_or_update(name, {"location": location, "tags": tags}))

    @translate_errors("delete resource group")
    def delete(self, name):
        self.client.resource_groups.begin_delete(name).result()


class IdentityService:
    def __init__(self, client):
        self.client = client

    @translate_errors("get managed identity", not_found=None)
    def get(self, resource_group, name):
        return normalise_identity(self.client.user_assigned_identities.get(resource_group, name))

    @translate_errors("create or update managed identity")
    def put(self, resource_group, name, location, tags):
        return normalise_identity(self.client.user_assigned_identities.create_or_update(
            resource_group, name, {"location": location, "tags": tags}))

    @translate_errors("delete managed identity")
    def delete(self, resource_group, name):
        self.client.user_assigned_identities.delete(resource_group, name)


class FederatedCredentialService:
    def __init__(self, client):
        self.client = client

    @translate_errors("list federated identity credentials")
    def list(self, resource_group, identity):
        return [normalise_fic(f) for f in self.client.federated_identity_credentials.list(resource_group, identity)]

    @translate_errors("create or update federated identity credential")
    def put(self, resource_group, identity, name, issuer, subject, audiences):
        return normalise_fic(self.client.federated_identity_credentials.create_or_update(
            resource_group, identity, name, {"issuer": issuer, "subject": subject, "audiences": audiences}))

    @translate_errors("delete federated identity credential")
    def delete(self, resource_group, identity, name):
        self.client.federated_identity_credentials.delete(resource_group, identity, name)


# --------------------------------------------------------------------------------------------------
# decisions

def desired_tags(actual: dict | None, tags: dict | None, purge_tags: bool) -> dict:
    current = dict((actual or {}).get("tags") or {})
    if tags is None:
        return current
    wanted = {k: str(v) for k, v in tags.items()}
    return wanted if purge_tags else {**current, **wanted}


def compare_tags(wanted: dict, actual: dict | None, tracker: DifferenceTracker) -> None:
    """Tags are compared as one value: a tag that is only on the resource is a difference too
    (compare() ignores keys that are only in the actual state, which would make purging a no-op)."""
    have = dict((actual or {}).get("tags") or {})
    if wanted != have:
        tracker.add(("tags",), have, wanted)


def ensure_resource_group(service, name, location, tags, purge_tags, state, check_mode):
    """-> (changed, before, after, diff tracker)"""
    validate_resource_group_name(name, "name")
    before = service.get(name)
    tracker = DifferenceTracker()
    if state == "absent":
        if before is None:
            return False, None, None, tracker
        tracker.add(("state",), "present", "absent")
        if not check_mode:
            service.delete(name)
        return True, before, None, tracker
    if before is None:
        if not location:
            raise ValidationError("location is required to create resource group '%s'" % name)
        after = {"id": None, "name": name, "location": _norm_location(location), "tags": desired_tags(None, tags, True)}
        tracker.add(("state",), "absent", "present")
        if not check_mode:
            after = service.put(name, _norm_location(location), after["tags"])
        return True, None, after, tracker
    if location and _norm_location(location) != before["location"]:
        raise ValidationError(f"location: resource group '{name}' is in {before['location']}; a resource group "
                              f"cannot move to {_norm_location(location)}")
    want = {"tags": desired_tags(before, tags, purge_tags)}
    compare_tags(want["tags"], before, tracker)
    if not tracker:
        return False, before, before, tracker
    after = dict(before, **want)
    if not check_mode:
        after = service.put(name, before["location"], want["tags"])
    return True, before, after, tracker


def _norm_location(location: str) -> str:
    return (location or "").replace(" ", "").lower()


def ensure_identity(service, resource_group, name, location, tags, purge_tags, state, check_mode):
    """-> (changed, before, after, tracker)"""
    validate_resource_group_name(resource_group)
    validate_identity_name(name)
    if state == "present" and not location:
        raise ValidationError("location is required when state=present (the region of the identity, e.g. "
                              "westeurope)")
    before = service.get(resource_group, name)
    tracker = DifferenceTracker()
    if state == "absent":
        if before is None:
            return False, None, None, tracker
        tracker.add(("state",), "present", "absent")
        if not check_mode:
            service.delete(resource_group, name)
        return True, before, None, tracker
    location = _norm_location(location)
    if before is None:
        tracker.add(("state",), "absent", "present")
        after = {"id": None, "name": name, "location": location, "tags": desired_tags(None, tags, True),
                 "client_id": None, "principal_id": None, "tenant_id": None}
        if not check_mode:
            after = service.put(resource_group, name, location, after["tags"])
        return True, None, after, tracker
    if location != before["location"]:
        raise ValidationError(f"location: identity '{name}' exists in {before['location']}; an identity cannot "
                              f"move to {location} (delete it first, which changes its client id)")
    want = {"tags": desired_tags(before, tags, purge_tags)}
    compare_tags(want["tags"], before, tracker)
    if not tracker:
        return False, before, before, tracker
    after = dict(before, **want)
    if not check_mode:
        after = service.put(resource_group, name, location, want["tags"])
    return True, before, after, tracker


@contextmanager
def identity_write_lock(identity_id: str, timeout: float = 600.0):
    """Serialise FIC writes to one identity between processes of this machine (forks, hosts of one
    play): Azure refuses concurrent writes under one identity with a 409. Writes from other machines
    are covered by retrying that 409 (ArmRetryPolicy with FIC_WRITE_CONFLICTS)."""
    digest = hashlib.sha256(identity_id.lower().encode()).hexdigest()[:24]
    path = os.path.join(tempfile.gettempdir(), f"arcwi-fic-{digest}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ArcwiError(f"timed out after {timeout:.0f}s waiting for other writes to the federated "
                                     f"credentials of {identity_id} (lock {path})")
                time.sleep(delay)  # another process holds the lock; flock has no timeout of its own
                delay = min(delay * 2, 1.0)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def ensure_federated_credential(identities, fics, resource_group, identity, name, issuer, subject, audiences,
                                state, check_mode, lock=identity_write_lock):
    """-> (changed, before, after, tracker). Validates everything before any call."""
    validate_resource_group_name(resource_group)
    validate_identity_name(identity, "identity")
    validate_fic_name(name)
    if state == "present":
        validate_issuer(issuer)
        validate_subject(subject)
        audiences = validate_audiences(audiences)
    parent = identities.get(resource_group, identity)
    tracker = DifferenceTracker()
    if parent is None:
        if state == "absent":
            return False, None, None, tracker
        raise ValidationError(f"identity: managed identity '{identity}' not found in resource group "
                              f"'{resource_group}'")
    existing = fics.list(resource_group, identity)
    before = next((f for f in existing if f["name"].lower() == name.lower()), None)
    if state == "absent":
        if before is None:
            return False, None, None, tracker
        tracker.add(("state",), "present", "absent")
        if not check_mode:
            with lock(parent["id"]):
                fics.delete(resource_group, identity, before["name"])
        return True, before, None, tracker
    for other in existing:
        if other is not before and other["issuer"] == issuer and other["subject"] == subject:
            raise ValidationError(f"federated credential '{other['name']}' of identity '{identity}' already trusts "
                                  f"issuer {issuer!r} and subject {subject!r}; Azure allows one credential per "
                                  f"issuer+subject: use name={other['name']!r} or remove that one first")
    if before is None and len(existing) >= MAX_FICS:
        raise ValidationError(f"identity '{identity}' already has {len(existing)} federated credentials, the "
                              f"maximum is {MAX_FICS}: remove one before adding '{name}' (existing: "
                              f"{', '.join(f['name'] for f in existing)})")
    want = {"issuer": issuer, "subject": subject, "audiences": audiences}
    if before is None:
        tracker.add(("state",), "absent", "present")
        after = {"id": None, "name": name, **want}
    else:
        compare(want, before, set_keys=("audiences",), tracker=tracker)
        if not tracker:
            return False, before, before, tracker
        after = dict(before, **want)
    if not check_mode:
        with lock(parent["id"]):
            after = fics.put(resource_group, identity, before["name"] if before else name, issuer, subject, audiences)
    return True, before, after, tracker
