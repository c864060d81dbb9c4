#!/usr/bin/env python3
"""A fleet against the sandbox: site.yml's Azure half (bench/fleet.yml) for N simulated clusters.

Prints figures; asserts nothing (sandbox/tests/test_fleet.py asserts on the same run). With the
sandbox up (`make bench` starts it):
    .venv/bin/python bench/fleet.py [--clusters 10 50] [--forks 10] [--shards 0]

Each cluster is one inventory host with its own issuer (signing key, storage account, documents) and
one ServiceAccount; all share one identity (or identity_shards identities), so their federated
credentials are written to one identity from several forks at once. For the first run and the no-op
re-run it prints: wall time, ARM requests (reads, writes), 429 and 409 answers seen at the wire (from
the sandbox's request log, which counts every client: run it alone) and surfaced to the user (failed tasks), changed count and FICs per identity.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.tests.conftest import Sandbox  # noqa: E402

WRITES = ("PUT", "PATCH", "POST", "DELETE")
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def inventory(path: Path, clusters: int, tag: str, shards: int, key_root: Path) -> Path:
    """One host per cluster, each with its own issuer; the identity is shared (or sharded)."""
    hosts = {f"cluster-{i:02d}": {"oidc_issuer_name": f"fleet-{tag}-{i:02d}"} for i in range(clusters)}
    group_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "arcwi_azure_defaults": {
            "cloud_metadata_url": "{{ lookup('ansible.builtin.env', 'ARCWI_CLOUD_METADATA_URL') }}",
            "subscription_id": "{{ lookup('ansible.builtin.env', 'AZURE_SUBSCRIPTION_ID') }}",
            "tenant": "{{ lookup('ansible.builtin.env', 'AZURE_TENANT_ID') }}",
            "client_id": "{{ lookup('ansible.builtin.env', 'AZURE_CLIENT_ID') }}",
            "secret": "{{ lookup('ansible.builtin.env', 'AZURE_CLIENT_SECRET') }}",
        },
        "identity_resource_group": f"rg-fleet-{tag}",
        "identity_location": "westeurope",
        "identity_name": f"id-fleet-{tag}",
        "identity_shards": shards,
        "oidc_issuer_resource_group": f"rg-fleet-{tag}",
        "oidc_issuer_location": "westeurope",
        "oidc_issuer_key_dir": str(key_root) + "/{{ oidc_issuer_name }}",
        # clusters that share an identity need one FIC name each
        "workload_identity_fic_name": "{{ inventory_hostname }}-demo-workload",
    }
    path.write_text(json.dumps({"all": {"children": {"arcwi": {"hosts": hosts, "vars": group_vars}}}}, indent=1))
    return path


def run(sandbox: Sandbox, inv: Path, forks: int, extra: list[str] | None = None,
        playbook: Path = REPO / "bench" / "fleet.yml") -> dict:
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    binary = Path(sys.executable).with_name("ansible-playbook")
    mark = sandbox.mark()
    started = time.monotonic()
    proc = subprocess.run([str(binary), "-i", str(inv), "--forks", str(forks), str(playbook),
                           *(extra or [])], cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    rows = sandbox.requests_since(mark, "arm")
    recap = {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
             for m in RECAP.finditer(proc.stdout)}
    failed_lines = [line for line in proc.stdout.splitlines() if line.startswith(("fatal:", "failed:"))]
    return {
        "rc": proc.returncode,
        "wall": wall,
        "reads": sum(1 for r in rows if r["method"] not in WRITES),
        "writes": sum(1 for r in rows if r["method"] in WRITES),
        "fic_writes": sum(1 for r in rows if r["method"] == "PUT" and "/federatedIdentityCredentials/" in r["path"]),
        "wire_429": sum(1 for r in rows if r["status"] == 429),
        "wire_409": sum(1 for r in rows if r["status"] == 409),
        "surfaced_429": sum(1 for line in failed_lines if "429" in line or "TooManyRequests" in line),
        "surfaced_409": sum(1 for line in failed_lines if "409" in line or "Conflict" in line),
        "failed_hosts": sorted(h for h, s in recap.items() if s["failed"] or s["unreachable"]),
        "changed": sum(s["changed"] for s in recap.values()),
        "hosts": len(recap),
        "stdout": proc.stdout,
        "stderr": proc.stderr,
    }


def fics_per_identity(sandbox: Sandbox, tag: str) -> dict[str, int]:
    from azure.mgmt.msi import ManagedServiceIdentityClient

    msi = sandbox.client(ManagedServiceIdentityClient)
    group = f"rg-fleet-{tag}"
    return {i.name: len(list(msi.federated_identity_credentials.list(group, i.name)))
            for i in msi.user_assigned_identities.list_by_resource_group(group)}


def report(label: str, figures: dict) -> None:
    print(f"{label:28} {figures['wall']:7.1f} s   ARM {figures['reads']:4d} reads {figures['writes']:4d} writes "
          f"({figures['fic_writes']} FIC PUTs)   429 wire {figures['wire_429']:3d} surfaced {figures['surfaced_429']}   "
          f"409 wire {figures['wire_409']:3d} surfaced {figures['surfaced_409']}   changed={figures['changed']} "
          f"failed hosts {len(figures['failed_hosts'])}/{figures['hosts']}")


def fleet(sandbox: Sandbox, clusters: int, forks: int, shards: int, workdir: Path) -> tuple[dict, dict, dict]:
    tag = uuid.uuid4().hex[:6]
    inv = inventory(workdir / f"fleet-{clusters}.json", clusters, tag, shards, workdir / "keys")
    first = run(sandbox, inv, forks)
    second = run(sandbox, inv, forks)
    return first, second, fics_per_identity(sandbox, tag)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--shards", type=int, default=0,
                        help="identity_shards (0: one identity; more than 20 clusters need 2 or more)")
    args = parser.parse_args()
    sandbox = Sandbox()
    os.environ.update(sandbox.env)  # the SDK clients here trust the sandbox's CA, as the modules do
    with tempfile.TemporaryDirectory(prefix="arcwi-fleet-") as tmp:
        for n in args.clusters:
            shards = args.shards or (0 if n <= 20 else -(-n // 10))
            first, second, fics = fleet(sandbox, n, args.forks, shards, Path(tmp))
            print(f"fleet of {n} clusters, forks={args.forks}, identity_shards={shards}")
            report("  first converge", first)
            report("  no-op re-run", second)
            print(f"  FICs per identity: {', '.join(f'{k}={v}' for k, v in sorted(fics.items()))}")
            for figures in (first, second):
                if figures["rc"]:
                    print(figures["stdout"][-4000:], figures["stderr"][-2000:], sep="\n", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
