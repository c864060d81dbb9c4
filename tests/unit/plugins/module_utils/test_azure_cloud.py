"""Cloud endpoints: known names, metadata URLs, both metadata document shapes, precedence."""

from __future__ import annotations

import pytest

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    arm_scope,
    fetch_cloud_metadata,
    known_cloud,
    metadata_url,
    parse_cloud_metadata,
    resolve_cloud,
)
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import AzureApiError, AzureConfigError

SANDBOX_URL = "https://127.0.0.1:44301/metadata/endpoints?api-version=2022-09-01"
SANDBOX_AUDIENCE = "https://management.sandbox.arcwi.invalid/"


def sandbox_cloud(**overrides):
    """The list element the sandbox's ARM emulator serves (sandbox/server/arm/metadata.py)."""
    cloud = {
        "name": "ArcwiSandbox",
        "portal": "https://127.0.0.1:44301/",
        "resourceManager": "https://127.0.0.1:44301/",
        "authentication": {
            "loginEndpoint": "https://127.0.0.1:44302/",
            "audiences": [SANDBOX_AUDIENCE, SANDBOX_AUDIENCE.rstrip("/")],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {"storage": "sandbox.arcwi.invalid"},
    }
    cloud.update(overrides)
    return cloud


# An excerpt of what https://management.azure.com/metadata/endpoints?api-version=2022-09-01 returns.
PUBLIC_METADATA = [
    {"name": "AzureCloud", "resourceManager": "https://management.azure.com/",
     "authentication": {"loginEndpoint": "https://login.microsoftonline.com",
                        "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                        "tenant": "common", "identityProvider": "AAD"},
     "suffixes": {"storage": "core.windows.net"}},
    {"name": "AzureChinaCloud", "resourceManager": "https://management.chinacloudapi.cn",
     "authentication": {"loginEndpoint": "https://login.chinacloudapi.cn",
                        "audiences": ["https://management.core.chinacloudapi.cn", "https://management.chinacloudapi.cn"],
                        "tenant": "common", "identityProvider": "AAD"},
     "suffixes": {"storage": "core.chinacloudapi.cn"}},
]

# Azure Stack Hub's older single-object form (api-version 2015-01-01 / 1.0): no resourceManager.
STACK_METADATA = {
    "galleryEndpoint": "https://providers.local.azurestack.external:30016/",
    "graphEndpoint": "https://graph.windows.net/",
    "portalEndpoint": "https://portal.local.azurestack.external/",
    "authentication": {
        "loginEndpoint": "https://login.microsoftonline.com/",
        "audiences": ["https://management.contoso.onmicrosoft.com/4de154de-f8a8-4017-af41-df619da68155"],
    },
}
STACK_URL = "https://management.local.azurestack.external/metadata/endpoints?api-version=2015-01-01"


@pytest.mark.parametrize("name, arm, authority, scope", [
    ("AzureCloud", "https://management.azure.com/", "https://login.microsoftonline.com",
     "https://management.core.windows.net/.default"),
    ("AzureChinaCloud", "https://management.chinacloudapi.cn/", "https://login.chinacloudapi.cn",
     "https://management.core.chinacloudapi.cn/.default"),
    ("AzureUSGovernment", "https://management.usgovcloudapi.net/", "https://login.microsoftonline.us",
     "https://management.core.usgovcloudapi.net/.default"),
    ("azurepubliccloud", "https://management.azure.com/", "https://login.microsoftonline.com",
     "https://management.core.windows.net/.default"),
    ("AzureUSGovernmentCloud", "https://management.usgovcloudapi.net/", "https://login.microsoftonline.us",
     "https://management.core.usgovcloudapi.net/.default"),
])
def test_known_clouds(name, arm, authority, scope):
    cloud = known_cloud(name)
    assert (cloud.resource_manager, cloud.authority_host, cloud.arm_scope) == (arm, authority, scope)


def test_unknown_cloud_name_is_refused():
    with pytest.raises(AzureConfigError, match="unknown cloud_environment 'AzureGermanCloud'"):
        known_cloud("AzureGermanCloud")


@pytest.mark.parametrize("audience", ["https://x.test/", "https://x.test", "https://x.test//"])
def test_scope_has_exactly_one_slash_before_default(audience):
    assert arm_scope(audience) == "https://x.test/.default"


@pytest.mark.parametrize("given, expected", [
    ("https://127.0.0.1:44301", "https://127.0.0.1:44301/metadata/endpoints?api-version=2022-09-01"),
    ("https://127.0.0.1:44301/", "https://127.0.0.1:44301/metadata/endpoints?api-version=2022-09-01"),
    ("https://127.0.0.1:44301/metadata/endpoints", "https://127.0.0.1:44301/metadata/endpoints?api-version=2022-09-01"),
    (SANDBOX_URL, SANDBOX_URL),
    ("https://arm.test/metadata/endpoints?api-version=1.0", "https://arm.test/metadata/endpoints?api-version=1.0"),
])
def test_metadata_url_normalisation(given, expected):
    assert metadata_url(given) == expected


@pytest.mark.parametrize("bad", ["http://127.0.0.1:44301/metadata/endpoints", "https://", "ftp://x/"])
def test_metadata_url_must_be_https(bad):
    with pytest.raises(AzureConfigError, match="https"):
        metadata_url(bad)


def test_list_form_from_the_sandbox():
    cloud = parse_cloud_metadata([sandbox_cloud()], SANDBOX_URL)
    assert cloud.name == "ArcwiSandbox"
    assert cloud.resource_manager == "https://127.0.0.1:44301/"
    assert cloud.authority_host == "https://127.0.0.1:44302"
    assert cloud.arm_scope == "https://management.sandbox.arcwi.invalid/.default"
    assert cloud.storage_suffix == "sandbox.arcwi.invalid"
    assert cloud.metadata_url == SANDBOX_URL


def test_list_form_picks_the_cloud_served_by_the_host():
    url = "https://management.chinacloudapi.cn/metadata/endpoints?api-version=2022-09-01"
    cloud = parse_cloud_metadata(PUBLIC_METADATA, url)
    assert cloud.name == "AzureChinaCloud"
    assert cloud.resource_manager == "https://management.chinacloudapi.cn/"
    assert cloud.arm_scope == "https://management.core.chinacloudapi.cn/.default"


def test_list_form_with_several_clouds_and_no_match_is_refused():
    with pytest.raises(AzureConfigError, match="lists 2 clouds .*none has resourceManager https://other.test/"):
        parse_cloud_metadata(PUBLIC_METADATA, "https://other.test/metadata/endpoints?api-version=2022-09-01")


def test_list_form_with_one_cloud_served_elsewhere_is_accepted():
    # e.g. the metadata endpoint reached through a proxy or another name of the same host
    cloud = parse_cloud_metadata([sandbox_cloud()], "https://localhost:44301/metadata/endpoints?api-version=2022-09-01")
    assert cloud.resource_manager == "https://127.0.0.1:44301/"


def test_azure_stack_single_object_form():
    cloud = parse_cloud_metadata(STACK_METADATA, STACK_URL)
    assert cloud.resource_manager == "https://management.local.azurestack.external/"
    assert cloud.authority_host == "https://login.microsoftonline.com"
    assert cloud.arm_scope == "https://management.contoso.onmicrosoft.com/4de154de-f8a8-4017-af41-df619da68155/.default"


def test_sandbox_single_object_form():
    document = {"galleryEndpoint": "https://127.0.0.1:44301/",
                "authentication": {"loginEndpoint": "https://127.0.0.1:44302/",
                                   "audiences": [SANDBOX_AUDIENCE, SANDBOX_AUDIENCE.rstrip("/")]}}
    cloud = parse_cloud_metadata(document, "https://127.0.0.1:44301/metadata/endpoints?api-version=1.0")
    assert cloud.resource_manager == "https://127.0.0.1:44301/"
    assert cloud.arm_scope == "https://management.sandbox.arcwi.invalid/.default"


@pytest.mark.parametrize("document, message", [
    ([], "lists 0 clouds"),
    ({"name": "x"}, "neither a list of clouds nor an authentication object"),
    ("text", "neither a list"),
    ([sandbox_cloud(authentication={"audiences": [SANDBOX_AUDIENCE]})], "no authentication.loginEndpoint"),
    ([sandbox_cloud(authentication={"loginEndpoint": "https://l.test/", "audiences": []})], "no authentication.audiences"),
    ([sandbox_cloud(authentication={"loginEndpoint": "https://l.test/", "audiences": [None]})], "no authentication.audiences"),
    ([sandbox_cloud(resourceManager=None)], "lists 1 clouds|no resourceManager"),
])
def test_malformed_metadata_is_refused(document, message):
    with pytest.raises(AzureConfigError, match=message):
        parse_cloud_metadata(document, SANDBOX_URL)


def test_fetch_retries_transient_failures(net):
    transport = net.transport(net.reply(503), net.reply(200, [sandbox_cloud()]))
    cloud = fetch_cloud_metadata("https://127.0.0.1:44301", transport=transport)
    assert cloud.arm_scope == "https://management.sandbox.arcwi.invalid/.default"
    assert [r.url for r in transport.sent] == [SANDBOX_URL, SANDBOX_URL]
    assert "Authorization" not in transport.sent[0].headers


def test_fetch_reports_arms_error(net):
    transport = net.transport(net.arm_error(400, "InvalidApiVersionParameter", "The api-version '2099-01-01' is invalid."))
    with pytest.raises(AzureApiError) as caught:
        fetch_cloud_metadata("https://127.0.0.1:44301/metadata/endpoints?api-version=2099-01-01", transport=transport)
    assert caught.value.status == 400
    assert caught.value.code == "InvalidApiVersionParameter"
    assert "HTTP 400 InvalidApiVersionParameter: The api-version '2099-01-01' is invalid." in str(caught.value)
    assert len(transport.sent) == 1


def test_fetch_refuses_non_json(net):
    transport = net.transport(net.reply(200, "<html>login</html>"))
    with pytest.raises(AzureConfigError, match="not JSON"):
        fetch_cloud_metadata(SANDBOX_URL, transport=transport)


def test_fetch_connection_failure_is_an_api_error(net):
    import requests

    transport = net.transport(*[requests.ConnectionError("refused")] * 4)
    with pytest.raises(AzureApiError, match="GET https://127.0.0.1:44301/metadata/endpoints.* failed"):
        fetch_cloud_metadata(SANDBOX_URL, transport=transport)


@pytest.mark.parametrize("options, env, expected", [
    ({}, {}, "AzureCloud"),
    ({}, {"AZURE_CLOUD_ENVIRONMENT": "AzureChinaCloud"}, "AzureChinaCloud"),
    ({}, {"ARCWI_CLOUD_METADATA_URL": SANDBOX_URL, "AZURE_CLOUD_ENVIRONMENT": "AzureChinaCloud"}, "ArcwiSandbox"),
    ({"cloud_environment": "AzureUSGovernment"}, {"ARCWI_CLOUD_METADATA_URL": SANDBOX_URL}, "AzureUSGovernment"),
    ({"cloud_environment": SANDBOX_URL}, {}, "ArcwiSandbox"),
    ({"cloud_metadata_url": SANDBOX_URL}, {"AZURE_CLOUD_ENVIRONMENT": "AzureChinaCloud"}, "ArcwiSandbox"),
])
def test_resolve_precedence_options_then_environment(net, options, env, expected):
    transport = net.transport(net.reply(200, [sandbox_cloud()]))
    assert resolve_cloud(env=env, transport=transport, **options).name == expected


def test_both_cloud_options_are_refused():
    with pytest.raises(AzureConfigError, match="mutually exclusive"):
        resolve_cloud("AzureCloud", SANDBOX_URL, env={})
