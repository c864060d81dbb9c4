"""ARM emulator: discovery, authentication, api-versions, resource groups, providers, admin API.

Each test names the source of the behaviour it pins (see also the module docstrings in
sandbox/server/arm/).
"""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.error

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.resource.resources import ResourceManagementClient

from .conftest import REPO

RG_API = "2025-04-01"


def test_metadata_endpoints_list_form(sandbox):
    # Source: ARM /metadata/endpoints?api-version=2022-09-01 returns a list of clouds (azure-cli cloud register)
    resp = requests.get(sandbox.arm_url + "metadata/endpoints", params={"api-version": "2022-09-01"},
                        verify=sandbox.bundle, timeout=10)
    assert resp.status_code == 200
    clouds = resp.json()
    assert isinstance(clouds, list) and len(clouds) == 1
    assert clouds[0]["resourceManager"] == sandbox.arm_url
    assert clouds[0]["authentication"]["loginEndpoint"] == sandbox.authority
    assert clouds[0]["authentication"]["audiences"][0] + ".default" == sandbox.arm_scope


def test_metadata_endpoints_azure_stack_form(sandbox):
    # Source: Azure Stack Hub metadata (api-version 2015-01-01), read by msrestazure
    resp = requests.get(sandbox.arm_url + "metadata/endpoints", params={"api-version": "2015-01-01"},
                        verify=sandbox.bundle, timeout=10)
    body = resp.json()
    assert body["authentication"]["loginEndpoint"] == sandbox.authority
    assert "galleryEndpoint" in body


def test_missing_authorization_header_is_401(sandbox):
    # Source: ARM answers 401 AuthenticationFailed with a WWW-Authenticate challenge
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups", api_version=RG_API, token="")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "AuthenticationFailed"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")


def test_garbage_token_is_401(sandbox):
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups", api_version=RG_API, token="a.b.c")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_token_for_another_audience_is_401(sandbox):
    # Source: ARM error InvalidAuthenticationTokenAudience ("obtained for wrong audience or resource")
    storage_token = sandbox.token(scope="https://storage.azure.com/.default")
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups", api_version=RG_API, token=storage_token)
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == "InvalidAuthenticationTokenAudience"
    assert "https://storage.azure.com" in error["message"]


def test_expired_token_is_401(sandbox):
    # Source: ARM ExpiredAuthenticationToken ("The access token expiry UTC time ... is earlier than current UTC time")
    from sandbox import config
    from sandbox.server.tokens import TokenService
    service = TokenService(config.home(), sandbox.tenant_id)
    token, _ = service.mint(audience=sandbox.arm_scope[: -len(".default")], object_id=sandbox.env["AZURE_CLIENT_ID"],
                            app_id=sandbox.env["AZURE_CLIENT_ID"], lifetime=-10)
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups", api_version=RG_API, token=token)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "ExpiredAuthenticationToken"


def test_api_version_missing_and_unknown(sandbox):
    # Source: ARM MissingApiVersionParameter / InvalidApiVersionParameter (400)
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups")
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "MissingApiVersionParameter"
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups", api_version="2099-01-01")
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert "2025-04-01" in resp.json()["error"]["message"]


def test_unknown_api_version_for_a_provider_type(sandbox, resource_group):
    # Source: ARM NoRegisteredProviderFound lists the supported api-versions of the type
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourceGroups/{resource_group}/providers/"
                              "Microsoft.ManagedIdentity/userAssignedIdentities", api_version="2017-01-01")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert "2024-11-30" in error["message"]


def test_wrong_subscription_is_404(sandbox):
    resp = sandbox.raw("GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups", api_version=RG_API)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "SubscriptionNotFound"


def test_subscription_get_and_list(sandbox):
    from azure.mgmt.resource.subscriptions import SubscriptionClient
    client = SubscriptionClient(sandbox.credential(), base_url=sandbox.arm_url, credential_scopes=[sandbox.arm_scope])
    subs = list(client.subscriptions.list())
    assert [s.subscription_id for s in subs] == [sandbox.subscription_id]
    assert client.subscriptions.get(sandbox.subscription_id).tenant_id == sandbox.tenant_id


