"""The collection's Azure client foundation (plugins/module_utils/_azure.py) against the emulators.

Cloud discovery from the ARM emulator's /metadata/endpoints, credential selection from the
sandbox's environment, and ArmRetryPolicy against real 429 / 409 / 400 answers, counted in the
request log.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from .conftest import collection_module

REPO = Path(__file__).resolve().parents[2]
SANDBOX_AUDIENCE_SCOPE = "https://management.sandbox.arcwi.invalid/.default"


@pytest.fixture(scope="module")
def azure_utils():
    """plugins/module_utils/_azure.py imported as ansible_collections.arcwi.workload_identity (the
    repository root is the collection root; a symlink gives it the collection's import path)."""
    return collection_module("plugins.module_utils._azure")


def statuses(sandbox, mark, fragment, method=None):
    """Statuses of the ARM requests since ``mark`` whose path contains ``fragment`` (the sandbox is
    shared: other tests' requests are in the log too)."""
    return [r["status"] for r in sandbox.requests_since(mark, "arm")
            if fragment.lower() in r["path"].lower() and (method is None or r["method"] == method)]


@pytest.fixture
def session(sandbox, azure_utils):
    env = sandbox.env
    params = {"subscription_id": env["AZURE_SUBSCRIPTION_ID"], "client_id": env["AZURE_CLIENT_ID"],
              "secret": env["AZURE_CLIENT_SECRET"], "tenant": env["AZURE_TENANT_ID"], "auth_source": "auto",
              "cloud_metadata_url": env["ARCWI_CLOUD_METADATA_URL"]}
    return azure_utils.AzureSession.from_params(params, env=env)


@pytest.mark.parametrize("suffix", ["", "/", "/metadata/endpoints?api-version=2022-09-01",
                                    "/metadata/endpoints?api-version=1.0",
                                    "/metadata/endpoints?api-version=2015-01-01"])
def test_cloud_discovered_from_the_arm_emulator(sandbox, azure_utils, suffix):
    cloud = azure_utils.resolve_cloud(cloud_metadata_url=sandbox.arm_url.rstrip("/") + suffix, env={})
    assert cloud.resource_manager == sandbox.arm_url.rstrip("/") + "/"
    assert cloud.authority_host == sandbox.authority.rstrip("/")
    assert cloud.arm_scope == SANDBOX_AUDIENCE_SCOPE
    assert not azure_utils.is_public_authority(cloud.authority_host)


def test_unknown_metadata_api_version_is_arms_error(sandbox, azure_utils):
    url = sandbox.arm_url.rstrip("/") + "/metadata/endpoints?api-version=2099-01-01"
    with pytest.raises(azure_utils.AzureApiError) as caught:
        azure_utils.resolve_cloud(cloud_metadata_url=url, env={})
    assert (caught.value.status, caught.value.code) == (400, "InvalidApiVersionParameter")


def test_session_from_the_sandbox_environment_reads_arm(sandbox, session, resource_group):
    from azure.identity import ClientSecretCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    assert isinstance(session.credential, ClientSecretCredential)
    assert session.warnings == []
    client = session.client(ResourceManagementClient)
    assert client.resource_groups.get(resource_group).name == resource_group


def test_retry_after_from_the_emulator_is_honoured(sandbox, session, resource_group):
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = session.client(ResourceManagementClient)
    mark = sandbox.mark()
    started = time.monotonic()
    with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 1, "kind": "429", "retry_after": 1,
                          "count": 2}]):
        assert client.resource_groups.get(resource_group).name == resource_group
    waited = time.monotonic() - started
    assert statuses(sandbox, mark, resource_group) == [429, 429, 200]
    assert waited >= 2.0  # two Retry-After: 1 waits (a lower bound, not a timing benchmark)


def test_transient_server_errors_are_retried(sandbox, session, resource_group):
    from azure.mgmt.resource.resources import ResourceManagementClient

    client = session.client(ResourceManagementClient)
    mark = sandbox.mark()
    with sandbox.faults([{"service": "arm", "path": resource_group, "rate": 1, "kind": "503", "count": 1},
                         {"service": "arm", "path": resource_group, "rate": 1, "kind": "500", "count": 1}]):
        assert client.resource_groups.get(resource_group).name == resource_group
    assert statuses(sandbox, mark, resource_group) == [503, 500, 200]


