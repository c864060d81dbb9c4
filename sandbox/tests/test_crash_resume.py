"""Crash and resume: ansible-playbook is killed with SIGKILL (its whole process group: forks and module
processes too) at 10 points of site.yml's Azure half, chosen by ARM request count from a fixed seed
(the sandbox holds the chosen request with a latency fault and the kill lands while it waits), then
run again. Each time the re-run converges, the signing key is the one the killed run made (never
regenerated), and nothing is duplicated or left over: one identity, one role assignment, one FIC, one
storage account, no stray file next to the keys. Then the sandbox itself restarts in the middle of a
run: the run either retries through it or fails with a clear message (no traceback), and the re-run
converges.

The Azure half is bench/fleet.yml with one host (identity, oidc_issuer, the FIC plan and write), the
part of site.yml whose state lives in Azure and in the key directory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
import uuid

from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.storage import StorageManagementClient

from .conftest import REPO

_spec = importlib.util.spec_from_file_location("bench_fleet", REPO / "bench" / "fleet.py")
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)

SEED = 1128
POINTS = 10
KEY_FILES = {"sa.key", "sa.pub", "jwks.json"}


def _start(sandbox, inventory) -> subprocess.Popen:
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory),
                             str(REPO / "bench" / "fleet.yml")], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _kill_at(sandbox, inventory, point: int) -> bool:
    """Run, and SIGKILL the run's process group while its `point`-th ARM request is in flight: the
    sandbox holds that request (a latency fault after point-1 requests) and the kill lands while it
    waits. False when the run finished with fewer requests."""
    with sandbox.faults([{"service": "arm", "kind": "latency", "latency_ms": 15000, "rate": 1, "skip": point - 1,
                          "count": 1}]):
        proc = _start(sandbox, inventory)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if sandbox.admin("GET", "/faults")["rules"][0]["hits"] >= 1:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
        return proc.returncode == -signal.SIGKILL


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _state(sandbox, tag: str) -> dict:
    group, name = f"rg-fleet-{tag}", f"id-fleet-{tag}"
    msi = sandbox.client(ManagedServiceIdentityClient)
    identities = list(msi.user_assigned_identities.list_by_resource_group(group))
    principal = identities[0].principal_id if identities else None
    assignments = list(sandbox.client(AuthorizationManagementClient).role_assignments.list_for_subscription(
        filter=f"principalId eq '{principal}'")) if principal else []
    return {"identities": len(identities),
            "fics": len(list(msi.federated_identity_credentials.list(group, name))) if identities else 0,
            "assignments": len(assignments),
            "accounts": len(list(sandbox.client(StorageManagementClient).storage_accounts.list_by_resource_group(group)))}


def test_killed_at_ten_points_each_rerun_converges_with_the_same_key(sandbox, tmp_path):
    rng = random.Random(SEED)
    points = sorted(rng.sample(range(1, 30), POINTS))  # a fresh run makes 30 ARM requests
    report = []
    for point in points:
        tag = uuid.uuid4().hex[:6]
        keys = tmp_path / tag
        inventory = fleet.inventory(tmp_path / f"{tag}.json", 1, tag, 0, keys)
        key_file = keys / f"fleet-{tag}-00" / "sa.key"
        killed = _kill_at(sandbox, inventory, point)
        key_before = _digest(key_file)

        rerun = fleet.run(sandbox, inventory, 1)
        assert rerun["rc"] == 0, f"kill at {point}: {rerun['stdout'][-4000:]}"
        if key_before is not None:
            assert _digest(key_file) == key_before, f"kill at {point}: the signing key was regenerated"
        state = _state(sandbox, tag)
        assert state == {"identities": 1, "fics": 1, "assignments": 1, "accounts": 1}, (point, state)
        assert {p.name for p in key_file.parent.iterdir()} == KEY_FILES, (point, sorted(os.listdir(key_file.parent)))
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        report.append((point, killed, key_before is not None))
    # every run was killed at its point, some before and some after the key existed
    assert all(killed for _, killed, _ in report), report
    assert {had_key for _, _, had_key in report} == {False, True}, report


def test_a_sandbox_restart_mid_run_fails_clearly_or_retries_and_the_rerun_converges(sandbox, tmp_path):
    tag = uuid.uuid4().hex[:6]
    inventory = fleet.inventory(tmp_path / "fleet.json", 1, tag, 0, tmp_path / "keys")
    mark = sandbox.mark()
    proc = _start(sandbox, inventory)
    deadline = time.monotonic() + 300
    while len(sandbox.requests_since(mark, "arm")) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    cli = [sys.executable, "-m", "sandbox"]
    assert subprocess.run(cli + ["down"], cwd=REPO, capture_output=True, timeout=120).returncode == 0
    assert subprocess.run(cli + ["up"], cwd=REPO, capture_output=True, timeout=120).returncode == 0
    output, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        assert "Traceback" not in output and "MODULE FAILURE" not in output, output[-4000:]
        assert "fatal:" in output
    rerun = fleet.run(sandbox, inventory, 1)
    assert rerun["rc"] == 0, rerun["stdout"][-4000:]
    assert _state(sandbox, tag) == {"identities": 1, "fics": 1, "assignments": 1, "accounts": 1}