def test_resource_group_lifecycle(sandbox, unique):
    client = sandbox.client(ResourceManagementClient)
    name = f"rg-life-{unique}"
    created = client.resource_groups.create_or_update(name, {"location": "westeurope", "tags": {"a": "1"}})
    assert created.id == f"{sandbox.sub_scope}/resourceGroups/{name}"
    assert created.properties.provisioning_state == "Succeeded"
    # idempotent PUT answers 200 with the same group; tags replaced
    again = client.resource_groups.create_or_update(name, {"location": "westeurope", "tags": {"b": "2"}})
    assert again.tags == {"b": "2"}
    assert client.resource_groups.check_existence(name) is True
    assert name in [g.name for g in client.resource_groups.list()]
    client.resource_groups.begin_delete(name).result()
    assert client.resource_groups.check_existence(name) is False
    with pytest.raises(ResourceNotFoundError) as err:
        client.resource_groups.get(name)
    assert err.value.error.code == "ResourceGroupNotFound"


def test_resource_group_rules(sandbox, unique):
    # Source: resource-name-rules (resource group: alphanumerics, . _ - ( ), not ending in a period)
    client = sandbox.client(ResourceManagementClient)
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.create_or_update(f"bad/name{unique}", {"location": "westeurope"})
    # the SDK encodes the slash; the emulator routes it nowhere (404). Whatever Azure's status, nothing exists:
    assert err.value.status_code in (400, 404)
    assert not [g for g in client.resource_groups.list() if unique in g.name and "name" in g.name]
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.create_or_update(f"ends-with-dot{unique}.", {"location": "westeurope"})
    assert err.value.error.code == "InvalidResourceGroup"
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.create_or_update(f"rg-{unique}", {"location": "atlantis"})
    assert err.value.error.code == "LocationNotAvailableForResourceGroup"
    client.resource_groups.create_or_update(f"rg-loc-{unique}", {"location": "westeurope"})
    # Source: ARM InvalidResourceGroupLocation, 409: a group cannot move
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.create_or_update(f"rg-loc-{unique}", {"location": "eastus"})
    assert err.value.status_code == 409
    assert err.value.error.code == "InvalidResourceGroupLocation"


def test_provider_registration_is_asynchronous(sandbox):
    # Source: Resource providers docs: register answers Registering, later reads show Registered
    client = sandbox.client(ResourceManagementClient)
    ns = "Microsoft.ExtendedLocation"
    before = client.providers.get(ns).registration_state
    registered = client.providers.register(ns)
    assert registered.registration_state in ("Registering", "Registered")
    deadline = time.monotonic() + 10
    state = registered.registration_state
    while state != "Registered" and time.monotonic() < deadline:
        state = client.providers.get(ns).registration_state
    assert state == "Registered", f"still {state} (was {before})"


def test_unregistered_provider_refuses_requests(sandbox, resource_group):
    # Source: ARM MissingSubscriptionRegistration (409) for a namespace the subscription has not registered
    client = sandbox.client(ResourceManagementClient)
    path = (f"{sandbox.sub_scope}/resourceGroups/{resource_group}/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities")
    client.providers.unregister("Microsoft.ManagedIdentity")
    try:
        assert client.providers.get("Microsoft.ManagedIdentity").registration_state == "Unregistered"
        resp = sandbox.raw("GET", path, api_version="2024-11-30")
        assert resp.status_code == 409
        assert resp.json()["error"]["code"] == "MissingSubscriptionRegistration"
    finally:
        client.providers.register("Microsoft.ManagedIdentity")
        deadline = time.monotonic() + 10
        while client.providers.get("Microsoft.ManagedIdentity").registration_state != "Registered":
            assert time.monotonic() < deadline
    assert sandbox.raw("GET", path, api_version="2024-11-30").status_code == 200


def test_reader_can_read_and_cannot_write(sandbox, unique):
    # Source: built-in role Reader (actions */read); ARM AuthorizationFailed message format
    reader = sandbox.principal(roles=[{"role": "Reader"}], name=f"reader-{unique}")
    credential = sandbox.credential(reader["client_id"], reader["secret"])
    client = sandbox.client(ResourceManagementClient, credential=credential)
    assert isinstance(list(client.resource_groups.list()), list)
    with pytest.raises(HttpResponseError) as err:
        client.resource_groups.create_or_update(f"rg-denied-{unique}", {"location": "westeurope"})
    assert err.value.status_code == 403
    assert err.value.error.code == "AuthorizationFailed"
    message = err.value.error.message
    assert f"The client '{reader['object_id']}' with object id '{reader['object_id']}' does not have authorization " \
           "to perform action 'Microsoft.Resources/subscriptions/resourcegroups/write' over scope" in message


