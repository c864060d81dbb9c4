"""ARM emulator: user-assigned identities and federated identity credentials, with the real SDK.

Sources: azure-rest-api-specs specification/msi (2024-11-30); learn.microsoft.com/entra/workload-id/
workload-identity-federation-considerations (limits, name/issuer/subject/audience rules, concurrency 409);
AZURE_FACTS.md (managed identity RP throttling).
"""
from __future__ import annotations

import threading

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient

API = "2024-11-30"
AUD = ["api://AzureADTokenExchange"]
ISSUER = "https://oidc.example.invalid/issuer/"


@pytest.fixture
def msi(sandbox):
    return sandbox.client(ManagedServiceIdentityClient)


@pytest.fixture
def identity(msi, resource_group, unique):
    return msi.user_assigned_identities.create_or_update(resource_group, f"id-{unique}", {"location": "westeurope"})


@pytest.fixture(autouse=True)
def no_throttle(sandbox):
    # most tests write quickly; the throttling rule has its own test below
    with sandbox.settings(throttle_enabled=False, fic_write_seconds=0.0):
        yield


def fic(msi, rg, ident, name, subject="system:serviceaccount:ns:sa", issuer=ISSUER, audiences=None):
    return msi.federated_identity_credentials.create_or_update(
        rg, ident, name, {"issuer": issuer, "subject": subject, "audiences": audiences or AUD})


def test_identity_create_is_idempotent_and_ids_are_read_only(sandbox, msi, resource_group, unique):
    name = f"id-{unique}"
    first = msi.user_assigned_identities.create_or_update(resource_group, name, {"location": "westeurope"})
    assert first.tenant_id == sandbox.tenant_id
    assert first.client_id and first.principal_id and first.client_id != first.principal_id
    again = msi.user_assigned_identities.create_or_update(
        resource_group, name, {"location": "westeurope", "tags": {"team": "a"}})
    assert (again.client_id, again.principal_id) == (first.client_id, first.principal_id)
    assert again.tags == {"team": "a"}
    got = msi.user_assigned_identities.get(resource_group, name)
    assert got.id == f"{sandbox.sub_scope}/resourceGroups/{resource_group}/providers/" \
                     f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    assert name in [i.name for i in msi.user_assigned_identities.list_by_resource_group(resource_group)]
    assert name in [i.name for i in msi.user_assigned_identities.list_by_subscription()]


def test_identity_create_status_codes(sandbox, resource_group, unique):
    # Source: spec: 201 on create, 200 on update
    path = f"{sandbox.sub_scope}/resourceGroups/{resource_group}/providers/Microsoft.ManagedIdentity/" \
           f"userAssignedIdentities/id-{unique}"
    assert sandbox.raw("PUT", path, {"location": "westeurope"}, api_version=API).status_code == 201
    assert sandbox.raw("PUT", path, {"location": "westeurope"}, api_version=API).status_code == 200
    assert sandbox.raw("DELETE", path, api_version=API).status_code == 200
    assert sandbox.raw("DELETE", path, api_version=API).status_code == 204


def test_identity_patch_updates_tags(msi, identity, resource_group):
    patched = msi.user_assigned_identities.update(resource_group, identity.name, {"tags": {"x": "y"}})
    assert patched.tags == {"x": "y"} and patched.client_id == identity.client_id


@pytest.mark.parametrize("name", ["ab", "-leading-hyphen", "has space", "x" * 129, "dot.name"])
def test_identity_name_rules(msi, resource_group, name):
    # Source: resource-name-rules, Microsoft.ManagedIdentity/userAssignedIdentities: 3-128, alphanumerics - _
    with pytest.raises(HttpResponseError) as err:
        msi.user_assigned_identities.create_or_update(resource_group, name, {"location": "westeurope"})
    assert err.value.status_code == 400
    assert err.value.error.code == "InvalidResourceName"


def test_identity_requires_location_and_cannot_move(msi, resource_group, unique):
    with pytest.raises(HttpResponseError) as err:
        msi.user_assigned_identities.create_or_update(resource_group, f"id-{unique}", {})
    assert err.value.error.code == "LocationRequired"
    msi.user_assigned_identities.create_or_update(resource_group, f"id-{unique}", {"location": "westeurope"})
    with pytest.raises(HttpResponseError) as err:
        msi.user_assigned_identities.create_or_update(resource_group, f"id-{unique}", {"location": "eastus"})
    assert err.value.error.code == "InvalidResourceLocation"


