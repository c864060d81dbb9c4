"""Seams for the module_utils tests: a fake network under azure-core's real RequestsTransport.

Only the last hop is faked (a requests adapter that answers from a script), so azure-core's
pipeline, the retry policy, the SDK clients and their error mapping all run for real, offline.
The transport's sleep advances a fake clock instead of sleeping.
"""

from __future__ import annotations

import io
import json
import time

import pytest
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3 import HTTPResponse

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reply(status: int = 200, body=None, headers=None):
    """One scripted answer: (status, headers, body bytes); dict/list bodies become JSON."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    return status, headers, body or b""


def arm_error_reply(status: int, code: str, message: str = "message", headers=None):
    return reply(status, {"error": {"code": code, "message": message}}, headers)


class ScriptedAdapter(BaseAdapter):
    """Answers requests from a list of replies or exceptions, in order; records what was sent."""

    def __init__(self, script) -> None:
        super().__init__()
        self.script = list(script)
        self.sent = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # pylint: disable=arguments-differ
        self.sent.append(request)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, headers, body = item
        raw = HTTPResponse(body=io.BytesIO(body), headers=headers, status=status,
                           preload_content=False, decode_content=False, request_url=request.url)
        return HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        pass


class FakeTransport(RequestsTransport):
    def __init__(self, script, clock: FakeClock | None = None) -> None:
        self.adapter = ScriptedAdapter(script)
        session = requests.Session()
        session.mount("https://", self.adapter)
        session.mount("http://", self.adapter)
        super().__init__(session=session, session_owner=False)
        self.clock = clock or FakeClock()
        self.sleeps = []

    @property
    def sent(self):
        return self.adapter.sent

    def sleep(self, duration: float) -> None:
        self.sleeps.append(duration)
        self.clock.advance(duration)


class FakeCredential:
    """A TokenCredential that records the scopes it was asked for."""

    def __init__(self) -> None:
        self.scopes = []

    def get_token(self, *scopes, **kwargs):  # pylint: disable=unused-argument
        self.scopes.append(scopes)
        return AccessToken("fake-token", int(time.time()) + 3600)


@pytest.fixture
def clock():
    return FakeClock()


class FakeNetwork:
    """What tests use: scripted replies and transports that share one fake clock."""

    reply = staticmethod(reply)
    arm_error = staticmethod(arm_error_reply)

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def transport(self, *script) -> FakeTransport:
        return FakeTransport(script, self.clock)


@pytest.fixture
def net(clock):
    return FakeNetwork(clock)


@pytest.fixture
def credential():
    return FakeCredential()
