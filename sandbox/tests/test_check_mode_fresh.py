"""site.yml --check on a fresh machine: nothing is written (no ARM or blob write, no file), the run ends
without failing, and it predicts each change the first real run makes up to the issuer's storage
account: the resource group, the identity, its role assignment, the key directory, the signing key and
the storage account. There it stops, saying why: the issuer URL every later step needs is the one Azure
gives the storage account once it exists (AZURE_FACTS.md, the static website endpoint's zone).
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

from .conftest import REPO

PREDICTED = [
    "arcwi.workload_identity.identity : Resource group rg-{tag}",
    "arcwi.workload_identity.identity : Managed identity id-{tag}",
    "arcwi.workload_identity.identity : Check mode predicts the role assignments of the new identity",
    "arcwi.workload_identity.oidc_issuer : Key directory",
    "arcwi.workload_identity.oidc_issuer : Check mode predicts the signing key {keys}/sa.key",
    "arcwi.workload_identity.oidc_issuer : Storage that serves the documents",
]


def test_check_mode_on_a_fresh_machine_predicts_and_writes_nothing(sandbox, tmp_path):
    tag = "ck" + uuid.uuid4().hex[:6]
    keys = tmp_path / "keys"
    variables = {"kind_cluster_name": tag, "identity_resource_group": f"rg-{tag}", "identity_name": f"id-{tag}",
                 "oidc_issuer_name": tag, "oidc_issuer_key_dir": str(keys),
                 "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig")}
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    mark = sandbox.mark()
    run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox"),
                          "-e", json.dumps(variables), str(REPO / "playbooks" / "site.yml"), "--check"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    out = json.loads(run.stdout)
    tasks = [(task["task"]["name"], task["hosts"].get("localhost", {})) for task in out["plays"][0]["tasks"]]
    changed = [name for name, result in tasks if result.get("changed")]
    assert changed == [p.format(tag=tag, keys=keys) for p in PREDICTED], changed
    assert out["stats"]["localhost"]["failures"] == 0
    # it stops at the kind_cluster role, saying why, and goes no further
    stop = [result for name, result in tasks if name.endswith("Check mode cannot predict past an issuer URL that "
                                                                  "does not exist yet")]
    assert stop and f"Check mode stops before kind cluster {tag}" in stop[0]["msg"]
    assert not [name for name, _ in tasks if name.startswith("arcwi.workload_identity.workload_identity")]
    # nothing written: no ARM or blob write, no key, no kubeconfig, no cluster
    assert sandbox.writes_since(mark) == []
    assert not keys.exists() and not (tmp_path / "kubeconfig").exists()
    clusters = subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "get", "clusters"], capture_output=True,
                              text=True, env=env, check=True).stdout.split()
    assert tag not in clusters
