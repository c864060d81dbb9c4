# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
# Not for use outside this collection.
"""JSON Web Key Sets for a service account issuer, identical to ``azwi jwks`` and kube-apiserver.

What kube-apiserver serves at ``/openid/v1/jwks`` (kubernetes ``pkg/serviceaccount/openidmetadata.go``,
``publicJWKSFromKeys``) and what ``azwi jwks`` prints (azure-workload-identity ``pkg/cmd/jwks``, a copy
of the same code) is, per key:

* ``kid``: base64url without padding of SHA-256 over the DER SubjectPublicKeyInfo of the key
  (``keyIDFromPublicKey``: ``x509.MarshalPKIXPublicKey`` then ``base64.RawURLEncoding``);
* ``use: sig``; ``alg`` RS256 for every RSA key, ES256 / ES384 / ES512 for P-256 / P-384 / P-521
  (``algorithmFromPublicKey``);
* the key material as go-jose's ``JSONWebKey.MarshalJSON`` writes it: ``n`` (modulus, big-endian,
  no leading zero) and ``e`` (exponent, big-endian, leading zeros trimmed) for RSA; ``crv``, ``x``
  and ``y`` for EC, each coordinate left-padded with zeros to the curve size in bytes (32, 48, 66:
  ``newFixedSizeBuffer(..., curveSize(curve))``);
* members in the order of go-jose's ``rawJSONWebKey`` struct: use, kty, kid, crv, alg, (k), x, y,
  n, e (:data:`JWK_MEMBER_ORDER`).

kube-apiserver writes the set with ``json.Marshal`` (compact), ``azwi jwks`` with
``json.MarshalIndent(keySet, "", "  ")`` (two-space indent, no trailing newline);
:func:`jwks_json` produces either byte for byte.

Keys are read the way ``keyutil.ParsePublicKeysPEM`` (k8s.io/client-go) reads them for both tools:
every PEM block of every input, public keys, certificates and private keys alike, non-key blocks such
as ``EC PARAMETERS`` skipped. Where that reader silently skips something that looks like a key, this
one refuses it with a message instead, because a key missing from the JWKS surfaces much later as
tokens Entra rejects:

* a PKCS#1 ``RSA PUBLIC KEY`` block (the message gives the openssl command that converts it);
* encrypted private keys (``ENCRYPTED PRIVATE KEY``, or ``Proc-Type: 4,ENCRYPTED`` headers);
* keys kube-apiserver cannot sign service account tokens with: anything but RSA and ECDSA on
  P-256 / P-384 / P-521 (Ed25519, Ed448, DSA, secp256k1, ...), RSA keys restricted to RSA-PSS, and
  RSA keys under 1024 bits (Go 1.24 and later, and so kube-apiserver 1.33 and later, refuse to sign
  or verify with them). RSA keys of 1024 to 2047 bits are accepted and flagged ``weak``;
* blocks that do not parse, and inputs without any key.

One deliberate difference in what is accepted: keyutil skips EC private keys in PKCS#8 form
(``PRIVATE KEY``; ``x509.ParseECPrivateKey`` only reads SEC 1), so ``azwi jwks`` fails on such a file;
here they are read like every other private key. kube-apiserver's ``--service-account-signing-key-file``
reads them too. And duplicates (the same key given twice, e.g. as private key and as public key)
are dropped by ``kid``, the first one kept, where ``azwi`` would list the key twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import re
import tempfile
import traceback
from dataclasses import dataclass, field

from ansible_collections.arcwi.workload_identity.plugins.module_utils._errors import ArcwiError

try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

HAS_CRYPTOGRAPHY = CRYPTOGRAPHY_IMPORT_ERROR is None

# go-jose rawJSONWebKey field order (the members a public signing key can have).
JWK_MEMBER_ORDER = ("use", "kty", "kid", "crv", "alg", "k", "x", "y", "n", "e")

# curve name (cryptography) -> (JOSE crv, JWS alg); coordinate size comes from the key size
EC_CURVES = {
    "secp256r1": ("P-256", "ES256"),
    "secp384r1": ("P-384", "ES384"),
    "secp521r1": ("P-521", "ES512"),
}
RSA_MIN_BITS = 1024  # Go's crypto/rsa refuses smaller keys (rsa1024min, Go 1.24)
RSA_WEAK_BITS = 2048  # below this a key is flagged weak

PUBLIC_BLOCK_TYPES = ("PUBLIC KEY", "CERTIFICATE")
PRIVATE_BLOCK_TYPES = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
ACCEPTED_FILE = ("PEM blocks PUBLIC KEY (SubjectPublicKeyInfo), CERTIFICATE, and unencrypted "
                 "PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY, holding RSA or ECDSA P-256/P-384/P-521 keys")
ACCEPTED_CONTENT = ("PEM blocks PUBLIC KEY (SubjectPublicKeyInfo) or CERTIFICATE, holding RSA or "
                    "ECDSA P-256/P-384/P-521 keys (private keys only from files)")
PKCS1_HINT = ("convert it to a PUBLIC KEY (SubjectPublicKeyInfo) block with "
              "'openssl rsa -RSAPublicKey_in -in key.pub -pubout -out key.spki.pem'")
ENCRYPTED_HINT = ("give the public key instead ('openssl pkey -in key.pem -pubout -out key.pub') "
                  "or an unencrypted copy of the private key")

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<type>[^\r\n-]+)-----[ \t]*\r?\n(?P<body>.*?)-----END (?P=type)-----", re.DOTALL)

# DER of the algorithm OIDs (without tag and length) that the SPKI / PKCS#8 check looks for
_OID_RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
_OID_RSASSA_PSS = bytes.fromhex("2a864886f70d01010a")  # 1.2.840.113549.1.1.10


class JwksError(ArcwiError):
    """A key input that cannot go into the JWKS. ``source`` names the file or content item,
    ``block`` the 1-based PEM block in it (None when the error is about the whole input)."""

    def __init__(self, message: str, source: str | None = None, block: int | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.block = block

    def to_result(self) -> dict:
        return {"source": self.source, "block": self.block}


class KeyFormatError(JwksError):
    """Unreadable input, no key in it, a block that does not parse, PKCS#1 public or encrypted key."""


