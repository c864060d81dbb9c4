"""Client factory, error translation and the AzureModule edge (options, env fallbacks, failures)."""

from __future__ import annotations

import json

import pytest

from azure.core.exceptions import ClientAuthenticationError

from ansible.module_utils.testing import patch_module_args

from ansible_collections.arcwi.workload_identity.plugins.module_utils import _azure
from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    ArmRetryPolicy,
    AzureModule,
    CloudEndpoints,
    arm_client,
    azure_argument_spec,
    blob_service_client,
    translate_errors,
)
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import (
    AzureApiError,
    AzureAuthError,
    AzureConfigError,
)

CLOUD = CloudEndpoints("Test", "https://arm.test/", "https://login.test", ("https://arm-audience.test/",))
RG = {"id": "/subscriptions/s/resourceGroups/rg", "name": "rg", "location": "westeurope",
      "properties": {"provisioningState": "Succeeded"}}


@pytest.fixture
def resources():
    return pytest.importorskip("azure.mgmt.resource.resources")


# ---- client factory ------------------------------------------------------------------------------

def test_client_uses_the_clouds_endpoint_scope_and_our_retry_policy(net, credential, resources):
    transport = net.transport(net.reply(200, RG))
    client = arm_client(resources.ResourceManagementClient, CLOUD, credential, "s", transport=transport)
    assert isinstance(client._config.retry_policy, ArmRetryPolicy)  # pylint: disable=protected-access
    assert client.resource_groups.get("rg").name == "rg"
    assert transport.sent[0].url.startswith("https://arm.test/subscriptions/s/resourcegroups/rg?api-version=")
    assert transport.sent[0].headers["Authorization"] == "Bearer fake-token"
    assert credential.scopes == [("https://arm-audience.test/.default",)]


def test_client_error_codes_are_declared_per_client(credential, resources):
    client = arm_client(resources.ResourceManagementClient, CLOUD, credential, "s",
                        retry_error_codes=_azure.FIC_WRITE_CONFLICTS)
    assert client._config.retry_policy.retry_error_codes == _azure.FIC_WRITE_CONFLICTS  # pylint: disable=protected-access


def test_client_needs_a_subscription(credential, resources):
    with pytest.raises(AzureConfigError, match="ResourceManagementClient needs a subscription"):
        arm_client(resources.ResourceManagementClient, CLOUD, credential, None)


def test_subscription_less_clients_get_none(credential):
    subscriptions = pytest.importorskip("azure.mgmt.resource.subscriptions")
    client = arm_client(subscriptions.SubscriptionClient, CLOUD, credential, None)
    assert client._config.credential_scopes == ["https://arm-audience.test/.default"]  # pylint: disable=protected-access


def test_blob_service_client():
    pytest.importorskip("azure.storage.blob")
    client = blob_service_client("https://127.0.0.1:44310/account", api_version="2021-08-06")
    assert client.url.startswith("https://127.0.0.1:44310/account")
    assert client.api_version == "2021-08-06"
    assert client.credential is None


# ---- error translation ---------------------------------------------------------------------------

def test_arm_errors_become_typed_errors_with_code_and_message(net, credential, resources):
    message = ("The client 'x' with object id 'x' does not have authorization to perform action "
               "'Microsoft.Resources/subscriptions/resourcegroups/write' over scope '/subscriptions/s/resourcegroups/rg' "
               "or the scope is invalid. If access was recently granted, please refresh your credentials.")
    transport = net.transport(net.arm_error(403, "AuthorizationFailed", message))
    client = arm_client(resources.ResourceManagementClient, CLOUD, credential, "s", transport=transport)
    create = translate_errors("create resource group rg")(client.resource_groups.create_or_update)
    with pytest.raises(AzureApiError) as caught:
        create("rg", {"location": "westeurope"})
    error = caught.value
    assert (error.status, error.code, error.message) == (403, "AuthorizationFailed", message)
    assert str(error) == f"create resource group rg failed: HTTP 403 AuthorizationFailed: {message}"
    assert error.to_result() == {"error": {"status": 403, "code": "AuthorizationFailed", "message": message}}
    assert len(transport.sent) == 1


def test_not_found_can_be_a_value(net, credential, resources):
    transport = net.transport(net.arm_error(404, "ResourceGroupNotFound", "Resource group 'rg' could not be found."))
    client = arm_client(resources.ResourceManagementClient, CLOUD, credential, "s", transport=transport)
    get = translate_errors("get resource group rg", not_found=None)(client.resource_groups.get)
    assert get("rg") is None


def test_not_found_raises_by_default(net, credential, resources):
    transport = net.transport(net.arm_error(404, "ResourceGroupNotFound", "Resource group 'rg' could not be found."))
    client = arm_client(resources.ResourceManagementClient, CLOUD, credential, "s", transport=transport)
    with pytest.raises(AzureApiError) as caught:
        translate_errors("get resource group rg")(client.resource_groups.get)("rg")
    assert caught.value.not_found and caught.value.code == "ResourceGroupNotFound"


