# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Known-answer and refusal tests of _jwks.

The expected bytes in fixtures/jwks/expected.json come from Go (keyutil + go-jose, the code of
`azwi jwks` and kube-apiserver), see fixtures/jwks/README.md: these are parity tests, not a
re-run of this implementation.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from pathlib import Path

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ansible_collections.arcwi.workload_identity.plugins.module_utils import _jwks
from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError
from ansible_collections.arcwi.workload_identity.plugins.module_utils._jwks import (
    KeyFormatError,
    UnsupportedKeyError,
    build_jwks,
    generate,
    jwks_json,
    key_id,
    keys_from_file,
    keys_from_pem,
    plan_file,
)

FIXTURES = Path(__file__).parent / "fixtures" / "jwks"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# Cases the module accepts, keyed by the name in expected.json
ACCEPTED = {
    "rsa-2048.pub.pem": "RSA 2048 public key",
    "rsa-4096.pub.pem": "RSA 4096 public key",
    "ec-p256.pub.pem": "EC P-256 public key",
    "ec-p384.pub.pem": "EC P-384 public key",
    "ec-p521.pub.pem": "EC P-521 public key",
    "rsa-2048.key.pem": "RSA PRIVATE KEY (PKCS#1)",
    "rsa-4096.pkcs8.key.pem": "PRIVATE KEY (PKCS#8, RSA)",
    "ec-p256.key.pem": "EC PARAMETERS + EC PRIVATE KEY",
    "ec-p384.crt.pem": "certificate",
    "rsa-1024.pub.pem": "RSA 1024 (weak, accepted)",
    "bundle.pem": "several PEM blocks, a duplicate",
    "several files": "several files, duplicates across them",
    "ec-p256.pkcs8.key.pem (x509.ParsePKCS8PrivateKey)": "PRIVATE KEY (PKCS#8, EC)",
}


def test_fixture_manifest_covers_the_cases():
    assert set(ACCEPTED) <= set(EXPECTED)
    for name in ACCEPTED:
        assert EXPECTED[name].get("azwi"), name


@pytest.mark.parametrize("name", sorted(ACCEPTED), ids=lambda name: ACCEPTED[name])
def test_known_answers_match_azwi_and_kube_apiserver(name):
    case = EXPECTED[name]
    result = generate([fixture(path) for path in case["inputs"]])

    assert result.kids == case["kids"]
    assert jwks_json(result.jwks) == case["azwi"].encode()
    assert jwks_json(result.jwks, indent=False) == case["kube_apiserver"].encode()
    assert result.jwks == json.loads(case["kube_apiserver"])


