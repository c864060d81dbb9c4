"""Credential selection: which azure-identity class, with which kwargs (and that it constructs)."""

from __future__ import annotations

import pytest

import azure.identity

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    AzureSession,
    CloudEndpoints,
    authority_for,
    build_credential,
    credential_spec,
    is_public_authority,
    known_cloud,
)
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import AzureConfigError

PUBLIC = "https://login.microsoftonline.com"
SANDBOX = "https://127.0.0.1:44302"
SANDBOX_CLOUD = CloudEndpoints("ArcwiSandbox", "https://127.0.0.1:44301/", SANDBOX,
                               ("https://management.sandbox.arcwi.invalid/",))
NO_DISCOVERY = {"disable_instance_discovery": True}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """azure-identity reads AZURE_* variables at construction; the tests pass env explicitly."""
    for name in ("AZURE_AUTHORITY_HOST", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                 "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "AZURE_TOKEN_CREDENTIALS",
                 "AZURE_CLIENT_CERTIFICATE_PATH", "ARCWI_CLOUD_METADATA_URL", "AZURE_CLOUD_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("host, public", [
    ("https://login.microsoftonline.com", True),
    ("login.microsoftonline.com", True),
    ("https://login.microsoftonline.com/", True),
    ("https://login.chinacloudapi.cn", True),
    ("https://login.microsoftonline.us", True),
    ("https://127.0.0.1:44302", False),
    ("https://login.microsoftonline.com.evil.test", False),
    ("https://adfs.local.azurestack.external", False),
])
def test_public_authorities_are_azure_authority_hosts(host, public):
    assert is_public_authority(host) is public


@pytest.mark.parametrize("auth_source, authority, options, expected", [
    # auto + explicit service principal
    ("auto", PUBLIC, dict(client_id="app", secret="s3cret", tenant="t"),
     ("ClientSecretCredential", dict(tenant_id="t", client_id="app", client_secret="s3cret", authority=PUBLIC))),
    ("auto", SANDBOX, dict(client_id="app", secret="s3cret", tenant="t"),
     ("ClientSecretCredential", dict(tenant_id="t", client_id="app", client_secret="s3cret", authority=SANDBOX,
                                     **NO_DISCOVERY))),
    # auto without a secret: the DefaultAzureCredential chain
    ("auto", PUBLIC, {}, ("DefaultAzureCredential", dict(authority=PUBLIC))),
    ("auto", SANDBOX, {}, ("DefaultAzureCredential", dict(authority=SANDBOX, **NO_DISCOVERY))),
    ("auto", PUBLIC, dict(client_id="mi", tenant="t"),
     ("DefaultAzureCredential", dict(authority=PUBLIC, managed_identity_client_id="mi",
                                     workload_identity_client_id="mi", workload_identity_tenant_id="t"))),
    # explicit sources
    ("env", SANDBOX, dict(secret="ignored"), ("EnvironmentCredential", dict(authority=SANDBOX, **NO_DISCOVERY))),
    ("env", PUBLIC, {}, ("EnvironmentCredential", dict(authority=PUBLIC))),
    ("cli", PUBLIC, {}, ("AzureCliCredential", {})),
    ("cli", PUBLIC, dict(tenant="t"), ("AzureCliCredential", dict(tenant_id="t"))),
    ("msi", PUBLIC, {}, ("ManagedIdentityCredential", {})),
    ("msi", SANDBOX, dict(client_id="mi", secret="ignored"), ("ManagedIdentityCredential", dict(client_id="mi"))),
])
def test_credential_selection(auth_source, authority, options, expected):
    assert credential_spec(auth_source, authority=authority, env={}, **options) == expected


def test_workload_identity_uses_the_token_file_and_the_cloud_authority(tmp_path):
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    env = {"AZURE_FEDERATED_TOKEN_FILE": str(token), "AZURE_TENANT_ID": "env-tenant", "AZURE_CLIENT_ID": "env-app"}
    assert credential_spec("workload_identity", authority=SANDBOX, env=env) == (
        "WorkloadIdentityCredential",
        dict(authority=SANDBOX, tenant_id="env-tenant", client_id="env-app", token_file_path=str(token), **NO_DISCOVERY),
    )
    name, kwargs = credential_spec("workload_identity", authority=PUBLIC, client_id="app", tenant="t", env=env)
    assert (name, kwargs["client_id"], kwargs["tenant_id"]) == ("WorkloadIdentityCredential", "app", "t")
    assert "disable_instance_discovery" not in kwargs


