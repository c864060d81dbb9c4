"""Sandbox certificate authority and the server certificate for 127.0.0.1.

Generated on first start into the state directory; the CA bundle handed to clients is the sandbox CA
appended to the system CAs, so the same bundle also works for real endpoints.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
import ipaddress

SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _system_bundle() -> bytes:
    try:
        import certifi  # requests' own bundle, if present

        candidates = (certifi.where(),) + SYSTEM_BUNDLES
    except ImportError:
        candidates = SYSTEM_BUNDLES
    for candidate in candidates:
        if os.path.exists(candidate):
            return Path(candidate).read_bytes()
    return b""


class PKI:
    def __init__(self, directory: Path):
        self.dir = directory / "pki"
        self.ca_cert = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.server_cert = self.dir / "server.crt"
        self.server_key = self.dir / "server.key"
        self.bundle = self.dir / "bundle.pem"

    def ensure(self, extra_ips: tuple[str, ...] = ()) -> None:
        """CA and server certificate; the server's is issued again when it lacks one of extra_ips (the
        gateway of the sandbox's Docker network, where pods reach the emulators)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.ca_cert.exists() and self.ca_key.exists()):
            self._make_ca()
        if not (self.server_cert.exists() and self.server_key.exists()) or not self._covers(extra_ips):
            self._make_server(extra_ips)
        bundle = self.ca_cert.read_bytes() + b"\n" + _system_bundle()
        if not self.bundle.exists() or self.bundle.read_bytes() != bundle:
            _write(self.bundle, bundle, 0o644)

    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arcwi sandbox CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(self.ca_key, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
        _write(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        # a new CA invalidates any old server certificate
        for stale in (self.server_cert, self.server_key):
            if stale.exists():
                stale.unlink()

    def _covers(self, ips: tuple[str, ...]) -> bool:
        cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        return set(ips) <= have

    def _make_server(self, extra_ips: tuple[str, ...] = ()) -> None:
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
                *[x509.IPAddress(ipaddress.ip_address(ip)) for ip in extra_ips if ip != "127.0.0.1"],
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(self.server_key, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
        _write(self.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
