"""ArmRetryPolicy decisions, driven through azure-core's real pipeline with a scripted network."""

from __future__ import annotations

import pytest
import requests

from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline import Pipeline
from azure.core.rest import HttpRequest

from ansible_collections.arcwi.workload_identity.plugins.module_utils._azure import (
    FIC_CONCURRENT_WRITES,
    FIC_WRITE_CONFLICTS,
    RETRYABLE_STATUS_CODES,
    ArmRetryPolicy,
    CloudEndpoints,
    arm_client,
)

URL = "https://arm.test/subscriptions/s/resourceGroups/rg?api-version=2021-04-01"


def policy(clock, **kwargs):
    kwargs.setdefault("rng", lambda: 0.5)
    return ArmRetryPolicy(clock=clock, **kwargs)


def run(transport, retry_policy, method="PUT", **call_kwargs):
    pipeline = Pipeline(transport=transport, policies=[retry_policy])
    with pipeline:
        request = HttpRequest(method, URL, json={"location": "westeurope"} if method in ("PUT", "POST") else None)
        return pipeline.run(request, **call_kwargs).http_response


def test_retryable_status_codes_are_the_documented_set():
    assert RETRYABLE_STATUS_CODES == {429, 500, 502, 503, 504}


@pytest.mark.parametrize("headers, expected", [
    ({"Retry-After": "7"}, 7.0),
    ({"Retry-After": "0"}, 0.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({"x-ms-retry-after-ms": "250"}, 0.25),
])
def test_throttling_honours_retry_after(net, clock, headers, expected):
    transport = net.transport(net.arm_error(429, "TooManyRequests", headers=headers), net.reply(200, {}))
    response = run(transport, policy(clock))
    assert response.status_code == 200
    assert len(transport.sent) == 2
    assert transport.sleeps == ([expected] if expected else [])


def test_retry_after_wins_over_backoff(net, clock):
    transport = net.transport(net.reply(503), net.arm_error(429, "TooManyRequests", headers={"Retry-After": "30"}),
                              net.reply(200, {}))
    run(transport, policy(clock, retry_backoff_factor=2))
    assert transport.sleeps == [1.5, 30.0]  # jittered 2s backoff (rng 0.5 -> 3/4 of it), then Retry-After


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUS_CODES))
def test_transient_statuses_are_retried(net, clock, status):
    transport = net.transport(net.reply(status), net.reply(200, {}))
    assert run(transport, policy(clock), method="GET").status_code == 200
    assert len(transport.sent) == 2


@pytest.mark.parametrize("status, code", [
    (400, "InvalidRequestContent"),
    (400, "BadRequest"),
    (401, "InvalidAuthenticationToken"),
    (403, "AuthorizationFailed"),
    (404, "ResourceNotFound"),
    (408, "RequestTimeout"),
    (409, "RoleAssignmentExists"),
    (409, "Conflict"),
    (412, "PreconditionFailed"),
    (422, "Unprocessable"),
])
def test_client_errors_are_never_retried(net, clock, status, code):
    # even with Retry-After, which azure-core's default policy would follow for any status >= 400
    transport = net.transport(net.arm_error(status, code, headers={"Retry-After": "1"}))
    response = run(transport, policy(clock, retry_error_codes=FIC_WRITE_CONFLICTS))
    assert response.status_code == status
    assert len(transport.sent) == 1
    assert transport.sleeps == []


def test_fic_concurrency_conflict_is_not_retried_unless_opted_in(net, clock):
    transport = net.transport(net.arm_error(409, FIC_CONCURRENT_WRITES))
    assert run(transport, policy(clock)).status_code == 409
    assert len(transport.sent) == 1


def test_fic_concurrency_conflict_retried_when_the_client_opts_in(net, clock):
    transport = net.transport(net.arm_error(409, FIC_CONCURRENT_WRITES), net.arm_error(409, FIC_CONCURRENT_WRITES),
                              net.reply(201, {}))
    response = run(transport, policy(clock, retry_error_codes=FIC_WRITE_CONFLICTS))
    assert response.status_code == 201
    assert len(transport.sent) == 3
    assert transport.sleeps == [0.75, 1.5]  # 1s then 2s backoff, equal jitter at rng 0.5


def test_fic_concurrency_conflict_retried_when_the_call_opts_in(net, clock):
    transport = net.transport(net.arm_error(409, FIC_CONCURRENT_WRITES), net.reply(200, {}))
    response = run(transport, policy(clock), retry_error_codes=FIC_WRITE_CONFLICTS)
    assert response.status_code == 200
    assert len(transport.sent) == 2