def test_workload_identity_without_token_file_is_a_config_error():
    with pytest.raises(AzureConfigError, match="missing: token_file_path"):
        credential_spec("workload_identity", authority=PUBLIC, client_id="app", tenant="t", env={})


@pytest.mark.parametrize("options, missing", [
    (dict(secret="s"), "client_id and tenant"),
    (dict(secret="s", client_id="app"), "tenant"),
    (dict(secret="s", tenant="t"), "client_id"),
])
def test_secret_without_client_or_tenant_is_a_config_error(options, missing):
    with pytest.raises(AzureConfigError, match=f"a client secret needs {missing} too"):
        credential_spec("auto", authority=PUBLIC, env={}, **options)


def test_unknown_auth_source_is_refused():
    with pytest.raises(AzureConfigError, match="auth_source must be one of"):
        credential_spec("credential_file", authority=PUBLIC, env={})


@pytest.mark.parametrize("env, expected", [
    ({}, SANDBOX),
    ({"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"}, "https://login.microsoftonline.us"),
    ({"AZURE_AUTHORITY_HOST": "login.chinacloudapi.cn"}, "https://login.chinacloudapi.cn"),
    ({"AZURE_AUTHORITY_HOST": "https://127.0.0.1:9999/"}, "https://127.0.0.1:9999"),
    ({"AZURE_AUTHORITY_HOST": ""}, SANDBOX),
])
def test_azure_authority_host_is_honoured(env, expected):
    assert authority_for(SANDBOX_CLOUD, env) == expected


@pytest.mark.parametrize("spec, cls", [
    (("ClientSecretCredential", dict(tenant_id="t", client_id="app", client_secret="s", authority=SANDBOX,
                                     **NO_DISCOVERY)), azure.identity.ClientSecretCredential),
    (("DefaultAzureCredential", dict(authority=SANDBOX, managed_identity_client_id="mi",
                                     workload_identity_client_id="mi", workload_identity_tenant_id="t",
                                     **NO_DISCOVERY)), azure.identity.DefaultAzureCredential),
    (("EnvironmentCredential", dict(authority=SANDBOX, **NO_DISCOVERY)), azure.identity.EnvironmentCredential),
    (("AzureCliCredential", dict(tenant_id="t")), azure.identity.AzureCliCredential),
    (("ManagedIdentityCredential", dict(client_id="mi")), azure.identity.ManagedIdentityCredential),
])
def test_every_spec_constructs_offline(spec, cls):
    assert isinstance(build_credential(spec), cls)


def test_workload_identity_constructs(tmp_path):
    token = tmp_path / "token"
    token.write_text("x")
    spec = credential_spec("workload_identity", authority=SANDBOX, client_id="app", tenant="t",
                           env={"AZURE_FEDERATED_TOKEN_FILE": str(token)})
    assert isinstance(build_credential(spec), azure.identity.WorkloadIdentityCredential)


def test_construction_errors_become_config_errors():
    with pytest.raises(AzureConfigError, match="cannot create ClientSecretCredential"):
        build_credential(("ClientSecretCredential", dict(tenant_id="not a tenant!", client_id="app", client_secret="s")))


def test_session_from_params_sandbox_service_principal(net):
    metadata = [{"name": "ArcwiSandbox", "resourceManager": "https://127.0.0.1:44301/",
                 "authentication": {"loginEndpoint": "https://127.0.0.1:44302/",
                                    "audiences": ["https://management.sandbox.arcwi.invalid/"]}}]
    params = dict(cloud_metadata_url="https://127.0.0.1:44301/metadata/endpoints?api-version=2022-09-01",
                  subscription_id="sub", client_id="app", secret="s", tenant="t", auth_source="auto")
    session = AzureSession.from_params(params, env={}, transport=net.transport(net.reply(200, metadata)))
    assert session.cloud.arm_scope == "https://management.sandbox.arcwi.invalid/.default"
    assert isinstance(session.credential, azure.identity.ClientSecretCredential)
    assert session.subscription_id == "sub"
    assert session.warnings == []


def test_session_warns_when_azure_authority_host_overrides_the_cloud():
    params = dict(cloud_environment="AzureCloud", auth_source="cli")
    session = AzureSession.from_params(params, env={"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us"})
    assert session.cloud == known_cloud("AzureCloud")
    assert session.warnings == ["AZURE_AUTHORITY_HOST (https://login.microsoftonline.us) overrides the login "
                                "endpoint of cloud AzureCloud (https://login.microsoftonline.com)"]