class UnsupportedKeyError(JwksError):
    """A key kube-apiserver cannot sign service account tokens with."""


@dataclass(frozen=True)
class PemBlock:
    type: str
    index: int  # 1-based, counting every PEM block of the input
    text: bytes  # the whole block, BEGIN to END line
    headers: dict = field(default_factory=dict)  # RFC 1421 headers such as Proc-Type


@dataclass(frozen=True)
class KeyEntry:
    """One public key found in an input, with its JWK and where it came from."""

    jwk: dict
    source: str
    block: int
    block_type: str
    bits: int

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @property
    def weak(self) -> bool:
        return self.jwk["kty"] == "RSA" and self.bits < RSA_WEAK_BITS

    def describe(self) -> dict:
        return {"kid": self.kid, "kty": self.jwk["kty"], "alg": self.jwk["alg"], "bits": self.bits,
                "source": self.source, "block": self.block, "block_type": self.block_type}


@dataclass(frozen=True)
class JwksResult:
    jwks: dict
    keys: tuple  # KeyEntry, in JWKS order
    duplicates: tuple  # KeyEntry dropped because an earlier key had the same kid

    @property
    def kids(self) -> list:
        return [entry.kid for entry in self.keys]


# --------------------------------------------------------------------------------------------------
# JWK of one public key