def test_a_call_can_opt_out_of_the_clients_error_codes(net, clock):
    transport = net.transport(net.arm_error(409, FIC_CONCURRENT_WRITES))
    response = run(transport, policy(clock, retry_error_codes=FIC_WRITE_CONFLICTS), retry_error_codes=())
    assert response.status_code == 409
    assert len(transport.sent) == 1


@pytest.mark.parametrize("total", [0, 1, 3])
def test_attempts_are_bounded_and_the_last_answer_is_returned(net, clock, total):
    transport = net.transport(*[net.arm_error(503, "ServiceUnavailable", "busy")] * (total + 1))
    response = run(transport, policy(clock, retry_total=total), method="GET")
    assert response.status_code == 503
    assert "busy" in response.text()
    assert len(transport.sent) == total + 1


def test_per_call_retry_total_bounds_attempts(net, clock):
    transport = net.transport(*[net.reply(429)] * 3)
    assert run(transport, policy(clock, retry_total=10), retry_total=2).status_code == 429
    assert len(transport.sent) == 3


def test_a_retry_after_beyond_the_time_budget_is_not_waited_for(net, clock):
    transport = net.transport(net.arm_error(429, "TooManyRequests", headers={"Retry-After": "120"}))
    response = run(transport, policy(clock, timeout=60))
    assert response.status_code == 429
    assert transport.sleeps == []


def test_total_time_is_bounded(net, clock):
    transport = net.transport(*[net.reply(429, headers={"Retry-After": "25"})] * 10)
    run(transport, policy(clock, retry_total=10, timeout=60))
    assert transport.sleeps == [25.0, 25.0]  # a third wait would end after 60s
    assert len(transport.sent) == 3


@pytest.mark.parametrize("rng, expected", [
    (lambda: 0.0, [0.5, 1.0, 2.0, 2.0, 2.0]),
    (lambda: 1.0, [1.0, 2.0, 4.0, 4.0, 4.0]),
])
def test_backoff_is_exponential_jittered_and_capped(net, clock, rng, expected):
    transport = net.transport(*[net.reply(500)] * 6)
    run(transport, ArmRetryPolicy(clock=clock, rng=rng, retry_total=5, retry_backoff_factor=1, retry_backoff_max=4),
        method="GET")
    assert transport.sleeps == expected


def test_default_jitter_stays_within_half_and_full_backoff(net, clock):
    transport = net.transport(*[net.reply(502)] * 7)
    run(transport, ArmRetryPolicy(clock=clock, retry_backoff_factor=1, retry_backoff_max=60), method="GET")
    assert len(transport.sleeps) == 6
    for attempt, wait in enumerate(transport.sleeps, start=1):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling


def test_connection_errors_are_retried(net, clock):
    transport = net.transport(requests.ConnectionError("connection refused"), net.reply(200, {}))
    assert run(transport, policy(clock), method="GET").status_code == 200
    assert len(transport.sent) == 2


def test_connection_errors_are_bounded(net, clock):
    transport = net.transport(*[requests.ConnectionError("connection refused")] * 10)
    with pytest.raises(ServiceRequestError):
        run(transport, policy(clock), method="GET")
    assert len(transport.sent) == 4  # azure-core's retry_connect (3) bounds connection retries


def test_mgmt_client_call_opts_in_per_call(net, clock, credential):
    """End to end through azure-mgmt-msi: the per-call keyword reaches the policy and no further
    (RequestsTransport would hand an unknown keyword to requests, which would raise TypeError)."""
    msi = pytest.importorskip("azure.mgmt.msi")
    models = pytest.importorskip("azure.mgmt.msi.models")
    fic = {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id"
                 "/federatedIdentityCredentials/fic", "name": "fic",
           "properties": {"issuer": "https://issuer.test/", "subject": "system:serviceaccount:ns:sa",
                          "audiences": ["api://AzureADTokenExchange"]}}
    transport = net.transport(net.arm_error(409, FIC_CONCURRENT_WRITES), net.reply(201, fic))
    cloud = CloudEndpoints("Test", "https://arm.test/", "https://login.test", ("https://arm-audience.test/",))
    client = arm_client(msi.ManagedServiceIdentityClient, cloud, credential, "s", transport=transport,
                        retry_policy=policy(clock))
    result = client.federated_identity_credentials.create_or_update(
        "rg", "id", "fic",
        models.FederatedIdentityCredential(issuer="https://issuer.test/", subject="system:serviceaccount:ns:sa",
                                           audiences=["api://AzureADTokenExchange"]),
        retry_error_codes=FIC_WRITE_CONFLICTS,
    )
    assert result.issuer == "https://issuer.test/"
    assert [r.method for r in transport.sent] == ["PUT", "PUT"]
    assert all(r.url.startswith("https://arm.test/subscriptions/s/resourceGroups/rg/") for r in transport.sent)
    assert credential.scopes[0] == ("https://arm-audience.test/.default",)
