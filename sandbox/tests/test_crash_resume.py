"""Crash and resume: ansible-playbook is killed with SIGKILL (it and every process under it: the
workers, which setsid() out of its process group, the modules and the commands they run; see
conftest.kill_play) at 10 points of site.yml (with Azure Arc), chosen by ARM request
count from a fixed seed (the sandbox holds the chosen request with a latency fault and the kill lands
while it waits), then run again. Each time the re-run converges, the signing key is the one the
killed run made (never regenerated), and nothing is duplicated or left over: one identity, one role
assignment, one FIC, one storage account, one connected cluster, one kind cluster, both Helm releases
deployed (none left pending), no stray file next to the keys. After the kills that land once the
cluster exists (read from kind after each kill; the test asserts kills land both before and after
it exists), a third run changes nothing.

A kill cannot land inside kind create or a helm run this way (no ARM request is in flight then);
a release left pending by a killed helm is tested on its own in test_workload_identity_role.py.

Then the sandbox itself restarts in the middle of a run (bench/fleet.yml, site.yml's Azure half): the
run either retries through it or fails with a clear message (no traceback), and the re-run converges.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.hybridkubernetes import ConnectedKubernetesClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.storage import StorageManagementClient

from .conftest import REPO, binary_paths, kill_play, needs_binaries

_spec = importlib.util.spec_from_file_location("bench_fleet", REPO / "bench" / "fleet.py")
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)

SEED = 1128
POINTS = 10
KEY_FILES = {"sa.key", "sa.pub", "jwks.json"}


def _env(sandbox) -> dict:
    return dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def _start(sandbox, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), *args], cwd=REPO, env=_env(sandbox),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _run(sandbox, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), *args], cwd=REPO, env=_env(sandbox),
                          capture_output=True, text=True, timeout=1800)


def _fleet_args(inventory) -> list[str]:
    return ["-i", str(inventory), str(REPO / "bench" / "fleet.yml")]


def _kill_at(sandbox, args: list[str], point: int) -> bool:
    """Run, and SIGKILL the run (conftest.kill_play: ansible-playbook and every process under it) while its `point`-th ARM request is in flight: the
    sandbox holds that request (a latency fault after point-1 requests) and the kill lands while it
    waits. False when the run finished with fewer requests.

    The held request is still carried out after the kill (the request reached ARM; ARM finishes what it
    received). The re-run starts once it has been, as after a crash: a re-run racing a PUT that the
    sandbox lands seconds later would test the sandbox's hold, not the playbook (a connectedClusters PUT
    landing after the re-run's own would swap the agents' key back)."""
    mark = sandbox.mark()
    with sandbox.faults([{"service": "arm", "kind": "latency", "latency_ms": 4000, "rate": 1, "skip": point - 1,
                          "count": 1}]):
        proc = _start(sandbox, args)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if sandbox.admin("GET", "/faults")["rules"][0]["hits"] >= 1:
                kill_play(proc.pid)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
        killed = proc.returncode == -signal.SIGKILL
        deadline = time.monotonic() + 60
        while killed and len(sandbox.requests_since(mark, "arm")) < point and time.monotonic() < deadline:
            time.sleep(0.1)
        return killed


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _state(sandbox, tag: str) -> dict:
    return _state_of(sandbox, f"rg-fleet-{tag}", f"id-fleet-{tag}")


def _state_of(sandbox, group: str, name: str) -> dict:
    msi = sandbox.client(ManagedServiceIdentityClient)
    identities = list(msi.user_assigned_identities.list_by_resource_group(group))
    principal = identities[0].principal_id if identities else None
    assignments = list(sandbox.client(AuthorizationManagementClient).role_assignments.list_for_subscription(
        filter=f"principalId eq '{principal}'")) if principal else []
    return {"identities": len(identities),
            "fics": len(list(msi.federated_identity_credentials.list(group, name))) if identities else 0,
            "assignments": len(assignments),
            "accounts": len(list(sandbox.client(StorageManagementClient).storage_accounts.list_by_resource_group(group)))}


SITE_REQUESTS = 38  # a fresh site.yml with Arc makes about 41 ARM requests (LRO polls vary by a few)


def _site_vars(tmp_path, tag: str) -> dict:
    return {"kind_cluster_name": f"crash-{tag}", "identity_resource_group": f"rg-crash-{tag}",
            "identity_name": f"id-crash-{tag}", "oidc_issuer_name": f"crash{tag}",
            "oidc_issuer_key_dir": str(tmp_path / tag / "keys"),
            "kind_cluster_kubeconfig": str(tmp_path / tag / "kubeconfig")}


def _kind_clusters(sandbox) -> list[str]:
    return subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "get", "clusters"], capture_output=True, text=True,
                          timeout=60, check=True, env=dict(os.environ, **sandbox.env)).stdout.split()


def _site_args(variables: dict) -> list[str]:
    return ["-i", str(REPO / "inventories" / "sandbox"), "-e", json.dumps(variables), str(REPO / "playbooks" / "site.yml")]


def _kubectl(sandbox, variables: dict, *args: str) -> str:
    env = dict(os.environ, **sandbox.env)
    run = subprocess.run([binary_paths()["kubectl"], "--kubeconfig", variables["kind_cluster_kubeconfig"],
                          "--context", f"kind-{variables['kind_cluster_name']}", *args],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _site_state(sandbox, variables: dict) -> dict:
    group, name = variables["identity_resource_group"], variables["identity_name"]
    state = _state_of(sandbox, group, name)
    connected = sandbox.client(ConnectedKubernetesClient).connected_cluster.list_by_resource_group(group)
    state["connected_clusters"] = len(list(connected))
    clusters = subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "get", "clusters"], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, **sandbox.env)).stdout.split()
    state["kind_clusters"] = clusters.count(variables["kind_cluster_name"])
    # Helm releases as Helm stores them (Secrets labelled owner=helm): every one deployed, none pending
    secrets = json.loads(_kubectl(sandbox, variables, "get", "secrets", "-A", "-l", "owner=helm", "-o", "json"))
    latest = {}
    for item in secrets["items"]:
        labels = item["metadata"]["labels"]
        if int(labels["version"]) >= int(latest.get(labels["name"], {}).get("version", 0)):
            latest[labels["name"]] = labels
    state["releases"] = {release: labels["status"] for release, labels in sorted(latest.items())}
    return state


@needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "helm", "azure-wi-webhook")
def test_site_killed_at_ten_points_each_rerun_converges_with_the_same_key(sandbox, tmp_path):
    """site.yml with Arc: its ARM requests run from the resource group to the FIC; from about the 24th on
    the cluster exists (the Arc connection, its agents' Helm release, the webhook release, the FIC), so
    the points fall in both halves."""
    rng = random.Random(SEED)
    points = sorted(rng.sample(range(1, SITE_REQUESTS), POINTS))
    report = []
    for point in points:
        tag = uuid.uuid4().hex[:6]
        variables = _site_vars(tmp_path, tag)
        key_file = tmp_path / tag / "keys" / "sa.key"
        try:
            killed = _kill_at(sandbox, _site_args(variables), point)
            key_before = _digest(key_file)
            cluster_up = variables["kind_cluster_name"] in _kind_clusters(sandbox)
            rerun = _run(sandbox, _site_args(variables))
            assert rerun.returncode == 0, f"kill at {point}: {rerun.stdout[-4000:]}"
            if key_before is not None:
                assert _digest(key_file) == key_before, f"kill at {point}: the signing key was regenerated"
            state = _site_state(sandbox, variables)
            assert state == {"identities": 1, "fics": 1, "assignments": 1, "accounts": 1, "connected_clusters": 1,
                             "kind_clusters": 1, "releases": {"azure-arc": "deployed",
                                                              "workload-identity-webhook": "deployed"}}, (point, state)
            assert {p.name for p in key_file.parent.iterdir()} == KEY_FILES, (point, sorted(os.listdir(key_file.parent)))
            assert oct(key_file.stat().st_mode & 0o777) == "0o600"
            if cluster_up:  # after a kill with the cluster up, a third run changes nothing
                again = _run(sandbox, _site_args(variables))
                assert again.returncode == 0 and "changed=0" in again.stdout, (point, again.stdout[-3000:])
            report.append((point, killed, key_before is not None, cluster_up))
        finally:
            subprocess.run([str(REPO / "sandbox" / "bin" / "kind"), "delete", "cluster", "--name",
                            variables["kind_cluster_name"], "--kubeconfig", variables["kind_cluster_kubeconfig"]],
                           capture_output=True, timeout=300, check=False, env=dict(os.environ, **sandbox.env))
    # every run was killed at its point, some before and some after the key existed, some before and
    # some after the kind cluster did (what the kill left, read from kind, not a hand-counted request)
    assert all(killed for _, killed, _, _ in report), report
    assert {had_key for _, _, had_key, _ in report} == {False, True}, report
    assert {up for _, _, _, up in report} == {False, True}, report


def test_a_sandbox_restart_mid_run_fails_clearly_or_retries_and_the_rerun_converges(sandbox, tmp_path):
    tag = uuid.uuid4().hex[:6]
    inventory = fleet.inventory(tmp_path / "fleet.json", 1, tag, 0, tmp_path / "keys")
    mark = sandbox.mark()
    proc = _start(sandbox, _fleet_args(inventory))
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