def test_identity_in_missing_group_and_missing_identity(msi, resource_group, unique):
    with pytest.raises(ResourceNotFoundError) as err:
        msi.user_assigned_identities.create_or_update(f"rg-missing-{unique}", "abc", {"location": "westeurope"})
    assert err.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as err:
        msi.user_assigned_identities.get(resource_group, f"nope-{unique}")
    assert err.value.error.code == "ResourceNotFound"


def test_fic_lifecycle(sandbox, msi, identity, resource_group):
    created = fic(msi, resource_group, identity.name, "kubernetes-sa")
    assert created.issuer == ISSUER and created.subject == "system:serviceaccount:ns:sa"
    assert created.audiences == AUD
    assert created.type == "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials"
    # update in place: same name, new subject
    updated = fic(msi, resource_group, identity.name, "kubernetes-sa", subject="system:serviceaccount:ns:other")
    assert updated.id == created.id and updated.subject.endswith(":other")
    listed = list(msi.federated_identity_credentials.list(resource_group, identity.name))
    assert [f.name for f in listed] == ["kubernetes-sa"]
    msi.federated_identity_credentials.delete(resource_group, identity.name, "kubernetes-sa")
    with pytest.raises(ResourceNotFoundError):
        msi.federated_identity_credentials.get(resource_group, identity.name, "kubernetes-sa")


def test_fic_status_codes(sandbox, identity, resource_group):
    # Source: spec: 201 created / 200 updated; DELETE 200 or 204
    path = f"{identity.id}/federatedIdentityCredentials/codes"
    body = {"properties": {"issuer": ISSUER, "subject": "s", "audiences": AUD}}
    assert sandbox.raw("PUT", path, body, api_version=API).status_code == 201
    assert sandbox.raw("PUT", path, body, api_version=API).status_code == 200
    assert sandbox.raw("DELETE", path, api_version=API).status_code == 200
    assert sandbox.raw("DELETE", path, api_version=API).status_code == 204
    # FICs did not exist before 2022-01-31-preview
    assert sandbox.raw("GET", f"{identity.id}/federatedIdentityCredentials", api_version="2018-11-30").status_code == 400


@pytest.mark.parametrize("name,props,fragment", [
    ("ab", {}, "name"),                                                  # 3-120 chars
    ("-bad", {}, "name"),                                                # must start alphanumeric
    ("x" * 121, {}, "name"),
    ("ok-name", {"issuer": "http://oidc.example.invalid/"}, "https"),    # https only
    ("ok-name", {"issuer": "https://" + "a" * 600}, "600"),              # at most 600 chars
    ("ok-name", {"issuer": " https://oidc.example.invalid/"}, "whitespace"),
    ("ok-name", {"subject": ""}, "subject"),
    ("ok-name", {"subject": "s" * 601}, "600"),
    ("ok-name", {"audiences": ["a", "b"]}, "exactly one audience"),
    ("ok-name", {"audiences": []}, "exactly one audience"),
    ("ok-name", {"subject": "system:serviceaccount:*:sa"}, "Wildcards"),
])
def test_fic_validation(sandbox, identity, name, props, fragment):
    body = {"properties": {"issuer": ISSUER, "subject": "system:serviceaccount:ns:sa", "audiences": AUD, **props}}
    resp = sandbox.raw("PUT", f"{identity.id}/federatedIdentityCredentials/{name}", body, api_version=API)
    assert resp.status_code == 400, resp.text
    assert fragment.lower() in resp.json()["error"]["message"].lower()


def test_fic_missing_parent_is_404(sandbox, msi, resource_group, unique):
    with pytest.raises(ResourceNotFoundError) as err:
        fic(msi, resource_group, f"nope-{unique}", "abc")
    assert err.value.error.code == "ResourceNotFound"


