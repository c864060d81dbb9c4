"""The kind stand-in starts a real control plane (etcd, kube-apiserver, controller-manager, scheduler,
kwok) from kind's config, with kubeadm's patch semantics deciding the apiserver's flags.

Needs the binaries built from the upstream Go modules (`make sandbox-k8s-build`); skipped when they
are not there. Sources: kind PR 4173 / issue 3847 (v1beta4 from 1.36; a v1beta3 patch is ignored),
kube-apiserver serving /.well-known/openid-configuration with --service-account-issuer.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import subprocess
import uuid

import pytest
import yaml

from .conftest import REPO, binary_paths, needs_binaries

KIND = str(REPO / "sandbox" / "bin" / "kind")


pytestmark = needs_binaries("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")

SEED_PATCH = """
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
apiServer:
  extraArgs:
    service-account-issuer: {issuer}
"""


def config(image: str, issuer: str, workers: int = 0) -> str:
    patch = "\n".join("    " + line for line in SEED_PATCH.format(issuer=issuer).strip().splitlines())
    nodes = "- role: control-plane\n  image: %s\n  kubeadmConfigPatches:\n  - |\n%s\n" % (image, patch)
    nodes += "".join(f"- role: worker\n  image: {image}\n" for _ in range(workers))
    return f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n{nodes}"


def kubectl() -> str:
    return binary_paths()["kubectl"]


def discovery(kubeconfig: str) -> dict:
    """What the running apiserver serves (read as the cluster admin, as kind's kubeconfig does)."""
    out = subprocess.run([kubectl(), "--kubeconfig", kubeconfig, "get", "--raw", "/.well-known/openid-configuration"],
                         capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


@pytest.fixture
def cluster(tmp_path):
    created = []

    def make(image: str, issuer: str, workers: int = 0):
        name = "t" + uuid.uuid4().hex[:6]
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(config(image, issuer, workers))
        kubeconfig = tmp_path / "kubeconfig"
        run = subprocess.run([KIND, "create", "cluster", "--name", name, "--config", str(cfg), "--kubeconfig",
                              str(kubeconfig), "--wait", "60s"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        created.append((name, kubeconfig))
        return name, str(kubeconfig), run.stderr

    yield make
    for name, kubeconfig in created:
        subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)],
                       capture_output=True, timeout=120)


def test_v1beta3_patch_sets_the_issuer_on_a_1_35_node_image(cluster):
    name, kubeconfig, _ = cluster("kindest/node:v1.35.4", "https://issuer.example.invalid/a/", workers=1)
    assert discovery(kubeconfig)["issuer"] == "https://issuer.example.invalid/a/"
    assert name in subprocess.run([KIND, "get", "clusters"], capture_output=True, text=True).stdout.split()
    cfg = yaml.safe_load(open(kubeconfig))
    assert cfg["current-context"] == f"kind-{name}"


def test_v1beta3_patch_is_ignored_on_a_1_36_node_image_as_real_kind_does(cluster):
    _, kubeconfig, stderr = cluster("kindest/node:v1.36.1", "https://issuer.example.invalid/b/")
    # the apiserver runs with kubeadm's default issuer: the seed's map-form patch had no effect
    assert discovery(kubeconfig)["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert "ignored" in stderr


def test_unknown_config_field_fails_like_kind(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraMount: []\n")
    run = subprocess.run([KIND, "create", "cluster", "--name", "bad", "--config", str(cfg)], capture_output=True,
                         text=True)
    assert run.returncode != 0
    assert 'unknown field "extraMount"' in run.stderr


def test_delete_stops_every_process(cluster, tmp_path):
    name, kubeconfig, _ = cluster("kindest/node:v1.35.4", "https://issuer.example.invalid/c/")
    from sandbox.kind.cluster import load_state
    pids = list(load_state(name)["pids"].values())
    run = subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"
    assert name not in subprocess.run([KIND, "get", "clusters"], capture_output=True, text=True).stdout.split()


def test_delete_removes_a_labelled_process_whose_pid_was_never_recorded(cluster):
    """kind create killed between starting a component and recording its pid leaves a process no
    cluster.json names, writing into the cluster's directory as etcd does at start. kind finds node
    containers by label (io.x-k8s.kind.cluster); the stand-in's label is its environment, so `kind delete`
    removes that process too and the directory goes (removing it under a writer failed otherwise)."""
    from sandbox.kind.cluster import cluster_dir, labelled_env
    name, kubeconfig, _ = cluster("kindest/node:v1.35.4", "https://issuer.example.invalid/d/")
    cdir = cluster_dir(name)
    writer = ("import itertools, pathlib, sys\n"
              "d = pathlib.Path(sys.argv[1])\n"
              "for i in itertools.count():\n"
              "    d.mkdir(exist_ok=True)\n"
              "    (d / f'wal-{i % 50}').write_bytes(b'x')\n")
    stray = subprocess.Popen([sys.executable, "-c", writer, str(cdir / "stray")], env=labelled_env(cdir),
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (cdir / "stray" / "wal-1").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (cdir / "stray" / "wal-1").exists(), "the stray writer never wrote"
        run = subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert stray.wait(timeout=30) == -signal.SIGKILL
        assert not cdir.exists()
    finally:
        if stray.poll() is None:
            stray.kill()


def test_jwks_generate_output_equals_the_apiservers_jwks(cluster, tmp_path):
    # Parity (issue 4): jwks_generate on the cluster's sa.pub gives exactly what kube-apiserver serves at
    # /openid/v1/jwks for the same key (kid = base64url SHA-256 of the DER SPKI, use/kty/alg/n/e).
    from sandbox.kind.cluster import cluster_dir
    name, kubeconfig, _ = cluster("kindest/node:v1.35.4", "https://issuer.example.invalid/parity/")
    dest = tmp_path / "jwks.json"
    playbook = tmp_path / "jwks.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  connection: local\n"
        "  vars:\n    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
        "  tasks:\n    - arcwi.workload_identity.jwks_generate:\n"
        f"        public_keys: ['{cluster_dir(name) / 'pki' / 'sa.pub'}']\n        dest: '{dest}'\n")
    run = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook)],
                         cwd=REPO, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    served = subprocess.run([kubectl(), "--kubeconfig", kubeconfig, "get", "--raw", "/openid/v1/jwks"],
                            capture_output=True, text=True, check=True).stdout
    assert json.loads(dest.read_text()) == json.loads(served)
    assert list(json.loads(dest.read_text())["keys"][0]) == list(json.loads(served)["keys"][0]), "field order"