@pytest.mark.parametrize("name, alg, crv, size", [
    ("ec-p256.pub.pem", "ES256", "P-256", 32),
    ("ec-p384.pub.pem", "ES384", "P-384", 48),
    ("ec-p521.pub.pem", "ES512", "P-521", 66),
])
def test_ec_coordinates_are_padded_to_the_curve_size(name, alg, crv, size):
    (entry,) = keys_from_file(fixture(name))
    jwk = entry.jwk
    assert list(jwk) == ["use", "kty", "kid", "crv", "alg", "x", "y"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", crv, alg)
    x, y = b64url_decode(jwk["x"]), b64url_decode(jwk["y"])
    assert len(x) == len(y) == size
    public = serialization.load_pem_public_key((FIXTURES / name).read_bytes()).public_numbers()
    assert int.from_bytes(x, "big") == public.x
    assert int.from_bytes(y, "big") == public.y


def test_fixtures_exercise_the_padding():
    """P-256 and P-521 fixtures were picked with a coordinate shorter than the curve size."""
    for name in ("ec-p256.pub.pem", "ec-p521.pub.pem"):
        (entry,) = keys_from_file(fixture(name))
        coordinates = [b64url_decode(entry.jwk[c]) for c in ("x", "y")]
        assert any(value[0] == 0 for value in coordinates), name


@pytest.mark.parametrize("name, bits", [("rsa-2048.pub.pem", 2048), ("rsa-4096.pub.pem", 4096)])
def test_rsa_jwk_members(name, bits):
    (entry,) = keys_from_file(fixture(name))
    assert list(entry.jwk) == ["use", "kty", "kid", "alg", "n", "e"]
    assert entry.jwk["alg"] == "RS256"
    assert entry.jwk["e"] == "AQAB"
    modulus = b64url_decode(entry.jwk["n"])
    assert len(modulus) * 8 == bits and modulus[0] != 0
    assert entry.bits == bits and not entry.weak


def test_kid_is_sha256_of_spki_without_padding():
    (entry,) = keys_from_file(fixture("rsa-2048.pub.pem"))
    der = serialization.load_pem_public_key((FIXTURES / "rsa-2048.pub.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).digest()
    assert entry.kid == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert "=" not in entry.kid and len(entry.kid) == 43


def test_private_key_certificate_and_public_key_share_the_kid():
    kids = {
        name: keys_from_file(fixture(name))[0].kid
        for name in ("rsa-2048.key.pem", "rsa-2048.pub.pem", "ec-p384.crt.pem", "ec-p384.pub.pem",
                     "ec-p256.key.pem", "ec-p256.pub.pem", "rsa-4096.pkcs8.key.pem", "rsa-4096.pub.pem")
    }
    assert kids["rsa-2048.key.pem"] == kids["rsa-2048.pub.pem"]
    assert kids["ec-p384.crt.pem"] == kids["ec-p384.pub.pem"]
    assert kids["ec-p256.key.pem"] == kids["ec-p256.pub.pem"]
    assert kids["rsa-4096.pkcs8.key.pem"] == kids["rsa-4096.pub.pem"]


def test_rsa_certificate(tmp_path):
    """A certificate holding an RSA key (walks the certificate's SubjectPublicKeyInfo for its OID)."""
    private = serialization.load_pem_private_key((FIXTURES / "rsa-2048.key.pem").read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arcwi")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(private, hashes.SHA256()))
    path = tmp_path / "rsa.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (entry,) = keys_from_file(str(path))
    assert entry.jwk == json.loads(EXPECTED["rsa-2048.pub.pem"]["kube_apiserver"])["keys"][0]
    assert entry.block_type == "CERTIFICATE"


def test_bundle_reads_every_block_and_skips_non_key_blocks():
    entries = keys_from_file(fixture("bundle.pem"))
    assert [e.block_type for e in entries] == ["PUBLIC KEY", "PUBLIC KEY", "CERTIFICATE", "PUBLIC KEY", "PUBLIC KEY"]
    assert [e.block for e in entries] == [1, 2, 4, 5, 6]  # block 3 is EC PARAMETERS
    assert [e.jwk["alg"] for e in entries] == ["ES512", "RS256", "ES384", "RS256", "RS256"]


def test_duplicates_dropped_first_wins_like_upstream_minus_repeats():
    upstream = json.loads(EXPECTED["bundle.pem (upstream, no dedup)"]["kube_apiserver"])["keys"]
    result = generate([fixture("bundle.pem")])
    first_seen = []
    for jwk in upstream:
        if jwk["kid"] not in [seen["kid"] for seen in first_seen]:
            first_seen.append(jwk)
    assert len(upstream) == 5 and len(first_seen) == 4
    assert result.jwks["keys"] == first_seen
    assert [(d.source, d.block) for d in result.duplicates] == [(fixture("bundle.pem"), 6)]


def test_duplicates_across_files_and_content_keep_the_first_position():
    rsa_pub = read("rsa-2048.pub.pem")
    result = generate([fixture("ec-p256.key.pem"), fixture("rsa-2048.key.pem")],
                      [rsa_pub, read("ec-p256.pub.pem"), read("ec-p384.pub.pem")])
    names = [(e.source.rsplit("/", 1)[-1], e.jwk["alg"]) for e in result.keys]
    assert names == [("ec-p256.key.pem", "ES256"), ("rsa-2048.key.pem", "RS256"),
                     ("public_keys_content[2]", "ES384")]
    assert [d.source for d in result.duplicates] == ["public_keys_content[0]", "public_keys_content[1]"]


def test_build_jwks_keeps_order_of_distinct_keys():
    entries = keys_from_file(fixture("ec-p521.pub.pem")) + keys_from_file(fixture("rsa-4096.pub.pem"))
    assert build_jwks(entries).kids == [entries[0].kid, entries[1].kid]
    assert build_jwks(list(reversed(entries))).kids == [entries[1].kid, entries[0].kid]


def test_content_gives_the_same_jwks_as_files():
    names = ["rsa-2048.pub.pem", "ec-p384.crt.pem", "ec-p521.pub.pem"]
    from_files = generate([fixture(n) for n in names])
    from_content = generate(contents=[read(n) for n in names])
    assert jwks_json(from_files.jwks) == jwks_json(from_content.jwks)


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.pem"
    path.write_bytes((FIXTURES / "bundle.pem").read_bytes().replace(b"\n", b"\r\n"))
    assert generate([str(path)]).kids == EXPECTED["bundle.pem"]["kids"]


def test_rsa_1024_is_accepted_and_flagged_weak():
    (entry,) = keys_from_file(fixture("rsa-1024.pub.pem"))
    assert entry.weak and entry.bits == 1024


# --------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("name, error, needles", [
    ("rsa-2048.pkcs1.pub.pem", KeyFormatError,
     ["PEM block 1 (RSA PUBLIC KEY)", "PKCS#1", "openssl rsa -RSAPublicKey_in -in key.pub -pubout"]),
    ("not-a-key.txt", KeyFormatError, ["no public key found in", "no PEM block", "accepted are", "PUBLIC KEY"]),
    ("csr-only.pem", KeyFormatError, ["no public key found in", "CERTIFICATE REQUEST", "accepted are"]),
    ("ec-p384.encrypted.key.pem", KeyFormatError, ["(ENCRYPTED PRIVATE KEY)", "encrypted private key", "-pubout"]),
    ("rsa-2048.legacy-encrypted.key.pem", KeyFormatError, ["(RSA PRIVATE KEY)", "encrypted private key"]),
    ("ed25519.pub.pem", UnsupportedKeyError, ["Ed25519 key", "RSA (RS256) or ECDSA"]),
    ("ec-secp256k1.pub.pem", UnsupportedKeyError, ["curve secp256k1", "P-256, P-384 or P-521"]),
    ("rsa-512.pub.pem", UnsupportedKeyError, ["512 bits", "under 1024 bits"]),
    ("rsa-pss.pub.pem", UnsupportedKeyError, ["RSA-PSS"]),
])
def test_refused_files_name_the_file_and_say_why(name, error, needles):
    with pytest.raises(error) as caught:
        generate([fixture(name)])
    message = str(caught.value)
    assert fixture(name) in message
    for needle in needles:
        assert needle in message
    assert isinstance(caught.value, ArcwiError)
    assert caught.value.source == fixture(name)
    # upstream did not produce a JWKS for any of these (or, for 512 bits, one Go refuses to use)
    assert EXPECTED[name].get("upstream_error") or name == "rsa-512.pub.pem"


def test_refusal_result_names_the_block():
    with pytest.raises(KeyFormatError) as caught:
        generate([fixture("rsa-2048.pub.pem"), fixture("rsa-2048.pkcs1.pub.pem")])
    assert caught.value.to_result() == {"source": fixture("rsa-2048.pkcs1.pub.pem"), "block": 1}


def test_one_bad_block_fails_the_whole_file(tmp_path):
    path = tmp_path / "mixed.pem"
    path.write_text(read("rsa-2048.pub.pem") + read("ed25519.pub.pem"))
    with pytest.raises(UnsupportedKeyError, match=r"PEM block 2 \(PUBLIC KEY\)"):
        keys_from_file(str(path))


def test_block_that_does_not_parse(tmp_path):
    path = tmp_path / "broken.pem"
    path.write_text("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOC\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFormatError, match=r"PEM block 1 \(PUBLIC KEY\) of .*broken.pem cannot be parsed"):
        keys_from_file(str(path))


@pytest.mark.parametrize("setup, needle", [
    (lambda p: p.write_bytes(b""), "it is empty"),
    (lambda p: p.write_bytes(b"\x30\x82\x01\x22\x30\x0d"), "no PEM block"),
    (lambda p: p.write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ user@host\n"), "ssh-keygen -e -m PKCS8"),
    (lambda p: None, "cannot read key file"),
    (lambda p: p.mkdir(), "is a directory"),
])
def test_unusable_files(tmp_path, setup, needle):
    path = tmp_path / "key.pem"
    setup(path)
    with pytest.raises(KeyFormatError) as caught:
        generate([str(path)])
    assert needle in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text(read("rsa-2048.pub.pem"))
    path.chmod(0)
    with pytest.raises(KeyFormatError, match="cannot read key file .*Permission denied"):
        generate([str(path)])


@pytest.mark.parametrize("name", ["rsa-2048.key.pem", "rsa-4096.pkcs8.key.pem", "ec-p256.key.pem",
                                  "ec-p384.encrypted.key.pem"])
def test_private_keys_refused_in_content(name):
    with pytest.raises(KeyFormatError) as caught:
        generate(contents=[read("rsa-2048.pub.pem"), read(name)])
    message = str(caught.value)
    assert "public_keys_content[1]" in message and "private keys are read only from files" in message
    assert "BEGIN" not in message  # the key itself is never echoed


def test_content_without_key_names_the_item():
    with pytest.raises(KeyFormatError, match=r"no public key found in public_keys_content\[0\].*private keys only "
                                             r"from files"):
        generate(contents=["hello"])


def test_nothing_given():
    with pytest.raises(KeyFormatError, match="no public keys given"):
        generate([], [])


def test_keys_from_pem_accepts_str_and_bytes():
    text = read("ec-p384.pub.pem")
    assert keys_from_pem(text, "a")[0].kid == keys_from_pem(text.encode(), "b")[0].kid


# --------------------------------------------------------------------------------------------------
# Serialisation and the output file


def test_jwks_json_is_canonical_whatever_the_member_order():
    jwks = generate([fixture("bundle.pem")]).jwks
    shuffled = {"keys": [dict(sorted(jwk.items(), reverse=True)) for jwk in jwks["keys"]]}
    assert jwks_json(shuffled) == jwks_json(jwks) == EXPECTED["bundle.pem"]["azwi"].encode()
    assert jwks_json(shuffled, indent=False) == EXPECTED["bundle.pem"]["kube_apiserver"].encode()
    assert not jwks_json(jwks).endswith(b"\n")


def test_key_id_matches_public_key_of_private_key():
    private = serialization.load_pem_private_key((FIXTURES / "rsa-2048.key.pem").read_bytes(), None)
    assert key_id(private.public_key()) == EXPECTED["rsa-2048.key.pem"]["kids"][0]


def test_plan_file(tmp_path):
    path = tmp_path / "jwks.json"
    absent = plan_file(str(path), b"{}")
    assert absent.changed and not absent.exists and absent.before is None
    assert absent.diff() == {"before": "", "after": "{}", "before_header": f"{path} (absent)",
                             "after_header": str(path)}
    path.write_bytes(b"{}")
    assert not plan_file(str(path), b"{}").changed
    different = plan_file(str(path), b"{ }")
    assert different.changed and different.diff()["before"] == "{}"


def test_plan_file_refuses_directory_and_missing_parent(tmp_path):
    with pytest.raises(_jwks.JwksError, match="is a directory"):
        plan_file(str(tmp_path), b"{}")
    with pytest.raises(_jwks.JwksError, match="does not exist"):
        plan_file(str(tmp_path / "missing" / "jwks.json"), b"{}")
