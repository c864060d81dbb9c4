"""Reading what is published: absent means write it, a transient answer means fail (no blind write)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.arcwi.workload_identity.plugins.module_utils._issuer import (
    DISCOVERY_PATH,
    PublishedReadError,
    canonical,
    discovery_document,
    ensure_documents,
    published_document,
)

URL = "https://st.blob.core.windows.net/oidc/.well-known/openid-configuration"
ISSUER = "https://st.blob.core.windows.net/oidc/"
JWKS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB", "use": "sig", "alg": "RS256"}]}


def test_200_is_the_document():
    assert published_document(URL, 200, b"{}", "application/json") == (b"{}", "application/json")


@pytest.mark.parametrize("status", [404, 403, 409])
def test_not_served_means_absent(status):
    assert published_document(URL, status, b"<Error/>", "application/xml") == (None, None)


@pytest.mark.parametrize("status", [0, 429, 500, 503])
def test_transient_answer_fails_and_names_the_url(status):
    with pytest.raises(PublishedReadError) as err:
        published_document(URL, status, b"ServerBusy", "application/xml")
    message = str(err.value)
    assert URL in message and "nothing was written" in message
    assert ("no answer" if status == 0 else f"HTTP {status}") in message


def test_a_failed_read_writes_nothing():
    writes = []

    class Writer:
        def write(self, name, data):
            writes.append(name)

    def read(path):
        return published_document(f"{ISSUER}{path}", 503, b"", None)

    with pytest.raises(PublishedReadError):
        ensure_documents(read, Writer, "", ISSUER, JWKS, check_mode=False)
    assert writes == []


def test_unchanged_documents_are_not_written():
    served = {DISCOVERY_PATH: canonical(discovery_document(ISSUER)), "openid/v1/jwks": canonical(JWKS)}

    def read(path):
        return published_document(f"{ISSUER}{path}", 200, served[path], "application/json")

    def writer():
        raise AssertionError("no write expected")

    changed, _published, before, _tracker = ensure_documents(read, writer, "", ISSUER, JWKS, check_mode=False)
    assert changed is False
    assert before[DISCOVERY_PATH] == json.loads(served[DISCOVERY_PATH])