def test_principal_without_any_role_sees_no_subscription_and_gets_403(sandbox, unique):
    nobody = sandbox.principal(name=f"nobody-{unique}")
    credential = sandbox.credential(nobody["client_id"], nobody["secret"])
    from azure.mgmt.resource.subscriptions import SubscriptionClient
    subs = SubscriptionClient(credential, base_url=sandbox.arm_url, credential_scopes=[sandbox.arm_scope])
    assert list(subs.subscriptions.list()) == []
    resp = sandbox.raw("GET", f"{sandbox.sub_scope}/resourcegroups", api_version=RG_API, credential=credential)
    assert resp.status_code == 403


def test_request_log_counts_and_proves_no_write(sandbox, resource_group):
    client = sandbox.client(ResourceManagementClient)
    mark = sandbox.mark()
    client.resource_groups.get(resource_group)
    log = sandbox.requests_since(mark, "arm")
    assert [(r["method"], r["status"]) for r in log] == [("GET", 200)]
    assert sandbox.writes_since(mark) == []
    client.resource_groups.create_or_update(resource_group, {"location": "westeurope"})
    assert [r["method"] for r in sandbox.writes_since(mark)] == ["PUT"]


def test_fault_injection_is_reproducible_and_logged(sandbox, resource_group):
    path = f"{sandbox.sub_scope}/resourcegroups/{resource_group}"
    outcomes = []
    for _ in range(2):
        with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 0.5, "kind": "503"}], seed=7):
            outcomes.append([sandbox.raw("GET", path, api_version=RG_API).status_code for _ in range(12)])
    assert outcomes[0] == outcomes[1], "same seed, same request order: same faults"
    assert 503 in outcomes[0] and 200 in outcomes[0]
    mark = sandbox.mark()
    with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 1, "kind": "429", "retry_after": 3}]):
        resp = sandbox.raw("GET", path, api_version=RG_API)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert [r["fault"] for r in sandbox.requests_since(mark, "arm")] == ["429"]


def test_dropped_connection_fault(sandbox, resource_group):
    path = f"{sandbox.sub_scope}/resourcegroups/{resource_group}"
    mark = sandbox.mark()
    with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 1, "kind": "drop"}]):
        with pytest.raises(requests.exceptions.ConnectionError):
            sandbox.raw("GET", path, api_version=RG_API)
    # the request log keeps what the client saw: no status
    assert [(r["fault"], r["status"]) for r in sandbox.requests_since(mark, "arm")] == [("drop", 0)]


def test_sdk_retries_injected_faults(sandbox, resource_group):
    # 429 with Retry-After and 503 are retried by azure-core's default policy; 2 faults then success
    client = sandbox.client(ResourceManagementClient)
    mark = sandbox.mark()
    with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 1, "kind": "503", "count": 1},
                         {"service": "arm", "path": resource_group, "rate": 1, "kind": "429", "retry_after": 1,
                          "count": 1}]):
        assert client.resource_groups.get(resource_group).name == resource_group
    statuses = [r["status"] for r in sandbox.requests_since(mark, "arm")]
    assert statuses == [503, 429, 200]


def test_a_fault_can_skip_requests_to_hit_exactly_the_nth(sandbox, resource_group):
    path = f"{sandbox.sub_scope}/resourcegroups/{resource_group}"
    mark = sandbox.mark()
    with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 1, "kind": "503", "skip": 2, "count": 1}]):
        statuses = [sandbox.raw("GET", path, api_version=RG_API).status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 200]
    assert [r["fault"] for r in sandbox.requests_since(mark, "arm")] == [None, None, "503", None]


def test_admin_rejects_bad_settings_and_faults(sandbox):
    with pytest.raises(urllib.error.HTTPError) as err:
        sandbox.admin("PATCH", "/settings", {"no_such_setting": 1})
    assert err.value.code == 400 and "unknown setting 'no_such_setting'" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        sandbox.admin("PUT", "/faults", {"rules": [{"kind": "418"}]})
    assert err.value.code == 400 and "rules[0].kind must be one of" in err.value.read().decode()


def test_state_survives_restart(sandbox, unique):
    client = sandbox.client(ResourceManagementClient)
    name = f"rg-persist-{unique}"
    client.resource_groups.create_or_update(name, {"location": "northeurope"})
    for command in ("down", "up"):
        subprocess.run([sys.executable, "-m", "sandbox", command], cwd=REPO, check=True, capture_output=True)
    assert sandbox.client(ResourceManagementClient).resource_groups.get(name).location == "northeurope"


def test_second_up_is_a_noop(sandbox):
    result = subprocess.run([sys.executable, "-m", "sandbox", "up"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0
    assert "already running" in result.stdout