def test_token_failures_carry_the_aadsts_code():
    @translate_errors("get a token")
    def fail():
        raise ClientAuthenticationError(
            "ClientSecretCredential.get_token failed: AADSTS7000215: Invalid client secret provided.")

    with pytest.raises(AzureAuthError) as caught:
        fail()
    assert caught.value.code == "AADSTS7000215"
    assert str(caught.value).startswith("get a token failed: AADSTS7000215: ClientSecretCredential.get_token failed")


@pytest.mark.parametrize("error, text", [
    (AzureApiError("busy", status=503), "HTTP 503: busy"),
    (AzureApiError("refused", operation="GET x"), "GET x failed: refused"),
    (AzureApiError("m", status=409, code="C", operation="op"), "op failed: HTTP 409 C: m"),
    (AzureApiError("m", code="C"), "C: m"),
])
def test_api_error_text(error, text):
    assert str(error) == text


# ---- AzureModule ---------------------------------------------------------------------------------

def run_module(capsys, args, body):
    """Run ``body(module)`` as a module would; returns the module's JSON result."""
    with patch_module_args(args), pytest.raises(SystemExit):
        module = AzureModule(argument_spec=dict(name=dict(type="str", required=True)), supports_check_mode=True)
        body(module)
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_CLIENT_SECRET", "AZURE_TENANT",
                 "AZURE_TENANT_ID", "ANSIBLE_AZURE_AUTH_SOURCE", "ARCWI_CLOUD_METADATA_URL", "AZURE_CLOUD_ENVIRONMENT",
                 "AZURE_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_shared_options_are_merged_with_the_modules(capsys, clean_env):
    result = run_module(capsys, {"name": "x"}, lambda m: m.exit_json(changed=False, params=m.params))
    assert set(azure_argument_spec()) <= set(result["params"])
    assert result["params"]["name"] == "x"
    assert result["params"]["auth_source"] == "auto"


@pytest.mark.parametrize("env, option, value", [
    ({"AZURE_CLIENT_SECRET": "from-sdk-name"}, "secret", "from-sdk-name"),
    ({"AZURE_SECRET": "from-azcollection-name", "AZURE_CLIENT_SECRET": "x"}, "secret", "from-azcollection-name"),
    ({"AZURE_TENANT_ID": "t1"}, "tenant", "t1"),
    ({"AZURE_TENANT": "t2", "AZURE_TENANT_ID": "t1"}, "tenant", "t2"),
    ({"AZURE_SUBSCRIPTION_ID": "s"}, "subscription_id", "s"),
    ({"AZURE_CLIENT_ID": "c"}, "client_id", "c"),
    ({"ANSIBLE_AZURE_AUTH_SOURCE": "cli"}, "auth_source", "cli"),
])
def test_environment_fallbacks(capsys, clean_env, env, option, value):
    for name, val in env.items():
        clean_env.setenv(name, val)
    # compare inside the module: the secret is no_log, so Ansible masks it in the output
    result = run_module(capsys, {"name": "x"}, lambda m: m.exit_json(changed=False, ok=m.params[option] == value))
    assert result["ok"] is True


def test_cloud_options_are_mutually_exclusive(capsys, clean_env):
    result = run_module(capsys, {"name": "x", "cloud_environment": "AzureCloud",
                                 "cloud_metadata_url": "https://127.0.0.1:44301/"}, lambda m: None)
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]


def test_fail_from_reports_azures_code_and_message(capsys, clean_env):
    def body(module):
        module.fail_from(AzureApiError("Too many Federated Identity Credentials are written concurrently",
                                       status=409, code=_azure.FIC_CONCURRENT_WRITES, operation="create fic"))

    result = run_module(capsys, {"name": "x"}, body)
    assert result["failed"] is True
    assert result["msg"] == ("create fic failed: HTTP 409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity: "
                             "Too many Federated Identity Credentials are written concurrently")
    assert result["error"]["code"] == _azure.FIC_CONCURRENT_WRITES
    assert "exception" not in result


def test_fail_from_unexpected_error_keeps_the_traceback(capsys, clean_env):
    def body(module):
        try:
            raise KeyError("clientId")
        except KeyError as exc:
            module.fail_from(exc)

    result = run_module(capsys, {"name": "x"}, body)
    assert result["msg"] == "KeyError: 'clientId'"
    # the traceback is passed on; ansible-core >= 2.19 includes it only when tracebacks are enabled
    assert "Traceback" in result.get("exception", "Traceback")


def test_session_errors_surface_as_typed_errors(capsys, clean_env):
    def body(module):
        try:
            module.session  # pylint: disable=pointless-statement
        except AzureConfigError as exc:
            module.fail_from(exc)

    result = run_module(capsys, {"name": "x", "cloud_environment": "Mars"}, body)
    assert result["msg"].startswith("unknown cloud_environment 'Mars'")


def test_missing_sdk_is_reported_with_missing_required_lib(capsys, clean_env):
    with patch_module_args({"name": "x"}), pytest.raises(SystemExit):
        AzureModule(argument_spec=dict(name=dict(type="str")),
                    libraries={"azure-mgmt-msi": "Traceback...\nImportError: No module named 'azure.mgmt.msi'"})
    result = json.loads(capsys.readouterr().out)
    assert "Failed to import the required Python library (azure-mgmt-msi)" in result["msg"]
