"""federated_credential serialises writes to one identity: several hosts of one play (forks) writing
FICs under the same identity at once never surface Azure's concurrency 409, not even on the wire.

Source of the 409: learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations
(concurrent FIC writes under one identity are refused); the emulator holds each FIC write for
`fic_write_seconds`, so unserialised writers would collide.
"""
from __future__ import annotations

import os
import subprocess
import textwrap

from azure.mgmt.msi import ManagedServiceIdentityClient

from .conftest import REPO

HOSTS = 6


def test_parallel_hosts_writing_one_identity_never_conflict(sandbox, resource_group, unique, tmp_path):
    with sandbox.settings(throttle_enabled=False):
        msi = sandbox.client(ManagedServiceIdentityClient)
        msi.user_assigned_identities.create_or_update(resource_group, f"id-par-{unique}", {"location": "westeurope"})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n" + "".join(
        f"    cluster{i}:\n      ansible_connection: local\n      ansible_python_interpreter: "
        "\"{{ ansible_playbook_python }}\"\n" for i in range(HOSTS)))
    playbook = tmp_path / "fics.yml"
    playbook.write_text(textwrap.dedent(f"""
        - hosts: all
          gather_facts: false
          tasks:
            - name: One FIC per cluster, all under one identity
              arcwi.workload_identity.federated_credential:
                cloud_metadata_url: "{{{{ lookup('env', 'ARCWI_CLOUD_METADATA_URL') }}}}"
                resource_group: {resource_group}
                identity: id-par-{unique}
                name: "fic-{{{{ inventory_hostname }}}}"
                issuer: https://oidc.example.invalid/{{{{ inventory_hostname }}}}/
                subject: system:serviceaccount:demo:workload
        """))
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    mark = sandbox.mark()
    with sandbox.settings(fic_write_seconds=0.5, throttle_enabled=False):
        run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory),
                              "--forks", str(HOSTS), str(playbook)], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"changed={1}" in run.stdout
    puts = [r for r in sandbox.requests_since(mark, "arm") if r["method"] == "PUT" and f"id-par-{unique}" in r["path"]]
    assert len(puts) == HOSTS, [(r["status"], r["path"]) for r in puts]
    assert [r["status"] for r in puts if r["status"] == 409] == [], "a concurrent write reached Azure"
    names = sorted(f.name for f in msi.federated_identity_credentials.list(resource_group, f"id-par-{unique}"))
    assert names == sorted(f"fic-cluster{i}" for i in range(HOSTS))