def test_fic_issuer_subject_unique_and_case_sensitive(msi, identity, resource_group):
    fic(msi, resource_group, identity.name, "first", subject="system:serviceaccount:ns:sa")
    with pytest.raises(HttpResponseError) as err:
        fic(msi, resource_group, identity.name, "second", subject="system:serviceaccount:ns:sa")
    assert "Issuer and subject combination already exists for this Managed Identity." in err.value.error.message
    # values are case-sensitive: a subject differing only in case is another subject
    fic(msi, resource_group, identity.name, "third", subject="system:serviceaccount:NS:sa")
    # and an issuer differing only by its trailing slash is another issuer
    fic(msi, resource_group, identity.name, "fourth", subject="system:serviceaccount:ns:sa", issuer=ISSUER.rstrip("/"))


def test_fic_limit_of_20_and_paging(sandbox, msi, identity, resource_group):
    for i in range(20):
        fic(msi, resource_group, identity.name, f"fic-{i:02d}", subject=f"system:serviceaccount:ns:sa{i}")
    with pytest.raises(HttpResponseError) as err:
        fic(msi, resource_group, identity.name, "fic-20", subject="system:serviceaccount:ns:sa20")
    assert "maximum number of 20" in err.value.error.message
    # an update of an existing one is still allowed at the limit
    fic(msi, resource_group, identity.name, "fic-00", subject="system:serviceaccount:ns:changed")
    # the list pages (nextLink) and the SDK follows it
    first_page = sandbox.raw("GET", f"{identity.id}/federatedIdentityCredentials", api_version=API).json()
    assert len(first_page["value"]) < 20 and "nextLink" in first_page
    assert len(list(msi.federated_identity_credentials.list(resource_group, identity.name))) == 20


def test_concurrent_fic_writes_on_one_identity_conflict(sandbox, msi, identity, resource_group, unique):
    # Source: workload-identity-federation-considerations: concurrent writes under one identity -> 409
    other = msi.user_assigned_identities.create_or_update(resource_group, f"other-{unique}", {"location": "westeurope"})
    results = {}
    barrier = threading.Barrier(3)

    def put(key, ident, name, subject):
        body = {"properties": {"issuer": ISSUER, "subject": subject, "audiences": AUD}}
        token = sandbox.token()
        barrier.wait()
        results[key] = sandbox.raw("PUT", f"{ident.id}/federatedIdentityCredentials/{name}", body, api_version=API,
                                   token=token)

    with sandbox.settings(fic_write_seconds=1.0):
        threads = [threading.Thread(target=put, args=("a", identity, "one", "s1")),
                   threading.Thread(target=put, args=("b", identity, "two", "s2")),
                   threading.Thread(target=put, args=("c", other, "three", "s3"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    same_identity = sorted([results["a"].status_code, results["b"].status_code])
    assert same_identity == [201, 409]
    conflict = results["a"] if results["a"].status_code == 409 else results["b"]
    error = conflict.json()["error"]
    assert error["code"] == "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"
    assert "Concurrent Federated Identity Credentials writes under the same managed identity are not supported." \
        in error["message"]
    assert results["c"].status_code == 201, "another identity is written in parallel without conflict"


def test_write_throttling_answers_429_with_retry_after(sandbox, identity, resource_group):
    # Source: AZURE_FACTS.md, managed identity RP limits: create/update 0.25 requests/s per resource
    body = {"properties": {"issuer": ISSUER, "subject": "s", "audiences": AUD}}
    path = f"{identity.id}/federatedIdentityCredentials/throttled"
    with sandbox.settings(throttle_enabled=True, msi_write_rate_per_resource=0.25, msi_write_burst_per_resource=2):
        statuses = [sandbox.raw("PUT", path, body, api_version=API) for _ in range(3)]
    assert [r.status_code for r in statuses[:2]] == [201, 200]
    assert statuses[2].status_code == 429
    assert int(statuses[2].headers["Retry-After"]) >= 1


def test_delete_identity_removes_its_fics(msi, identity, resource_group):
    fic(msi, resource_group, identity.name, "goes-away")
    msi.user_assigned_identities.delete(resource_group, identity.name)
    with pytest.raises(ResourceNotFoundError):
        msi.federated_identity_credentials.get(resource_group, identity.name, "goes-away")
