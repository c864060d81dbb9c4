"""Fixtures for tests that drive the sandbox with the real Azure SDKs.

The sandbox is started once per session (`python -m sandbox up`, a no-op when it already runs).
Tests use unique names (the `unique` fixture) instead of resetting state, so they can run against a
sandbox that holds other data, and in any order.
"""
from __future__ import annotations

import importlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sandbox import __main__ as cli  # noqa: E402
from sandbox import config  # noqa: E402


class Sandbox:
    def __init__(self):
        self.env = dict(line.split("=", 1) for line in cli.env_lines())
        self.tenant_id = self.env["AZURE_TENANT_ID"]
        self.subscription_id = self.env["AZURE_SUBSCRIPTION_ID"]
        self.sub_scope = f"/subscriptions/{self.subscription_id}"
        self.arm_url = self.env["ARCWI_ARM_ENDPOINT"]
        self.authority = self.env["AZURE_AUTHORITY_HOST"]
        self.admin_url = self.env["ARCWI_SANDBOX_ADMIN"]
        self.bundle = self.env["REQUESTS_CA_BUNDLE"]
        self.arm_scope = config.ARM_AUDIENCE + ".default"
        self._ssl = ssl.create_default_context(cafile=self.bundle)

    # ---- admin API ----------------------------------------------------------------------------
    def admin(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.admin_url.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def mark(self) -> int:
        return self.admin("GET", "/requests/last")["last"]

    def requests_since(self, mark: int, service: str | None = None) -> list[dict]:
        query = f"?since={mark}" + (f"&service={service}" if service else "")
        return self.admin("GET", "/requests" + query)["requests"]

    def writes_since(self, mark: int, service: str | None = None) -> list[dict]:
        """Writes since ``mark`` to ARM and the blob data plane (``service`` picks one of them)."""
        services = {service} if service else {"arm", "blob"}
        # a POST to checkNameAvailability only reads (Storage Accounts - Check Name Availability)
        return [r for r in self.requests_since(mark, service) if r["service"] in services
                and r["method"] in ("PUT", "PATCH", "POST", "DELETE")
                and not r["path"].endswith("/checkNameAvailability")]

    @contextmanager
    def settings(self, **values):
        before = self.admin("GET", "/settings")
        self.admin("PATCH", "/settings", values)
        try:
            yield
        finally:
            self.admin("PATCH", "/settings", {k: before[k] for k in values})

    @contextmanager
    def faults(self, rules: list[dict], seed: int = 0):
        self.admin("PUT", "/faults", {"rules": rules, "seed": seed})
        try:
            yield
        finally:
            self.admin("DELETE", "/faults")

    def principal(self, roles=None, name="test-principal") -> dict:
        return self.admin("POST", "/principals", {"display_name": name, "roles": roles or []})

    # ---- SDK helpers --------------------------------------------------------------------------
    def credential(self, client_id: str | None = None, secret: str | None = None):
        from azure.identity import ClientSecretCredential
        return ClientSecretCredential(self.tenant_id, client_id or self.env["AZURE_CLIENT_ID"],
                                      secret or self.env["AZURE_CLIENT_SECRET"], authority=self.authority,
                                      disable_instance_discovery=True)

    def token(self, credential=None, scope: str | None = None) -> str:
        return (credential or self.credential()).get_token(scope or self.arm_scope).token

    def raw(self, method: str, path: str, body=None, api_version: str | None = None, token: str | None = None,
            credential=None, headers: dict | None = None):
        """One ARM request without SDK retries: for asserting exact status codes and error bodies."""
        import requests
        url = self.arm_url.rstrip("/") + path
        params = {"api-version": api_version} if api_version else None
        hdrs = {"Authorization": f"Bearer {token or self.token(credential)}"} if token != "" else {}
        hdrs.update(headers or {})
        return requests.request(method, url, params=params, json=body, headers=hdrs, verify=self.bundle, timeout=30)

    def arm_kwargs(self) -> dict:
        return {"base_url": self.arm_url, "credential_scopes": [self.arm_scope]}

    def client(self, cls, credential=None, **kwargs):
        """An azure-mgmt-* client pointed at the sandbox ARM emulator."""
        return cls(credential or self.credential(), self.subscription_id, **self.arm_kwargs(), **kwargs)


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    result = subprocess.run([sys.executable, "-m", "sandbox", "up"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"sandbox did not start:\n{result.stdout}\n{result.stderr}")
    box = Sandbox()
    # the SDKs (requests) read the CA bundle from the environment
    os.environ["REQUESTS_CA_BUNDLE"] = box.bundle
    os.environ["SSL_CERT_FILE"] = box.bundle
    return box


@pytest.fixture
def unique() -> str:
    """A short unique suffix for resource names."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def resource_group(sandbox, unique):
    from azure.mgmt.resource.resources import ResourceManagementClient
    client = sandbox.client(ResourceManagementClient)
    name = f"rg-{unique}"
    client.resource_groups.create_or_update(name, {"location": "westeurope"})
    return name


# ---- an OIDC issuer for workload identity federation tests ------------------------------------------
class OidcIssuer:
    """An OIDC issuer with a fresh RSA key, hosted over HTTPS on 127.0.0.1 by the test issuer server.

    It serves `{issuer}/.well-known/openid-configuration` and `{issuer}/openid/v1/jwks` (the layout of
    kube-apiserver and `azwi jwks`; the kid is base64url(sha256(DER SubjectPublicKeyInfo))) and mints
    assertions as a Kubernetes projected service account token would carry them. Tests can break it:
    `available = False` (404 for both documents), `discovery_overrides`, `jwks_body` (raw JSON text),
    `extra_keys` (more JWKs to publish), `rotate()` (a new key, published alongside the old one).
    """

    AUDIENCE = "api://AzureADTokenExchange"

    def __init__(self, base: str, name: str, trailing_slash: bool = False):
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.name = name
        self.url = f"{base}/{name}" + ("/" if trailing_slash else "")
        self.available = True
        self.discovery_overrides: dict = {}
        self.jwks_body: str | None = None
        self.extra_keys: list[dict] = []
        self.fetches = {"discovery": 0, "jwks": 0}
        self.retired: list = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @staticmethod
    def kid_of(public_key) -> str:
        import base64
        import hashlib

        from cryptography.hazmat.primitives import serialization

        der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()

    @property
    def kid(self) -> str:
        return self.kid_of(self.key.public_key())

    @staticmethod
    def jwk_of(public_key) -> dict:
        import json as _json

        from jwt.algorithms import ECAlgorithm, RSAAlgorithm

        from cryptography.hazmat.primitives.asymmetric import ec

        if isinstance(public_key, ec.EllipticCurvePublicKey):
            jwk = _json.loads(ECAlgorithm.to_jwk(public_key))
            jwk["alg"] = "ES256"
        else:
            jwk = _json.loads(RSAAlgorithm.to_jwk(public_key))
            jwk["alg"] = "RS256"
        jwk.update({"use": "sig", "kid": OidcIssuer.kid_of(public_key)})
        return jwk

    @property
    def jwks_uri(self) -> str:
        return self.url.rstrip("/") + "/openid/v1/jwks"

    def discovery(self) -> dict:
        doc = {"issuer": self.url, "jwks_uri": self.jwks_uri, "response_types_supported": ["id_token"],
               "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}
        doc.update(self.discovery_overrides)
        return doc

    def jwks(self) -> dict:
        keys = [self.jwk_of(k.public_key()) for k in [self.key, *self.retired]]
        return {"keys": keys + list(self.extra_keys)}

    def rotate(self) -> None:
        """A new signing key; the old one stays published (as kube-apiserver does with several key files)."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.retired.append(self.key)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def mint(self, subject: str, audience=AUDIENCE, *, issuer: str | None = None, lifetime: int = 3600,
             not_before: int | None = None, expires: int | None = None, key=None, kid: str | None = None,
             alg: str = "RS256", claims: dict | None = None, drop: tuple = ()) -> str:
        """A signed assertion (by default: this issuer, its current key and kid, valid for an hour)."""
        import time

        import jwt

        now = int(time.time())
        body = {"iss": self.url if issuer is None else issuer, "sub": subject, "aud": audience, "iat": now,
                "nbf": now if not_before is None else not_before,
                "exp": (now + lifetime) if expires is None else expires, "jti": uuid.uuid4().hex}
        body.update(claims or {})
        for name in drop:
            body.pop(name, None)
        signer = key or self.key
        header = {"kid": kid if kid is not None else self.kid_of(signer.public_key())}
        return jwt.encode(body, signer, algorithm=alg, headers=header)


class OidcIssuerServer:
    """Hosts any number of OidcIssuer on one HTTPS port of 127.0.0.1, with the sandbox server certificate."""

    def __init__(self, cert: str, key: str):
        from sandbox.server.http import App, Response, Router, make_ssl_context, serve

        self.issuers: dict[str, OidcIssuer] = {}
        router = Router("oidc-test-issuer")

        def lookup(request) -> OidcIssuer | None:
            issuer = self.issuers.get(request.params["name"])
            return issuer if issuer is not None and issuer.available else None

        @router.route("GET", "/{name}/.well-known/openid-configuration")
        def discovery(request):
            issuer = lookup(request)
            if issuer is None:
                return Response(404, {"error": "not found"})
            issuer.fetches["discovery"] += 1
            return Response(200, issuer.discovery())

        @router.route("GET", "/{name}/openid/v1/jwks")
        def jwks(request):
            issuer = lookup(request)
            if issuer is None:
                return Response(404, {"error": "not found"})
            issuer.fetches["jwks"] += 1
            if issuer.jwks_body is not None:
                return Response(200, issuer.jwks_body, content_type="application/json")
            return Response(200, issuer.jwks(), content_type="application/jwk-set+json")

        self.server = serve(router, App(), "127.0.0.1", 0, make_ssl_context(cert, key))
        self.base = f"https://127.0.0.1:{self.server.server_address[1]}"

    def issuer(self, trailing_slash: bool = False) -> OidcIssuer:
        name = "issuer-" + uuid.uuid4().hex[:10]
        issuer = OidcIssuer(self.base, name, trailing_slash=trailing_slash)
        self.issuers[name] = issuer
        return issuer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def oidc_server(sandbox):
    """One HTTPS server on 127.0.0.1 hosting test OIDC issuers (certificate from the sandbox CA)."""
    from sandbox.pki import PKI

    pki = PKI(config.home())
    server = OidcIssuerServer(str(pki.server_cert), str(pki.server_key))
    yield server
    server.close()


@pytest.fixture
def oidc_issuer(oidc_server) -> OidcIssuer:
    """A fresh OIDC issuer (new RSA key) that publishes its discovery document and JWKS and mints assertions."""
    return oidc_server.issuer()


# ---- the sandbox's Go-built binaries (make sandbox-k8s-build) ---------------------------------------
def binary_paths() -> dict:
    """Binary name -> path, as sandbox/go/build.py reports them ({} when it cannot tell)."""
    out = subprocess.run([sys.executable, str(REPO / "sandbox" / "go" / "build.py"), "paths", "--json"],
                         capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def needs_binaries(*names: str):
    """A skip mark for tests that need the built binaries (skipped, with the reason, when missing)."""
    paths = binary_paths()
    missing = [n for n in names if not os.path.exists(paths.get(n, ""))]
    return pytest.mark.skipif(bool(missing), reason=f"sandbox binaries not built ({', '.join(missing)}): "
                                                    "run make sandbox-k8s-build")


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(entry))
    return out


def _node_container(pid: int) -> bool:
    """A process of a kind stand-in node (sandbox/kind/cluster.py LABEL): a container, not the play's."""
    from sandbox.kind.cluster import label_of
    return label_of(pid) is not None


def kill_play(pid: int) -> list[int]:
    """SIGKILL ansible-playbook PID and every process under it, as a crash or a cancelled job does.

    A process-group kill is not that: ansible's workers call setsid(), so the worker, the module and
    what the module runs (kind create, helm) would live on and finish the task after the "kill". Each
    process is stopped first (SIGSTOP, walking the tree until nothing new appears, so nothing forks
    between the walk and the kill), then all are killed. The kind stand-in's node processes are spared:
    they stand for containers, which the docker daemon owns, not the play."""
    import signal
    stopped: list[int] = []
    while True:
        children = _children()
        todo, tree = [pid], []
        while todo:
            current = todo.pop()
            if current != pid and _node_container(current):
                continue
            tree.append(current)
            todo.extend(children.get(current, []))
        new = [p for p in tree if p not in stopped]
        if not new:
            break
        for p in new:
            try:
                os.kill(p, signal.SIGSTOP)
                stopped.append(p)
            except ProcessLookupError:
                continue
    for p in stopped:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            continue
    return stopped


def collection_module(name: str):
    """A module of the collection under its import path ansible_collections.arcwi.workload_identity.NAME
    (the repository root is the collection root: a symlink in a temporary tree gives it that path)."""
    full = f"ansible_collections.arcwi.workload_identity.{name}"
    try:
        return importlib.import_module(full)
    except ImportError:
        pass
    base = Path(tempfile.mkdtemp(prefix="arcwi-collection-"))
    link = base / "ansible_collections" / "arcwi" / "workload_identity"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(base))
    importlib.invalidate_caches()
    return importlib.import_module(full)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A fresh service-account key pair and its kid (kube-apiserver's keyIDFromPublicKey)."""
    directory = tmp_path_factory.mktemp("keys")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "sa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))
    os.chmod(directory / "sa.key", 0o600)
    (directory / "sa.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"signing": str(directory / "sa.key"), "public": str(directory / "sa.pub"),
            "kid": collection_module("plugins.module_utils._jwks").key_id(key.public_key())}


# ---- real kind (sandbox/tests/realkind.py) ----------------------------------------------------------
@pytest.fixture(scope="module")
def real_kind():
    """DOCKER_HOST of the sandbox's daemon (started if needed), the kind binary and both node images."""
    from sandbox import docker_engine
    from sandbox.nodeimage import build as nodeimage

    from .realkind import VERSIONS, go_path

    host = docker_engine.ensure_engine().host
    if host:
        os.environ["DOCKER_HOST"] = host
    built = subprocess.run([sys.executable, "-m", "sandbox.nodeimage", "build", *VERSIONS], cwd=REPO,
                           capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, f"node images could not be built:\n{built.stdout}\n{built.stderr}"
    kind = go_path("kind", "kind")
    version = subprocess.run([kind, "version"], capture_output=True, text=True, check=True).stdout
    assert version.split()[1] == "v0.33.0", version
    return {"kind": kind, "kubectl": go_path("kubernetes-1.37", "kubectl"), "docker_host": host,
            "patches": {v: nodeimage.patches_for(nodeimage.VERSIONS[v].image) for v in VERSIONS},
            "images": {v: nodeimage.VERSIONS[v].image for v in VERSIONS}}
