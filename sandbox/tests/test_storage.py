"""Microsoft.Storage in the ARM emulator, Azurite behind it and the static website endpoint, driven with
the real SDKs (azure-mgmt-storage, azure-storage-blob) and anonymous HTTPS reads (requests).

Sources (each test names its own): azure-rest-api-specs specification/storage/resource-manager
(StorageAccounts_Create LRO, BlobServiceProperties.tsp, BlobContainer.tsp and examples);
learn.microsoft.com azure-resource-manager/troubleshooting/error-storage-account-name;
storage/blobs/anonymous-read-access-prevent; storage/blobs/storage-blob-static-website;
azure-resource-manager/management/lock-resources; AZURE_FACTS.md (Azurite).

The data-plane clients are not pinned to an api_version: Azurite runs with --skipApiVersionCheck.
"""
from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import BlobServiceClient, ContentSettings, StaticWebsite

API = "2026-09-01"  # what azure-mgmt-storage 25.3 sends
SA = "Microsoft.Storage/storageAccounts"


def new_name(prefix: str = "st") -> str:
    return prefix + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def storage(sandbox):
    return sandbox.client(StorageManagementClient)


@pytest.fixture(scope="module")
def shared_rg(sandbox):
    name = f"rg-storage-{uuid.uuid4().hex[:8]}"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(name, {"location": "westeurope"})
    return name


@pytest.fixture(scope="module")
def public_account(storage, shared_rg):
    """One account that allows public blob access, shared by the tests that only need an account."""
    name = new_name()
    account = storage.storage_accounts.begin_create(shared_rg, name, {
        "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
        "properties": {"allowBlobPublicAccess": True}}).result()
    return account


def arm(sandbox, client, method: str, path: str, body=None, api: str = API):
    """A raw ARM request through the SDK's pipeline (authentication included), for status codes/headers."""
    sep = "&" if "?" in path else "?"
    url = path if path.startswith("https://") else f"{sandbox.arm_url.rstrip('/')}{path}{sep}api-version={api}"
    return client.send_request(HttpRequest(method, url, json=body))


def account_path(sandbox, rg: str, name: str) -> str:
    return f"{sandbox.sub_scope}/resourceGroups/{rg}/providers/{SA}/{name}"


def keys_of(storage, rg: str, name: str) -> list[str]:
    return [k.value for k in storage.storage_accounts.list_keys(rg, name).keys_property]


def blob_client(account, key: str) -> BlobServiceClient:
    return BlobServiceClient(account.primary_endpoints.blob, credential=key)


def anonymous_get(sandbox, url: str, **kwargs):
    return requests.get(url, verify=sandbox.bundle, timeout=30, **kwargs)


def create(storage, rg: str, name: str, **props):
    return storage.storage_accounts.begin_create(rg, name, {
        "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
        **({"properties": props} if props else {})}).result()


