"""PKI of one stand-in cluster, as kubeadm makes it: cluster CA, apiserver serving certificate,
client certificates for the admin, controller-manager and scheduler, and the service-account key
pair (only when the kind config does not mount one)."""
from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _key(bits: int = 2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert(subject, issuer, public_key, signer, *, ca=False, sans=None, usage=None, days=365):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                        critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make(pki: Path, cluster: str, make_sa: bool) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    ca_key = _key()
    ca_name = _name("kubernetes")
    ca = _cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True, days=3650)
    _write(pki / "ca.key", _pem_key(ca_key), 0o600)
    _write(pki / "ca.crt", ca.public_bytes(serialization.Encoding.PEM), 0o644)
    sans = [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                      "kubernetes.default.svc.cluster.local", f"{cluster}-control-plane")]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "10.96.0.1")]
    key = _key()
    cert = _cert(_name("kube-apiserver"), ca_name, key.public_key(), ca_key, sans=sans,
                 usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    _write(pki / "apiserver.key", _pem_key(key), 0o600)
    _write(pki / "apiserver.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    for name, cn, org in (("admin", "kubernetes-admin", "system:masters"),
                          ("controller-manager", "system:kube-controller-manager", None),
                          ("scheduler", "system:kube-scheduler", None)):
        key = _key()
        cert = _cert(_name(cn, org), ca_name, key.public_key(), ca_key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
        _write(pki / f"{name}.key", _pem_key(key), 0o600)
        _write(pki / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    if make_sa:
        sa = _key()
        _write(pki / "sa.key", _pem_key(sa), 0o600)
        _write(pki / "sa.pub", sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
