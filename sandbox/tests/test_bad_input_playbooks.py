"""Malformed input to the day-two playbooks fails before any write, naming the field: rotate_keys.yml
(its variables, and a rotation record whose phase it does not know) and teardown.yml (the targets it
would delete). Nothing reaches ARM (request log) and the key directory is unchanged.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from .conftest import REPO


def _run(sandbox, playbook: str, variables: dict) -> subprocess.CompletedProcess:
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox"),
                           "-e", json.dumps(variables), str(REPO / "playbooks" / playbook)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


CASES = {
    "rotate-unknown-record-phase": ("rotate_keys.yml", {}, {"phase": "halfway"},
                                    ['phase "halfway" is not one of start, new_key']),
    "rotate-stop-after-unknown": ("rotate_keys.yml", {"rotate_stop_after": "publish"}, None,
                                  ['rotate_stop_after "publish" is not a phase']),
    "rotate-provider-unknown": ("rotate_keys.yml", {"rotate_cluster_provider": "k3s"}, None,
                                ['rotate_cluster_provider "k3s" is invalid: kind or existing']),
    "teardown-namespace": ("teardown.yml", {"workload_identity_namespace": "Demo_NS"}, None,
                           ['teardown_namespace (workload_identity_namespace) "Demo_NS" is invalid']),
    "teardown-storage-account": ("teardown.yml", {"oidc_issuer_storage_account": "st-bad"}, None,
                                 ['teardown_storage_account (oidc_issuer_storage_account) "st-bad" is not a valid']),
    "teardown-cluster-name": ("teardown.yml", {"kind_cluster_name": "Bad_Cluster"}, None,
                              ['teardown_cluster (kind_cluster_name) "Bad_Cluster" is invalid']),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_any_write(sandbox, tmp_path, case):
    playbook, variables, record, fragments = CASES[case]
    keys = tmp_path / "keys"
    keys.mkdir()
    if record is not None:
        (keys / "rotation.json").write_text(json.dumps(record))
    before = sorted((p.name, p.read_bytes()) for p in keys.iterdir())
    suffix = uuid.uuid4().hex[:6]
    base = {"kind_cluster_name": f"bad-{suffix}", "identity_resource_group": f"rg-bad-{suffix}",
            "identity_name": f"id-bad-{suffix}", "oidc_issuer_name": f"bad{suffix}", "oidc_issuer_key_dir": str(keys),
            "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig"), "arc_enabled": False}
    mark = sandbox.mark()
    run = _run(sandbox, playbook, {**base, **variables})
    assert run.returncode != 0, run.stdout[-3000:]
    text = run.stdout + run.stderr
    missing = [f for f in fragments if f not in text]
    assert not missing, f"{case}: {missing} not in:\n{text[-3000:]}"
    assert sandbox.writes_since(mark) == []
    assert sorted((p.name, p.read_bytes()) for p in keys.iterdir()) == before