# ---- accounts: create as a long-running operation ---------------------------------------------
def test_create_is_a_long_running_operation(sandbox, storage, resource_group):
    # Source: specification/storage StorageAccounts_Create: x-ms-long-running-operation, 202 with Location
    # and Retry-After, the polling URL .../providers/Microsoft.Storage/locations/{loc}/asyncoperations/{id}
    # answers 202 while in progress and 200 with the account when done.
    name = new_name()
    started = time.monotonic()
    resp = arm(sandbox, storage, "PUT", account_path(sandbox, resource_group, name),
               {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
    assert resp.status_code == 202, resp.text()
    location = resp.headers["Location"]
    assert f"/subscriptions/{sandbox.subscription_id}/providers/Microsoft.Storage/locations/westeurope/" \
           "asyncoperations/" in location
    assert int(resp.headers["Retry-After"]) >= 0
    # the account exists (its name is held) while it is being provisioned
    assert storage.storage_accounts.get_properties(resource_group, name).provisioning_state == "Creating"
    statuses = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        poll = storage.send_request(HttpRequest("GET", location))
        statuses.append(poll.status_code)
        if poll.status_code != 202:
            break
        time.sleep(float(poll.headers.get("Retry-After", 1)))
    assert statuses[0] == 202 and statuses[-1] == 200, statuses
    body = poll.json()
    assert body["name"] == name and body["properties"]["provisioningState"] == "Succeeded"
    assert time.monotonic() - started >= sandbox.admin("GET", "/settings")["storage_provisioning_seconds"]
    unknown = storage.send_request(HttpRequest("GET", location.replace(location.split("/asyncoperations/")[1]
                                                                         .split("?")[0], str(uuid.uuid4()))))
    assert unknown.status_code == 404
    # the SDK's poller drives the same operation to its end
    other = create(storage, resource_group, new_name())
    assert other.provisioning_state == "Succeeded"


def test_new_account_shape_and_defaults(sandbox, storage, resource_group):
    # Source: spec StorageAccount (2023-01-01+): allowBlobPublicAccess "default interpretation is false";
    # primaryEndpoints blob/web; sku tier derived from the name; supportsHttpsTrafficOnly true.
    name = new_name()
    account = create(storage, resource_group, name)
    assert account.id == account_path(sandbox, resource_group, name)
    assert account.type == SA and account.kind == "StorageV2" and account.location == "westeurope"
    assert account.sku.name == "Standard_LRS" and account.sku.tier == "Standard"
    assert account.allow_blob_public_access is False
    assert account.enable_https_traffic_only is True
    assert account.minimum_tls_version == "TLS1_2"
    blob_url = sandbox.env["ARCWI_SANDBOX_BLOB"]
    assert account.primary_endpoints.blob == f"{blob_url}{name}/"
    assert account.primary_endpoints.web.endswith(f"/{name}/")
    assert account.primary_endpoints.web.startswith("https://127.0.0.1:")


def test_older_api_version_defaults_public_access_to_true(sandbox, storage, resource_group):
    # Source: spec StorageAccount before 2023-01-01: allowBlobPublicAccess "default interpretation is true"
    name = new_name()
    resp = arm(sandbox, storage, "PUT", account_path(sandbox, resource_group, name),
               {"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}, api="2022-09-01")
    assert resp.status_code == 202
    account = storage.storage_accounts.get_properties(resource_group, name)
    assert account.allow_blob_public_access is True


def test_put_on_an_existing_account_updates_synchronously(sandbox, storage, public_account, shared_rg):
    # Source: spec StorageAccounts_Create: "If an account is already created and a subsequent create request
    # is issued with different properties, the account properties will be updated" (200 with the account)
    path = account_path(sandbox, shared_rg, public_account.name)
    resp = arm(sandbox, storage, "PUT", path, {"location": "westeurope", "kind": "StorageV2",
                                               "sku": {"name": "Standard_LRS"}, "tags": {"env": "test"},
                                               "properties": {"allowBlobPublicAccess": True,
                                                              # read-only: echoed back by clients, ignored
                                                              "provisioningState": "Creating",
                                                              "primaryEndpoints": {"blob": "https://x.invalid/"}}})
    assert resp.status_code == 200
    assert resp.json()["tags"] == {"env": "test"}
    assert resp.json()["properties"]["provisioningState"] == "Succeeded"
    assert resp.json()["properties"]["primaryEndpoints"]["blob"] == public_account.primary_endpoints.blob


# ---- accounts: names ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["UPPERCASE1", "ab", "a" * 25, "with-dash1", "under_score"])
def test_account_name_rules(sandbox, storage, resource_group, bad):
    # Source: error-storage-account-name: AccountNameInvalid, 3-24 lower-case letters and digits
    with pytest.raises(HttpResponseError) as err:
        create(storage, resource_group, bad)
    assert err.value.status_code == 400 and err.value.error.code == "AccountNameInvalid"
    assert err.value.error.message == (f"{bad} is not a valid storage account name. Storage account name must be "
                                       "between 3 and 24 characters in length and use numbers and lower-case "
                                       "letters only.")
    result = storage.storage_accounts.check_name_availability({"name": bad, "type": SA})
    assert result.name_available is False and result.reason == "AccountNameInvalid"
    assert result.message == err.value.error.message


def test_account_names_are_global(sandbox, storage, resource_group):
    # Source: error-storage-account-name: names are unique across Azure; StorageAccountInAnotherResourceGroup
    # "The account <name> is already in another resource group in this subscription."; checkNameAvailability
    # reason AlreadyExists "The storage account named <name> is already taken." (Azure .NET SDK tests)
    name = new_name()
    assert storage.storage_accounts.check_name_availability({"name": name, "type": SA}).name_available is True
    create(storage, resource_group, name)
    other_rg = f"{resource_group}-b"
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(other_rg, {"location": "westeurope"})
    with pytest.raises(HttpResponseError) as err:
        create(storage, other_rg, name)
    assert err.value.status_code == 409 and err.value.error.code == "StorageAccountInAnotherResourceGroup"
    assert err.value.error.message == f"The account {name} is already in another resource group in this subscription."
    result = storage.storage_accounts.check_name_availability({"name": name, "type": SA})
    assert (result.name_available, result.reason) == (False, "AlreadyExists")
    assert result.message == f"The storage account named {name} is already taken."
    # the name is held while the account exists, and free once it is gone
    storage.storage_accounts.delete(resource_group, name)
    assert storage.storage_accounts.check_name_availability({"name": name, "type": SA}).name_available is True
    assert create(storage, other_rg, name).provisioning_state == "Succeeded"


def test_check_name_availability_wants_the_storage_type(sandbox, storage):
    # Source: spec StorageAccountCheckNameAvailabilityParameters: type is "Microsoft.Storage/storageAccounts"
    resp = arm(sandbox, storage, "POST", f"{sandbox.sub_scope}/providers/Microsoft.Storage/checkNameAvailability",
               {"name": new_name(), "type": "Microsoft.Compute/virtualMachines"})
    assert resp.status_code == 400


# ---- accounts: sku, kind, location ----------------------------------------------------------------
@pytest.mark.parametrize("body,fields", [
    ({"kind": "StorageV2"}, "sku"),
    ({"sku": {"name": "Standard_LRS"}}, "kind"),
    ({"kind": "StorageV3", "sku": {"name": "Standard_LRS"}}, "kind"),
    ({"kind": "StorageV2", "sku": {"name": "Standard_XYZ"}}, "sku"),
    ({"kind": "BlockBlobStorage", "sku": {"name": "Standard_LRS"}}, "kind, sku"),
])
def test_sku_and_kind_are_required_and_checked(sandbox, storage, resource_group, body, fields):
    # Source: spec StorageAccountCreateParameters requires sku and kind; the RP answers
    # InvalidValuesForRequestParameters "Values for request parameters are invalid: kind, sku."
    # (terraform-provider-azurerm issue 8089); BlockBlobStorage exists only with Premium SKUs.
    resp = arm(sandbox, storage, "PUT", account_path(sandbox, resource_group, new_name()),
               {"location": "westeurope", **body})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "InvalidValuesForRequestParameters"
    assert resp.json()["error"]["message"] == f"Values for request parameters are invalid: {fields}."


def test_location_is_required_and_immutable(sandbox, storage, public_account, shared_rg):
    # Source: error-storage-account-name "Invalid resource location": InvalidResourceLocation
    resp = arm(sandbox, storage, "PUT", account_path(sandbox, shared_rg, new_name()),
               {"kind": "StorageV2", "sku": {"name": "Standard_LRS"}})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "LocationRequired"
    with pytest.raises(HttpResponseError) as err:
        storage.storage_accounts.begin_create(shared_rg, public_account.name, {
            "location": "northeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    assert err.value.error.code == "InvalidResourceLocation"
    assert f"already exists in location 'westeurope'" in err.value.error.message


def test_unknown_api_version_is_refused(sandbox, storage, public_account, shared_rg):
    # Source: ARM NoRegisteredProviderFound for an api-version the RP does not have (core.API_VERSIONS)
    resp = arm(sandbox, storage, "GET", account_path(sandbox, shared_rg, public_account.name), api="2015-01-01")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "NoRegisteredProviderFound"


# ---- accounts: read, list, update, delete ---------------------------------------------------------
def test_get_and_list(sandbox, storage, public_account, shared_rg):
    # Source: spec StorageAccounts_GetProperties / ListByResourceGroup / List
    got = storage.storage_accounts.get_properties(shared_rg, public_account.name)
    assert got.id == public_account.id and got.provisioning_state == "Succeeded"
    assert public_account.name in [a.name for a in storage.storage_accounts.list_by_resource_group(shared_rg)]
    assert public_account.name in [a.name for a in storage.storage_accounts.list()]
    with pytest.raises(ResourceNotFoundError) as err:
        storage.storage_accounts.get_properties(shared_rg, new_name())
    assert err.value.error.code == "ResourceNotFound"


def test_patch_updates_security_settings_and_tags(sandbox, storage, resource_group):
    # Source: spec StorageAccounts_Update (PATCH): allowBlobPublicAccess, minimumTlsVersion,
    # supportsHttpsTrafficOnly, tags; minimumTlsVersion is one of TLS1_0..TLS1_3
    name = new_name()
    create(storage, resource_group, name)
    updated = storage.storage_accounts.update(resource_group, name, {
        "tags": {"team": "id"}, "properties": {"allowBlobPublicAccess": True, "minimumTlsVersion": "TLS1_2",
                                               "supportsHttpsTrafficOnly": True}})
    assert updated.tags == {"team": "id"} and updated.allow_blob_public_access is True
    assert storage.storage_accounts.get_properties(resource_group, name).allow_blob_public_access is True
    with pytest.raises(HttpResponseError) as err:
        storage.storage_accounts.update(resource_group, name, {"properties": {"minimumTlsVersion": "TLS9"}})
    assert err.value.status_code == 400


def test_delete_is_idempotent_and_empties_the_name(sandbox, storage, resource_group):
    # Source: spec StorageAccounts_Delete: 200, or 204 when absent. A new account under a freed name
    # starts empty (the old account's data went with it).
    name = new_name()
    account = create(storage, resource_group, name, allowBlobPublicAccess=True)
    blob_client(account, keys_of(storage, resource_group, name)[0]).create_container("leftover")
    path = account_path(sandbox, resource_group, name)
    assert arm(sandbox, storage, "DELETE", path).status_code == 200
    assert arm(sandbox, storage, "DELETE", path).status_code == 204
    again = create(storage, resource_group, name)
    assert list(blob_client(again, keys_of(storage, resource_group, name)[0]).list_containers()) == []


def test_resource_group_delete_takes_its_accounts(sandbox, storage, unique):
    # Source: ARM resource group delete removes the resources in it; the names become free
    rg = f"rg-gone-{unique}"
    resources = sandbox.client(ResourceManagementClient)
    resources.resource_groups.create_or_update(rg, {"location": "westeurope"})
    name = new_name()
    account = create(storage, rg, name)
    key = keys_of(storage, rg, name)[0]
    resources.resource_groups.begin_delete(rg).result()
    assert storage.storage_accounts.check_name_availability({"name": name, "type": SA}).name_available is True
    with pytest.raises(HttpResponseError):  # Azurite no longer serves the account
        blob_client(account, key).get_service_properties(retry_total=0)


# ---- keys -------------------------------------------------------------------------------------------
def test_list_keys_work_with_azure_storage_blob(sandbox, storage, public_account, shared_rg):
    # Source: spec StorageAccounts_ListKeys (key1, key2, permissions FULL); Azure keys are base64 of 64 bytes.
    keys = storage.storage_accounts.list_keys(shared_rg, public_account.name).keys_property
    assert [k.key_name for k in keys] == ["key1", "key2"]
    assert all(k.permissions == "FULL" for k in keys)
    assert keys[0].value != keys[1].value
    for key in keys:
        assert len(base64.b64decode(key.value)) == 64
        client = blob_client(public_account, key.value)  # no api_version pin: --skipApiVersionCheck suffices
        container = client.get_container_client(f"k{uuid.uuid4().hex[:8]}")
        container.create_container()
        container.upload_blob("hello.txt", b"hello")
        assert container.download_blob("hello.txt").readall() == b"hello"
        container.delete_container()


def test_regenerate_key(sandbox, storage, resource_group):
    # Source: spec StorageAccounts_RegenerateKey: the named key changes, the other keeps working
    name = new_name()
    account = create(storage, resource_group, name)
    old1, old2 = keys_of(storage, resource_group, name)
    result = storage.storage_accounts.regenerate_key(resource_group, name, {"keyName": "key1"})
    new1 = result.keys_property[0].value
    assert new1 not in (old1, old2) and result.keys_property[1].value == old2
    blob_client(account, new1).create_container("after")
    assert "after" in [c.name for c in blob_client(account, old2).list_containers()]
    with pytest.raises(ClientAuthenticationError):
        blob_client(account, old1).get_service_properties()
    with pytest.raises(HttpResponseError):
        storage.storage_accounts.regenerate_key(resource_group, name, {"keyName": "key3"})


# ---- containers ---------------------------------------------------------------------------------
def test_public_container_reads_anonymously_and_private_refuses(sandbox, storage, public_account, shared_rg):
    # Source: AZURE_FACTS Azurite: anonymous GET works on containers with public access blob; private
    # containers answer 403. Spec BlobContainers_Create: publicAccess None|Blob|Container.
    name = public_account.name
    pub = storage.blob_containers.create(shared_rg, name, "public", {"properties": {"publicAccess": "Blob"}})
    priv = storage.blob_containers.create(shared_rg, name, "private", {"properties": {"publicAccess": "None"}})
    assert pub.public_access == "Blob" and priv.public_access == "None"
    client = blob_client(public_account, keys_of(storage, shared_rg, name)[0])
    settings = ContentSettings(content_type="application/json")
    client.get_container_client("public").upload_blob("doc.json", b'{"a": 1}', overwrite=True,
                                                      content_settings=settings)
    client.get_container_client("private").upload_blob("doc.json", b'{"a": 1}', overwrite=True)
    resp = anonymous_get(sandbox, f"{public_account.primary_endpoints.blob}public/doc.json")
    assert resp.status_code == 200 and resp.json() == {"a": 1}
    assert resp.headers["Content-Type"] == "application/json"
    assert anonymous_get(sandbox, f"{public_account.primary_endpoints.blob}private/doc.json").status_code == 403
    # Blob level: blobs are public, listing the container is not
    assert anonymous_get(sandbox, f"{public_account.primary_endpoints.blob}public?restype=container&comp=list"
                         ).status_code in (403, 404)


def test_public_container_refused_when_the_account_disallows_it(sandbox, storage, resource_group):
    # Source: anonymous-read-access-prevent; bicep-types-az issue 2147: 409 PublicAccessNotPermitted
    # "Public access is not permitted on this storage account."
    name = new_name()
    create(storage, resource_group, name)  # allowBlobPublicAccess defaults to false
    for level in ("Blob", "Container"):
        with pytest.raises(HttpResponseError) as err:
            storage.blob_containers.create(resource_group, name, "oidc", {"properties": {"publicAccess": level}})
        assert err.value.status_code == 409 and err.value.error.code == "PublicAccessNotPermitted"
        assert err.value.error.message == "Public access is not permitted on this storage account."
    assert storage.blob_containers.create(resource_group, name, "oidc", {}).public_access == "None"


def test_disallowing_public_access_makes_containers_private(sandbox, storage, resource_group):
    # Source: anonymous-read-access-prevent: allowBlobPublicAccess false overrides the containers' settings,
    # which come back when it is allowed again; "Azure Storage rejects all anonymous requests to that
    # account" with 409 PublicAccessNotPermitted "Public access is not permitted on this storage account."
    # and a container can no longer be made public (the data plane refuses it as ARM does).
    name = new_name()
    account = create(storage, resource_group, name, allowBlobPublicAccess=True)
    storage.blob_containers.create(resource_group, name, "pub", {"properties": {"publicAccess": "Blob"}})
    client = blob_client(account, keys_of(storage, resource_group, name)[0])
    client.get_container_client("pub").upload_blob("a.txt", b"a")
    client.create_container("dpc", public_access="container").upload_blob("b.txt", b"b")  # data plane
    urls = [f"{account.primary_endpoints.blob}pub/a.txt", f"{account.primary_endpoints.blob}dpc/b.txt"]
    assert [anonymous_get(sandbox, url).status_code for url in urls] == [200, 200]
    storage.storage_accounts.update(resource_group, name, {"properties": {"allowBlobPublicAccess": False}})
    refused = [anonymous_get(sandbox, url) for url in urls]
    assert [r.status_code for r in refused] == [409, 409]
    assert {r.headers["x-ms-error-code"] for r in refused} == {"PublicAccessNotPermitted"}
    assert "<Message>Public access is not permitted on this storage account.</Message>" in refused[0].text
    with pytest.raises(HttpResponseError) as err:
        client.create_container("dpc2", public_access="blob")
    assert err.value.status_code == 409 and err.value.error_code == "PublicAccessNotPermitted"
    assert client.create_container("dpc3").get_container_properties().public_access is None  # private is fine
    assert storage.blob_containers.get(resource_group, name, "pub").public_access == "Blob"
    assert storage.blob_containers.get(resource_group, name, "dpc").public_access == "Container"
    storage.storage_accounts.update(resource_group, name, {"properties": {"allowBlobPublicAccess": True}})
    assert [anonymous_get(sandbox, url).status_code for url in urls] == [200, 200]
    assert client.get_container_client("dpc").get_container_properties().public_access == "container"


@pytest.mark.parametrize("bad,code", [("UPPER", "InvalidResourceName"), ("a--b", "InvalidResourceName"),
                                      ("-ab", "InvalidResourceName"), ("ab", "OutOfRangeInput"),
                                      ("a" * 64, "OutOfRangeInput")])
def test_container_name_rules(sandbox, storage, public_account, shared_rg, bad, code):
    # Source: BlobContainer.tsp: 3-63 characters, lower-case letters, digits and dashes, every dash between
    # letters or digits; data-plane codes InvalidResourceName / OutOfRangeInput
    with pytest.raises(HttpResponseError) as err:
        storage.blob_containers.create(shared_rg, public_account.name, bad, {})
    assert err.value.status_code == 400 and err.value.error.code == code


def test_container_create_replace_get_list_delete(sandbox, storage, public_account, shared_rg):
    # Source: BlobContainer.tsp: create is ArmResourceCreateOrReplaceSync (201 created, 200 replaced),
    # delete is ArmResourceDeleteSync (200, 204 when absent)
    name = public_account.name
    path = f"{account_path(sandbox, shared_rg, name)}/blobServices/default/containers/crud"
    first = arm(sandbox, storage, "PUT", path, {"properties": {"metadata": {"purpose": "test"}}})
    assert first.status_code == 201
    assert first.json()["type"] == "Microsoft.Storage/storageAccounts/blobServices/containers"
    assert storage.blob_containers.get(shared_rg, name, "crud").metadata == {"purpose": "test"}
    second = arm(sandbox, storage, "PUT", path, {"properties": {"publicAccess": "Container"}})
    assert second.status_code == 200 and second.json()["properties"]["publicAccess"] == "Container"
    got = storage.blob_containers.get(shared_rg, name, "crud")
    assert got.public_access == "Container"
    assert "crud" in [c.name for c in storage.blob_containers.list(shared_rg, name)]
    assert arm(sandbox, storage, "DELETE", path).status_code == 200
    assert arm(sandbox, storage, "DELETE", path).status_code == 204
    with pytest.raises(ResourceNotFoundError):
        storage.blob_containers.get(shared_rg, name, "crud")


def test_containers_made_on_the_data_plane_show_in_arm(sandbox, storage, public_account, shared_rg):
    # Source: ARM lists the account's containers, whichever plane created them (BlobContainers_List)
    client = blob_client(public_account, keys_of(storage, shared_rg, public_account.name)[0])
    client.create_container("dataplane", public_access="blob")
    got = storage.blob_containers.get(shared_rg, public_account.name, "dataplane")
    assert got.public_access == "Blob"
    assert "dataplane" in [c.name for c in storage.blob_containers.list(shared_rg, public_account.name)]


def test_container_under_a_missing_account(sandbox, storage, shared_rg):
    # Source: ARM ResourceNotFound for a missing parent resource
    with pytest.raises(ResourceNotFoundError):
        storage.blob_containers.create(shared_rg, new_name(), "oidc", {})


# ---- blob service properties ----------------------------------------------------------------------
def test_blob_service_properties(sandbox, storage, public_account, shared_rg):
    # Source: BlobServiceProperties.tsp / BlobServicesPut example: cors.corsRules, deleteRetentionPolicy,
    # isVersioningEnabled; the data plane shares CORS and delete retention (Set Blob Service Properties)
    name = public_account.name
    rule = {"allowedOrigins": ["https://example.org"], "allowedMethods": ["GET", "HEAD"],
            "allowedHeaders": ["*"], "exposedHeaders": ["*"], "maxAgeInSeconds": 60}
    result = storage.blob_services.set_service_properties(shared_rg, name, {"properties": {
        "cors": {"corsRules": [rule]}, "deleteRetentionPolicy": {"enabled": True, "days": 7},
        "isVersioningEnabled": False}})
    assert result.name == "default" and result.type == "Microsoft.Storage/storageAccounts/blobServices"
    got = storage.blob_services.get_service_properties(shared_rg, name)
    assert got.cors.cors_rules[0].allowed_origins == ["https://example.org"]
    assert got.delete_retention_policy.enabled is True and got.delete_retention_policy.days == 7
    assert got.is_versioning_enabled is False
    live = blob_client(public_account, keys_of(storage, shared_rg, name)[0]).get_service_properties()
    assert live["cors"][0].allowed_origins == "https://example.org"
    assert live["delete_retention_policy"].days == 7
    assert [s.name for s in storage.blob_services.list(shared_rg, name)] == ["default"]
    with pytest.raises(HttpResponseError) as err:
        storage.blob_services.set_service_properties(shared_rg, name, {"properties": {
            "deleteRetentionPolicy": {"enabled": True, "days": 400}}})
    assert err.value.status_code == 400


# ---- static website -------------------------------------------------------------------------------
def test_static_website_served_from_web_endpoint(sandbox, storage, resource_group):
    # Source: storage-blob-static-website: a data-plane setting; $web served anonymously whatever its
    # access level (and whatever allowBlobPublicAccess says); index document for the root and subfolders;
    # the error document with 404; Content-Type from the blob; "The requested content does not exist."
    name = new_name()
    account = create(storage, resource_group, name)  # public blob access disallowed: the site still serves
    client = blob_client(account, keys_of(storage, resource_group, name)[0])
    web = account.primary_endpoints.web
    assert anonymous_get(sandbox, web).status_code == 404  # static website not enabled yet
    client.set_service_properties(static_website=StaticWebsite(enabled=True, index_document="index.html",
                                                               error_document404_path="errors/404.html"))
    site = client.get_container_client("$web")
    site.create_container()  # private
    html = ContentSettings(content_type="text/html; charset=utf-8")
    site.upload_blob("index.html", b"<h1>home</h1>", content_settings=html)
    site.upload_blob("docs/index.html", b"<h1>docs</h1>", content_settings=html)
    site.upload_blob("errors/404.html", b"<h1>missing</h1>", content_settings=html)
    site.upload_blob(".well-known/openid-configuration", b'{"issuer": "x"}',
                     content_settings=ContentSettings(content_type="application/json"))
    root = anonymous_get(sandbox, web)
    assert root.status_code == 200 and root.text == "<h1>home</h1>"
    assert root.headers["Content-Type"] == "text/html; charset=utf-8"
    assert anonymous_get(sandbox, web + "docs/").text == "<h1>docs</h1>"
    assert anonymous_get(sandbox, web + "docs").text == "<h1>docs</h1>"
    doc = anonymous_get(sandbox, web + ".well-known/openid-configuration")
    assert doc.status_code == 200 and doc.json() == {"issuer": "x"}
    assert doc.headers["Content-Type"] == "application/json"
    missing = anonymous_get(sandbox, web + "nope.html")
    assert missing.status_code == 404 and missing.text == "<h1>missing</h1>"
    # conditional GET and HEAD
    assert anonymous_get(sandbox, web, headers={"If-None-Match": root.headers["ETag"]}).status_code == 304
    head = requests.head(web, verify=sandbox.bundle, timeout=30)
    assert head.status_code == 200 and head.headers["Content-Type"].startswith("text/html")
    # without an error document: Azure's own page
    client.set_service_properties(static_website=StaticWebsite(enabled=True, index_document="index.html"))
    plain = anonymous_get(sandbox, web + "nope.html")
    assert plain.status_code == 404 and "The requested content does not exist." in plain.text
    assert "WebContentNotFound" in plain.text
    # the blob endpoint still refuses anonymous reads: this account disallows public access (the default)
    blob = anonymous_get(sandbox, f"{account.primary_endpoints.blob}$web/index.html")
    assert blob.status_code == 409 and blob.headers["x-ms-error-code"] == "PublicAccessNotPermitted"
    # disabled again: nothing is served
    client.set_service_properties(static_website=StaticWebsite(enabled=False))
    assert anonymous_get(sandbox, web).status_code == 404


def test_static_website_through_arm(sandbox, storage, resource_group):
    # Source: BlobServicesPut example of api-version 2026-04-01 (staticWebsite in blobServices/default);
    # enabling static website creates the $web container (storage-blob-static-website)
    name = new_name()
    account = create(storage, resource_group, name)
    result = storage.blob_services.set_service_properties(resource_group, name, {"properties": {
        "staticWebsite": {"enabled": True, "indexDocument": "index.html"}}})
    assert result.static_website.enabled is True and result.static_website.index_document == "index.html"
    client = blob_client(account, keys_of(storage, resource_group, name)[0])
    assert client.get_service_properties()["static_website"].enabled is True
    client.get_container_client("$web").upload_blob("index.html", b"ok",
                                                    content_settings=ContentSettings(content_type="text/plain"))
    resp = anonymous_get(sandbox, account.primary_endpoints.web)
    assert resp.status_code == 200 and resp.text == "ok"
    # older api-versions do not know the property
    old = arm(sandbox, storage, "GET", f"{account_path(sandbox, resource_group, name)}/blobServices/default",
              api="2025-06-01")
    assert "staticWebsite" not in old.json()["properties"]


# ---- locks and RBAC ------------------------------------------------------------------------------
def test_can_not_delete_lock_blocks_delete(sandbox, storage, resource_group):
    # Source: lock-resources: CanNotDelete on the account blocks deleting it and its child resources;
    # 409 ScopeLocked
    name = new_name()
    create(storage, resource_group, name)
    storage.blob_containers.create(resource_group, name, "kept", {})
    locks = sandbox.client(ManagementLockClient)
    scope = account_path(sandbox, resource_group, name).lstrip("/")  # the SDK adds the leading slash
    locks.management_locks.create_or_update_by_scope(scope, "keep", {"level": "CanNotDelete"})
    try:
        with pytest.raises(HttpResponseError) as err:
            storage.storage_accounts.delete(resource_group, name)
        assert err.value.status_code == 409 and err.value.error.code == "ScopeLocked"
        with pytest.raises(HttpResponseError) as err:
            storage.blob_containers.delete(resource_group, name, "kept")
        assert err.value.error.code == "ScopeLocked"
        assert storage.storage_accounts.get_properties(resource_group, name).name == name
    finally:
        locks.management_locks.delete_by_scope(scope, "keep")
    storage.storage_accounts.delete(resource_group, name)


def test_read_only_lock_blocks_list_keys_and_writes(sandbox, storage, resource_group):
    # Source: lock-resources: a ReadOnly lock on a storage account blocks listKeys (a POST) and writes
    name = new_name()
    create(storage, resource_group, name)
    locks = sandbox.client(ManagementLockClient)
    scope = account_path(sandbox, resource_group, name).lstrip("/")  # the SDK adds the leading slash
    locks.management_locks.create_or_update_by_scope(scope, "frozen", {"level": "ReadOnly"})
    try:
        with pytest.raises(HttpResponseError) as err:
            storage.storage_accounts.list_keys(resource_group, name)
        assert err.value.status_code == 409 and err.value.error.code == "ScopeLocked"
        with pytest.raises(HttpResponseError) as err:
            storage.storage_accounts.update(resource_group, name, {"tags": {"a": "b"}})
        assert err.value.error.code == "ScopeLocked"
        assert storage.storage_accounts.get_properties(resource_group, name).name == name
    finally:
        locks.management_locks.delete_by_scope(scope, "frozen")
    assert len(keys_of(storage, resource_group, name)) == 2


def test_reader_reads_but_cannot_write_or_list_keys(sandbox, public_account, shared_rg, unique):
    # Source: built-in Reader (*/read); listKeys is an action (Microsoft.Storage/storageAccounts/listkeys/action)
    reader = sandbox.principal(roles=[{"role": "Reader"}], name=f"storage-reader-{unique}")
    client = sandbox.client(StorageManagementClient, credential=sandbox.credential(reader["client_id"],
                                                                                   reader["secret"]))
    assert client.storage_accounts.get_properties(shared_rg, public_account.name).name == public_account.name
    with pytest.raises(HttpResponseError) as err:
        client.storage_accounts.list_keys(shared_rg, public_account.name)
    assert err.value.status_code == 403 and err.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Storage/storageAccounts/listkeys/action" in err.value.error.message
    with pytest.raises(HttpResponseError) as err:
        client.blob_containers.create(shared_rg, public_account.name, "nope", {})
    assert err.value.status_code == 403


# ---- Azurite restarts ------------------------------------------------------------------------------
def test_azurite_restart_keeps_data(sandbox, storage, resource_group):
    # Source: issue 2 section 3: a changed account list restarts Azurite without losing data; the
    # sandbox's state survives a restart of the whole sandbox (ARCHITECTURE.md)
    first = new_name()
    account = create(storage, resource_group, first, allowBlobPublicAccess=True)
    storage.blob_containers.create(resource_group, first, "keep", {"properties": {"publicAccess": "Blob"}})
    key = keys_of(storage, resource_group, first)[0]
    blob_client(account, key).get_container_client("keep").upload_blob("data.txt", b"still here")
    url = f"{account.primary_endpoints.blob}keep/data.txt"
    create(storage, resource_group, new_name())  # adding an account restarts Azurite
    assert anonymous_get(sandbox, url).text == "still here"
    for command in ("down", "up"):
        result = subprocess.run([sys.executable, "-m", "sandbox", command], cwd=str(sandbox_root()),
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert anonymous_get(sandbox, url).text == "still here"
    assert blob_client(account, key).get_container_client("keep").download_blob("data.txt").readall() == \
        b"still here"
    assert storage.storage_accounts.get_properties(resource_group, first).provisioning_state == "Succeeded"


def sandbox_root():
    from pathlib import Path
    return Path(__file__).resolve().parents[2]


def test_entra_token_works_against_azurite(sandbox, storage, public_account, shared_rg):
    # Source: AZURE_FACTS Azurite: --oauth basic accepts bearer tokens (expiry, v1 issuer, storage audience);
    # the operator's Entra token reaches the data plane like against Azure (no RBAC in Azurite)
    client = BlobServiceClient(public_account.primary_endpoints.blob, credential=sandbox.credential())
    name = f"oauth{uuid.uuid4().hex[:8]}"
    client.create_container(name)
    assert name in [c.name for c in storage.blob_containers.list(shared_rg, public_account.name)]