def test_bad_request_is_not_retried(sandbox, session, azure_utils, resource_group, unique):
    from azure.mgmt.msi import ManagedServiceIdentityClient
    from azure.mgmt.msi.models import FederatedIdentityCredential

    client = session.client(ManagedServiceIdentityClient, retry_error_codes=azure_utils.FIC_WRITE_CONFLICTS)
    identity = f"id-{unique}"
    client.user_assigned_identities.create_or_update(resource_group, identity, {"location": "westeurope"})
    body = FederatedIdentityCredential(issuer="https://issuer.test/", subject="system:serviceaccount:ns:sa",
                                       audiences=["api://AzureADTokenExchange", "api://second"])
    create = azure_utils.translate_errors("create federated identity credential")(
        client.federated_identity_credentials.create_or_update)
    mark = sandbox.mark()
    with pytest.raises(azure_utils.AzureApiError) as caught:
        create(resource_group, identity, "fic", body)
    assert (caught.value.status, caught.value.code) == (400, "BadRequest")
    assert str(caught.value) == ("create federated identity credential failed: HTTP 400 BadRequest: "
                                 "Federated identity credentials must have exactly one audience.")
    assert statuses(sandbox, mark, identity) == [400]


def _write_fics_concurrently(client, resource_group, identity, names, **call_kwargs):
    from azure.mgmt.msi.models import FederatedIdentityCredential

    outcomes = {}
    barrier = threading.Barrier(len(names))

    def write(name):
        body = FederatedIdentityCredential(issuer=f"https://issuer.test/{name}", subject=f"system:serviceaccount:ns:{name}",
                                           audiences=["api://AzureADTokenExchange"])
        barrier.wait()
        try:
            client.federated_identity_credentials.create_or_update(resource_group, identity, name, body, **call_kwargs)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001  the outcome is asserted below
            outcomes[name] = getattr(getattr(exc, "error", None), "code", None) or repr(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_concurrent_fic_writes_collide_without_opt_in(sandbox, session, azure_utils, resource_group, unique):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    client = session.client(ManagedServiceIdentityClient)
    identity = f"id-{unique}"
    client.user_assigned_identities.create_or_update(resource_group, identity, {"location": "westeurope"})
    with sandbox.settings(fic_write_seconds=1.0):
        outcomes = _write_fics_concurrently(client, resource_group, identity, ["fic-a", "fic-b", "fic-c"])
    assert sorted(outcomes.values()).count("ok") >= 1
    assert azure_utils.FIC_CONCURRENT_WRITES in outcomes.values()


@pytest.mark.parametrize("opt_in", ["client", "call"])
def test_concurrent_fic_writes_are_retried_when_opted_in(sandbox, session, azure_utils, resource_group, unique, opt_in):
    from azure.mgmt.msi import ManagedServiceIdentityClient

    codes = azure_utils.FIC_WRITE_CONFLICTS
    client = session.client(ManagedServiceIdentityClient, **({"retry_error_codes": codes} if opt_in == "client" else {}))
    identity = f"id-{unique}"
    client.user_assigned_identities.create_or_update(resource_group, identity, {"location": "westeurope"})
    mark = sandbox.mark()
    with sandbox.settings(fic_write_seconds=0.5):
        outcomes = _write_fics_concurrently(client, resource_group, identity, ["fic-a", "fic-b", "fic-c"],
                                            **({"retry_error_codes": codes} if opt_in == "call" else {}))
    assert outcomes == {"fic-a": "ok", "fic-b": "ok", "fic-c": "ok"}
    puts = statuses(sandbox, mark, f"/userAssignedIdentities/{identity}/", method="PUT")
    assert 409 in puts, "the writes overlapped, so some were refused and retried"
    assert puts.count(201) == 3
    assert set(puts) <= {201, 409, 429}  # 429: the emulator's per-resource write throttling, also retried
