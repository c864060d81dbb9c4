"""No secret anywhere: site.yml (with Azure Arc), verify.yml, rotate_keys.yml and teardown.yml run at
-vvv, and all their output, the sandbox's logs, every blob of the issuer's storage and the module
results (printed at -vvv) are searched for:
- the service-account signing keys, old and new (PEM bodies, and any PEM private-key header);
- the Arc agents' private key (read back from the Secret the fixture agent chart keeps it in);
- the operator's client secret and the issuer storage account's keys (listKeys);
- bearer tokens: any JWT (service-account tokens, Entra access tokens, client assertions).
The key files are 0600 afterwards.
"""
from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import uuid
from pathlib import Path

from azure.mgmt.storage import StorageManagementClient
from azure.storage.blob import BlobServiceClient

from .conftest import REPO, binary_paths, needs_binaries

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _playbook(sandbox, name: str, variables: dict) -> str:
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-vvv", "-i",
                          str(REPO / "inventories" / "sandbox"), "-e", json.dumps(variables),
                          str(REPO / "playbooks" / name)], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=1500)
    assert run.returncode == 0, f"{name}: {run.stdout[-5000:]}{run.stderr[-2000:]}"
    return run.stdout + run.stderr


def _secret_lines(pem: str) -> set[str]:
    """Distinctive pieces of a PEM private key: its full 64-character base64 lines, except those that
    encode only the public modulus. Those are public: the JWKS's `n` and the Arc agents' public key
    certificate carry the same bytes, in the same 3-byte alignment when the modulus starts at a DER
    offset divisible by 3 (as in an RSA PKCS#1 key), so a line without '+' or '/' appears verbatim."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    n = key.public_key().public_numbers().n
    modulus = n.to_bytes((n.bit_length() + 7) // 8, "big")
    public = [enc(modulus[i:]).decode() for i in range(3) for enc in (base64.b64encode, base64.urlsafe_b64encode)]
    lines = [line for line in pem.splitlines()[1:-2] if len(line) == 64]
    return {line for line in lines
            if not any(line in text or line.replace("+", "-").replace("/", "_") in text for text in public)}


def _pem_bodies(path: Path) -> set[str]:
    return _secret_lines(path.read_text())


@needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "helm", "azure-wi-webhook")
def test_no_secret_in_any_output_log_blob_or_result_at_vvv(sandbox, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    keys = tmp_path / "keys"
    variables = {"kind_cluster_name": f"sec-{suffix}", "identity_resource_group": f"rg-sec-{suffix}",
                 "identity_name": f"id-sec-{suffix}", "oidc_issuer_name": f"sec{suffix}",
                 "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig"), "oidc_issuer_key_dir": str(keys)}
    outputs: dict[str, str] = {}
    secrets: dict[str, set[str]] = {"sa signing key": set(), "arc agent key": set(), "storage key": set(),
                                    "client secret": {sandbox.env["AZURE_CLIENT_SECRET"]}}
    logs = Path(sandbox.env.get("ARCWI_SANDBOX_HOME", REPO / ".state" / "sandbox")) / "logs"
    log_sizes = {p: p.stat().st_size for p in logs.glob("*.log")}
    blobs: dict[str, bytes] = {}
    try:
        outputs["site"] = _playbook(sandbox, "site.yml", variables)
        secrets["sa signing key"] |= _pem_bodies(keys / "sa.key")
        kubectl = [binary_paths()["kubectl"], "--kubeconfig", variables["kind_cluster_kubeconfig"], "--context",
                   f"kind-sec-{suffix}"]
        secret = json.loads(subprocess.run(kubectl + ["-n", "azure-arc", "get", "secret", "-o", "json"], check=True,
                                           capture_output=True, text=True, timeout=60).stdout)
        for item in secret["items"]:
            for value in (item.get("data") or {}).values():
                decoded = base64.b64decode(value).decode(errors="replace")
                if "PRIVATE KEY" in decoded:
                    secrets["arc agent key"] |= _secret_lines(decoded.strip() + "\n")
        assert secrets["arc agent key"], "the Arc agents' key was not found in the cluster"
        storage = sandbox.client(StorageManagementClient)
        accounts = [a for a in storage.storage_accounts.list_by_resource_group(f"rg-sec-{suffix}")]
        for account in accounts:
            listed = storage.storage_accounts.list_keys(f"rg-sec-{suffix}", account.name)
            values = [k["value"] for k in listed["keys"]]
            secrets["storage key"] |= set(values)
            service = BlobServiceClient(account.primary_endpoints.blob,
                                        credential={"account_name": account.name, "account_key": values[0]})
            for container in service.list_containers():
                for blob in service.get_container_client(container.name).list_blobs():
                    blobs[f"{account.name}/{container.name}/{blob.name}"] = (
                        service.get_blob_client(container.name, blob.name).download_blob().readall())
        assert blobs, "no blob of the issuer was read"

        outputs["verify"] = _playbook(sandbox, "verify.yml", variables)
        outputs["rotate"] = _playbook(sandbox, "rotate_keys.yml", dict(variables, rotate_max_token_lifetime=5))
        for name in ("sa.key", "sa-next.key", "sa-old.key"):
            if (keys / name).exists():
                secrets["sa signing key"] |= _pem_bodies(keys / name)
        for path in keys.glob("*.key"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} is {oct(path.stat().st_mode)}"
    finally:
        outputs["teardown"] = _playbook(sandbox, "teardown.yml", variables)

    sources = dict(outputs)
    for path, size in {p: log_sizes.get(p, 0) for p in logs.glob("*.log")}.items():
        with open(path, "rb") as stream:
            stream.seek(size)
            sources[f"log {path.name}"] = stream.read().decode(errors="replace")
    sources.update({f"blob {name}": data.decode(errors="replace") for name, data in blobs.items()})
    assert all(secrets.values()), {k: len(v) for k, v in secrets.items()}
    found = []
    for where, text in sources.items():
        flat = text.replace("\\n", "\n")
        if PEM_PRIVATE.search(flat):
            found.append(f"{where}: a PEM private key header")
        if JWT.search(flat):
            found.append(f"{where}: a JWT {JWT.search(flat).group(0)[:24]}...")
        for kind, values in secrets.items():
            if any(value in flat for value in values):
                found.append(f"{where}: the {kind}")
    assert found == []
