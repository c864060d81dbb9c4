"""The blob endpoint is the sandbox's proxy in front of Azurite (sandbox/server/blob.py): everything passes
through unchanged, every request lands in the request log, and injected faults answer in Azure
Storage's shape.

Sources: learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes (ServerBusy 503,
OperationTimedOut 500; Storage throttles with 503 ServerBusy, it has no 429) and status-and-error-codes2
(XML error body, the code also in the x-ms-error-code header); Get Blob Properties (HEAD answers the
blob's Content-Length without a body).
"""
from __future__ import annotations

import urllib.error
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.storage.blob import BlobServiceClient, LinearRetry
from azure.mgmt.storage import StorageManagementClient


@pytest.fixture(scope="module")
def container(sandbox):
    rg = f"rg-blobproxy-{uuid.uuid4().hex[:8]}"
    name = "st" + uuid.uuid4().hex[:12]
    sandbox.client(ResourceManagementClient).resource_groups.create_or_update(rg, {"location": "westeurope"})
    storage = sandbox.client(StorageManagementClient)
    account = storage.storage_accounts.begin_create(rg, name, {
        "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}).result()
    key = storage.storage_accounts.list_keys(rg, name).keys_property[0].value
    # no SDK retries: each test sees the first answer
    service = BlobServiceClient(account.primary_endpoints.blob, credential=key,
                                retry_policy=LinearRetry(retry_total=0))
    assert account.primary_endpoints.blob.startswith(sandbox.env["ARCWI_SANDBOX_BLOB"].rstrip("/"))
    client = service.create_container("docs")
    client.account_key = key
    return client


def test_requests_pass_through_and_are_logged(sandbox, container):
    mark = sandbox.mark()
    data = b'{"keys": []}' * 1000
    container.upload_blob("a/b.json", data, overwrite=True)
    props = container.get_blob_client("a/b.json").get_blob_properties()  # a HEAD
    assert props.size == len(data)
    assert container.download_blob("a/b.json").readall() == data
    rows = sandbox.requests_since(mark, "blob")
    assert [(r["method"], r["status"]) for r in rows] == [("PUT", 201), ("HEAD", 200), ("GET", 206)], rows  # the SDK downloads with a Range
    assert all(r["path"].endswith("/docs/a/b.json") for r in rows)


def test_chunked_upload_arrives_whole_and_a_sas_signature_is_not_logged(sandbox, container):
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    sas = generate_blob_sas(container.account_name, "docs", "chunked.txt", account_key=container.account_key,
                            permission=BlobSasPermissions(create=True, write=True, read=True),
                            expiry=datetime.now(timezone.utc) + timedelta(minutes=10))
    url = container.get_blob_client("chunked.txt").url + "?" + sas
    mark = sandbox.mark()
    chunks = [b"x" * 1000, b"y" * 5]
    # a generator body: requests sends it with Transfer-Encoding: chunked
    put = requests.put(url, data=iter(chunks), headers={"x-ms-blob-type": "BlockBlob"}, verify=sandbox.bundle,
                       timeout=30)
    assert put.status_code == 201, put.text
    assert put.request.headers.get("Transfer-Encoding") == "chunked"
    got = requests.get(url, verify=sandbox.bundle, timeout=30)
    assert got.content == b"".join(chunks)
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    queries = [r["query"] for r in sandbox.requests_since(mark, "blob")]
    assert queries and all("sig=REDACTED" in q for q in queries), queries
    assert not any(signature in q or requests.utils.quote(signature, safe="") in q for q in queries)


@pytest.mark.parametrize("kind,status,code", [("503", 503, "ServerBusy"), ("500", 500, "OperationTimedOut")])
def test_faults_answer_in_storage_shape(sandbox, container, kind, status, code):
    container.upload_blob("f.json", b"{}", overwrite=True)
    url = container.get_blob_client("f.json").url
    with sandbox.faults([{"service": "blob", "method": "GET", "rate": 1, "count": 1, "kind": kind}]):
        response = requests.get(url, verify=sandbox.bundle, timeout=30)
    assert response.status_code == status
    assert response.headers["x-ms-error-code"] == code
    assert response.headers["Content-Type"].startswith("application/xml")
    assert f"<Code>{code}</Code>" in response.text


def test_sdk_sees_the_storage_error_code(sandbox, container):
    with sandbox.faults([{"service": "blob", "method": "PUT", "rate": 1, "count": 1, "kind": "503"}]):
        with pytest.raises(HttpResponseError) as err:
            container.upload_blob("g.json", b"{}", overwrite=True)
    assert err.value.status_code == 503 and err.value.error_code == "ServerBusy"
    assert not container.get_blob_client("g.json").exists()  # the faulted request did nothing


def test_a_429_rule_for_blob_is_refused(sandbox):
    with pytest.raises(urllib.error.HTTPError) as err:
        sandbox.admin("PUT", "/faults", {"rules": [{"service": "blob", "kind": "429"}]})
    body = err.value.read().decode()
    assert err.value.code == 400
    assert "rules[0]: Azure Storage throttles with 503 ServerBusy, not 429" in body, body


def test_a_wildcard_429_rule_skips_blob(sandbox, container):
    container.upload_blob("h.json", b"{}", overwrite=True)
    url = container.get_blob_client("h.json").url
    # the unfaulted answer: 409 PublicAccessNotPermitted (the account disallows anonymous access)
    plain = requests.get(url, verify=sandbox.bundle, timeout=30)
    assert plain.headers.get("x-ms-error-code") == "PublicAccessNotPermitted"
    with sandbox.faults([{"service": "*", "method": "GET", "rate": 1, "kind": "429"}]):
        response = requests.get(url, verify=sandbox.bundle, timeout=30)
    assert response.status_code == plain.status_code != 429
    assert response.headers.get("x-ms-error-code") == plain.headers.get("x-ms-error-code")
