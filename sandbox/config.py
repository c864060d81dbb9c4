"""Sandbox configuration: where state lives, which ports, which identities.

Everything is derived from environment variables with defaults, so tests and users can move the
sandbox (ports, state directory) without editing files.
"""
from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DIR = REPO_ROOT / "sandbox"

# name -> (environment variable, default port)
PORTS = {
    "arm": ("ARCWI_SANDBOX_ARM_PORT", 44301),
    "entra": ("ARCWI_SANDBOX_ENTRA_PORT", 44302),
    "admin": ("ARCWI_SANDBOX_ADMIN_PORT", 44303),
    "web": ("ARCWI_SANDBOX_WEB_PORT", 44304),
    # the Azure Arc data plane (GetLatestHelmPackagePath) and the OCI registry holding the agent chart
    "arcdp": ("ARCWI_SANDBOX_ARCDP_PORT", 44305),
    # the blob endpoint clients use: the sandbox's proxy, which passes the fault injector and the request
    # log, in front of Azurite
    "blob": ("ARCWI_SANDBOX_BLOB_PORT", 44310),
    # Azurite itself, reached only by the proxy and the emulators (default: the blob port + 1)
    "azurite": ("ARCWI_SANDBOX_AZURITE_PORT", None),
}

HOST = "127.0.0.1"
# The audience ARM tokens carry in the sandbox. Deliberately not the public cloud's value, so that
# code which hard-codes https://management.azure.com/ instead of reading the cloud metadata fails.
ARM_AUDIENCE = "https://management.sandbox.arcwi.invalid/"
STORAGE_AUDIENCE = "https://storage.azure.com/"
DEFAULT_LOCATION = "westeurope"


def home() -> Path:
    return Path(os.environ.get("ARCWI_SANDBOX_HOME", REPO_ROOT / ".state" / "sandbox")).resolve()


def port(name: str) -> int:
    env, default = PORTS[name]
    value = os.environ.get(env)
    if value is None:
        return default if default is not None else port("blob") + 1
    try:
        number = int(value)
    except ValueError as exc:
        raise SystemExit(f"{env} must be a port number, got {value!r}") from exc
    if not 0 < number < 65536:
        raise SystemExit(f"{env} must be between 1 and 65535, got {number}")
    return number


def url(name: str, path: str = "/") -> str:
    return f"https://{HOST}:{port(name)}{path}"


@dataclass
class Identity:
    """The fixed identities of one sandbox: tenant, subscription and the operator principal."""

    tenant_id: str
    subscription_id: str
    operator_client_id: str
    operator_object_id: str
    operator_secret: str
    extra: dict = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, directory: Path) -> "Identity":
        path = directory / "identity.json"
        if path.exists():
            return cls(**json.loads(path.read_text()))
        directory.mkdir(parents=True, exist_ok=True)
        ident = cls(
            tenant_id=str(uuid.uuid4()),
            subscription_id=str(uuid.uuid4()),
            operator_client_id=str(uuid.uuid4()),
            operator_object_id=str(uuid.uuid4()),
            # Same shape as an Entra client secret: 40 characters, with a '~' at position 4.
            operator_secret=secrets.token_urlsafe(27)[:3] + "8Q~" + secrets.token_urlsafe(30)[:34],
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ident.__dict__, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return ident