def b64url(data: bytes) -> str:
    """base64url without padding (Go's base64.RawURLEncoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    """Big-endian bytes of a non-negative int: minimal (no leading zero byte, as Go's big.Int.Bytes()
    and go-jose's newBufferFromInt) or left-padded to ``length`` (newFixedSizeBuffer)."""
    minimal = (value.bit_length() + 7) // 8
    return value.to_bytes(length if length is not None else minimal, "big")


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public_key) -> str:
    """kube-apiserver's keyIDFromPublicKey: base64url(SHA-256(DER SubjectPublicKeyInfo)), no padding."""
    return b64url(hashlib.sha256(spki_der(public_key)).digest())


def key_size(public_key) -> int:
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.key_size
    return public_key.curve.key_size


def check_supported(public_key) -> None:
    """Raise UnsupportedKeyError (without source) for keys kube-apiserver cannot sign tokens with."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < RSA_MIN_BITS:
            raise UnsupportedKeyError(
                f"RSA key of {public_key.key_size} bits: kube-apiserver (Go 1.24 and later) cannot sign or "
                f"verify with RSA keys under {RSA_MIN_BITS} bits; use 2048 bits or more")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in EC_CURVES:
            raise UnsupportedKeyError(
                f"EC key on curve {public_key.curve.name}: kube-apiserver signs service account tokens only "
                "with P-256, P-384 or P-521 (ES256/ES384/ES512)")
        return
    raise UnsupportedKeyError(
        f"{_key_type_name(public_key)} key: kube-apiserver signs service account tokens only with RSA (RS256) "
        "or ECDSA P-256/P-384/P-521 keys")


def _key_type_name(public_key) -> str:
    for cls, name in ((ed25519.Ed25519PublicKey, "Ed25519"), (ed448.Ed448PublicKey, "Ed448"),
                      (dsa.DSAPublicKey, "DSA"), (x25519.X25519PublicKey, "X25519"), (x448.X448PublicKey, "X448")):
        if isinstance(public_key, cls):
            return name
    return type(public_key).__name__


def jwk_from_public_key(public_key) -> dict:
    """The JWK kube-apiserver publishes for ``public_key``, members in go-jose order."""
    check_supported(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {
            "use": "sig",
            "kty": "RSA",
            "kid": key_id(public_key),
            "alg": "RS256",
            "n": b64url(_int_bytes(numbers.n)),
            "e": b64url(_int_bytes(numbers.e)),
        }
    crv, alg = EC_CURVES[public_key.curve.name]
    size = (public_key.curve.key_size + 7) // 8  # go-jose curveSize: 32, 48, 66
    numbers = public_key.public_numbers()
    return {
        "use": "sig",
        "kty": "EC",
        "kid": key_id(public_key),
        "crv": crv,
        "alg": alg,
        "x": b64url(_int_bytes(numbers.x, size)),
        "y": b64url(_int_bytes(numbers.y, size)),
    }


# --------------------------------------------------------------------------------------------------
# Reading PEM input


def pem_blocks(data: bytes) -> list:
    """Every PEM block of ``data`` in order (text between blocks is ignored, as Go's pem.Decode does)."""
    blocks = []
    for index, match in enumerate(_PEM_BLOCK.finditer(data), start=1):
        block_type = match.group("type").decode("ascii", "replace").strip()
        headers = {}
        body = match.group("body")
        if b":" in body.split(b"\n", 1)[0]:
            for line in body.decode("ascii", "replace").splitlines():
                if ":" not in line:  # the blank line after the headers (or a continuation line)
                    break
                name, value = line.split(":", 1)
                headers[name.strip()] = value.strip()
        blocks.append(PemBlock(type=block_type, index=index, text=match.group(0), headers=headers))
    return blocks


def _der_children(data: bytes, start: int, end: int) -> list:
    """(tag, content_start, content_end) of each DER element in data[start:end]."""
    children = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise ValueError("truncated DER")
        tag = data[pos]
        length = data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or pos + count > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(data[pos:pos + count], "big")
            pos += count
        if pos + length > end:
            raise ValueError("truncated DER")
        children.append((tag, pos, pos + length))
        pos += length
    return children


def _algorithm_oid(der: bytes, block_type: str) -> bytes | None:
    """The key algorithm OID (content bytes) of a SubjectPublicKeyInfo, a PKCS#8 PrivateKeyInfo or a
    certificate's SPKI; None for formats without one (PKCS#1, SEC 1) or DER this cannot walk."""
    try:
        outer = _der_children(der, 0, len(der))
        if len(outer) != 1:
            return None
        top = _der_children(der, outer[0][1], outer[0][2])
        if block_type == "PUBLIC KEY":
            algorithm = top[0]
        elif block_type == "PRIVATE KEY":
            algorithm = top[1]
        elif block_type == "CERTIFICATE":
            tbs = _der_children(der, top[0][1], top[0][2])
            if tbs[0][0] == 0xA0:  # explicit [0] version
                tbs = tbs[1:]
            spki = _der_children(der, tbs[5][1], tbs[5][2])  # serial, signature, issuer, validity, subject
            algorithm = spki[0]
        else:
            return None
        oid_tag, oid_start, oid_end = _der_children(der, algorithm[1], algorithm[2])[0]
        return der[oid_start:oid_end] if oid_tag == 0x06 else None
    except (ValueError, IndexError):
        return None


def _block_der(block: PemBlock) -> bytes:
    lines = block.text.splitlines()[1:-1]
    body = b"".join(line.strip() for line in lines if b":" not in line)
    return base64.b64decode(body)


def _load_block(block: PemBlock, source: str, allow_private: bool):
    """The public key of one key block; raises JwksError subclasses with source and block set."""
    where = f"PEM block {block.index} ({block.type}) of {source}"
    if block.type == "RSA PUBLIC KEY":
        raise KeyFormatError(f"{where} is a PKCS#1 RSA public key, which azwi and kube-apiserver do not read: "
                             f"{PKCS1_HINT}", source, block.index)
    encrypted = block.type == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in block.headers.get("Proc-Type", "")
    if block.type in PRIVATE_BLOCK_TYPES + ("ENCRYPTED PRIVATE KEY",) and not allow_private:
        raise KeyFormatError(f"{where} is a private key: private keys are read only from files (public_keys), "
                             "never from module arguments, which Ansible may log; give the public key here",
                             source, block.index)
    if encrypted:
        raise KeyFormatError(f"{where} is an encrypted private key: {ENCRYPTED_HINT}", source, block.index)
    try:
        if block.type == "PUBLIC KEY":
            public_key = serialization.load_pem_public_key(block.text)
        elif block.type == "CERTIFICATE":
            public_key = x509.load_pem_x509_certificate(block.text).public_key()
        else:
            public_key = serialization.load_pem_private_key(block.text, password=None).public_key()
    except UnsupportedAlgorithm as exc:
        raise UnsupportedKeyError(f"{where}: unsupported key algorithm ({exc}); kube-apiserver signs service "
                                  "account tokens only with RSA or ECDSA P-256/P-384/P-521 keys",
                                  source, block.index) from None
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KeyFormatError(f"{where} cannot be parsed: {exc}", source, block.index) from None
    if isinstance(public_key, rsa.RSAPublicKey):
        try:
            oid = _algorithm_oid(_block_der(block), block.type)
        except (ValueError, binascii.Error):
            oid = None
        if oid is not None and oid != _OID_RSA_ENCRYPTION:
            detail = "restricted to RSA-PSS" if oid == _OID_RSASSA_PSS else "not an rsaEncryption key"
            raise UnsupportedKeyError(f"{where}: RSA key {detail}; kube-apiserver (Go crypto/x509) cannot read it "
                                      "and signs with RS256 (PKCS#1 v1.5)", source, block.index)
    try:
        check_supported(public_key)
    except UnsupportedKeyError as exc:
        raise UnsupportedKeyError(f"{where}: {exc.message}", source, block.index) from None
    return public_key


def keys_from_pem(data, source: str, allow_private: bool = True) -> list:
    """KeyEntry for every key block of ``data`` (bytes or str), in order.

    ``allow_private`` False (content passed as a module argument) refuses private key blocks.
    Raises KeyFormatError when ``data`` holds no key at all.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    entries = []
    skipped = []
    for block in pem_blocks(data):
        if block.type not in PUBLIC_BLOCK_TYPES + PRIVATE_BLOCK_TYPES + ("RSA PUBLIC KEY", "ENCRYPTED PRIVATE KEY"):
            skipped.append(block.type)  # EC PARAMETERS, CERTIFICATE REQUEST, ...: skipped like keyutil does
            continue
        public_key = _load_block(block, source, allow_private)
        entries.append(KeyEntry(jwk=jwk_from_public_key(public_key), source=source, block=block.index,
                                block_type=block.type, bits=key_size(public_key)))
    if not entries:
        accepted = ACCEPTED_FILE if allow_private else ACCEPTED_CONTENT
        if skipped:
            found = "only PEM blocks of type " + ", ".join(sorted(set(skipped)))
        elif not data.strip():
            found = "nothing (it is empty)"
        elif data.lstrip().startswith((b"ssh-", b"ecdsa-sha2-")):
            found = "an OpenSSH public key ('ssh-keygen -e -m PKCS8 -f key.pub' converts it to a PUBLIC KEY block)"
        else:
            found = "no PEM block (DER or another format? 'openssl pkey -pubin -inform DER -in key.der -out key.pem' " \
                    "converts a DER public key)"
        raise KeyFormatError(f"no public key found in {source}: it holds {found}; accepted are {accepted}", source)
    return entries


def keys_from_file(path: str) -> list:
    """KeyEntry for every key of the PEM file ``path``; errors name the file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise KeyFormatError(f"cannot read key file {path}: {exc.strerror or exc}", path) from None
    if stat.S_ISDIR(mode):
        raise KeyFormatError(f"cannot read key file {path}: it is a directory", path)
    if not stat.S_ISREG(mode):
        # a FIFO or device would block or never end; key files are regular files
        raise KeyFormatError(f"cannot read key file {path}: it is not a regular file", path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        raise KeyFormatError(f"cannot read key file {path}: it is a directory", path) from None
    except OSError as exc:
        raise KeyFormatError(f"cannot read key file {path}: {exc.strerror or exc}", path) from None
    return keys_from_pem(data, path, allow_private=True)


# --------------------------------------------------------------------------------------------------
# The key set


def build_jwks(entries) -> JwksResult:
    """The JWKS of ``entries`` in order, later duplicates (same kid) dropped."""
    kept, duplicates, seen = [], [], set()
    for entry in entries:
        if entry.kid in seen:
            duplicates.append(entry)
            continue
        seen.add(entry.kid)
        kept.append(entry)
    return JwksResult(jwks={"keys": [dict(entry.jwk) for entry in kept]}, keys=tuple(kept),
                      duplicates=tuple(duplicates))


def generate(paths=None, contents=None) -> JwksResult:
    """The JWKS of the keys in the files ``paths`` (any key block) then in the PEM strings
    ``contents`` (public keys and certificates only), duplicates dropped."""
    entries = []
    for path in paths or ():
        entries.extend(keys_from_file(path))
    for index, content in enumerate(contents or ()):
        entries.extend(keys_from_pem(content, f"public_keys_content[{index}]", allow_private=False))
    if not entries:
        raise KeyFormatError("no public keys given: set public_keys (files) or public_keys_content (PEM text)")
    return build_jwks(entries)


def canonical_jwk(jwk: dict) -> dict:
    """``jwk`` with its members in go-jose order (members go-jose does not know follow, sorted)."""
    known = [(name, jwk[name]) for name in JWK_MEMBER_ORDER if name in jwk]
    extra = sorted((name, value) for name, value in jwk.items() if name not in JWK_MEMBER_ORDER)
    return dict(known + extra)


def jwks_json(jwks: dict, indent: bool = True) -> bytes:
    """The JWKS as bytes: ``indent`` True is ``azwi jwks`` (json.MarshalIndent, two spaces, no trailing
    newline), False is kube-apiserver's /openid/v1/jwks (json.Marshal). Member order is go-jose's
    whatever the order of ``jwks``, so equal sets give equal bytes."""
    document = {"keys": [canonical_jwk(jwk) for jwk in jwks.get("keys", [])]}
    if indent:
        text = json.dumps(document, indent=2, separators=(",", ": "), ensure_ascii=True)
    else:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


# --------------------------------------------------------------------------------------------------
# The output file and the module's work


@dataclass(frozen=True)
class FilePlan:
    path: str
    exists: bool
    before: bytes | None  # current content, None when the file does not exist
    after: bytes

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> dict:
        """Ansible's text diff of the file content."""
        return {
            "before": "" if self.before is None else self.before.decode("utf-8", "replace"),
            "after": self.after.decode("utf-8"),
            "before_header": self.path if self.exists else f"{self.path} (absent)",
            "after_header": self.path,
        }


def plan_file(path: str, content: bytes) -> FilePlan:
    """Compare ``content`` with the file at ``path`` (read only); raises JwksError when ``path`` is a
    directory, its directory is missing or it cannot be read."""
    if os.path.isdir(path):
        raise JwksError(f"dest {path} is a directory; give the path of the JWKS file", path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise JwksError(f"dest {path}: directory {parent} does not exist", path)
    try:
        with open(path, "rb") as handle:
            before = handle.read()
    except FileNotFoundError:
        return FilePlan(path=path, exists=False, before=None, after=content)
    except OSError as exc:
        raise JwksError(f"cannot read dest {path}: {exc.strerror or exc}", path) from None
    return FilePlan(path=path, exists=True, before=before, after=content)


def write_atomically(module, path: str, content: bytes) -> None:
    """Write ``content`` to a temporary file beside ``path``, then ``module.atomic_move`` it into place."""
    fd, tmp = tempfile.mkstemp(prefix=".jwks_generate-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_file(module, path: str, content: bytes, mode) -> tuple:
    """Bring the file ``path`` to ``content`` and ``mode``; returns (changed, diffs).

    The one side effect of jwks_generate, skipped in check mode (the same path otherwise, so the
    prediction and the run agree). ``diffs`` lists a text diff of the content and, for an existing
    file, a diff of its mode, each only when it changes."""
    plan = plan_file(path, content)
    diffs = [plan.diff()] if plan.changed else []
    if plan.changed and not module.check_mode:
        write_atomically(module, path, content)
    mode_changed = False
    if plan.exists or not module.check_mode:  # a new file in check mode: its mode is part of creating it
        mode_diff = {"before": {}, "after": {}, "before_header": path, "after_header": path}
        mode_changed = module.set_mode_if_different(path, mode, False, diff=mode_diff)
        if mode_changed and plan.exists:
            diffs.append(mode_diff)
    return plan.changed or mode_changed, diffs


def run_module(module) -> dict:
    """jwks_generate's work on an AnsibleModule: the result to exit with; raises JwksError."""
    params = module.params
    result = generate(params["public_keys"], params["public_keys_content"])
    for entry in result.keys:
        if entry.weak:
            module.warn(f"key {entry.kid} (PEM block {entry.block} of {entry.source}) is RSA {entry.bits} bits; "
                        f"use {RSA_WEAK_BITS} bits or more")
    output = {"changed": False, "jwks": result.jwks, "kids": result.kids}
    if params["dest"]:
        output["changed"], diffs = ensure_file(module, params["dest"], jwks_json(result.jwks), params["mode"])
        output["dest"] = params["dest"]
        if module._diff and diffs:  # pylint: disable=protected-access
            output["diff"] = diffs if len(diffs) > 1 else diffs[0]
    return output
