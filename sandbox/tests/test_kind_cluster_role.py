"""The kind_cluster role against the sandbox's kind stand-in: a real kube-apiserver started from the
role's kind config, on both sides of kind's kubeadm v1beta3/v1beta4 line.

Runs ansible-playbook with the collection of this checkout (ANSIBLE_CONFIG=ansible.cfg), a fresh key
pair and an issuer picked here (no Azure: the oidc_issuer facts are given as variables). Skipped when
the sandbox Kubernetes binaries are not built (`make sandbox-k8s-build`), as test_kind_standin.py is.
Sources: AZURE_FACTS.md "kube-apiserver and kind" (both patch forms; the apiserver serves its own
discovery document and JWKS), kind PR 4173 / issue 3847.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import yaml

from sandbox.kind.cluster import load_state, running

from .conftest import REPO, kill_play, needs_binaries
from .test_kind_standin import KIND, discovery, kubectl

pytestmark = needs_binaries("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")

PLAYBOOK = """
- name: kind_cluster under test
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: arcwi.workload_identity.kind_cluster
"""
SEED_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  image: {image}
  kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiVersion: kubeadm.k8s.io/v1beta3
    apiServer:
      extraArgs:
        service-account-issuer: {issuer}
"""


def _commands_with(*words: str) -> list[str]:
    """Command lines of the running processes that hold every word."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and running(int(entry)):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if all(word in argv for word in words):
                out.append(" ".join(argv))
    return out


class Runner:
    def __init__(self, tmp_path, keys):
        self.tmp = tmp_path
        self.keys = keys
        self.kubeconfig = str(tmp_path / "kubeconfig")
        self.names = []
        (tmp_path / "play.yml").write_text(PLAYBOOK)

    def name(self) -> str:
        name = "kc" + uuid.uuid4().hex[:8]
        self.names.append(name)
        return name

    def variables(self, name: str, issuer: str, **more) -> dict:
        return {"kind_cluster_name": name, "oidc_issuer_url": issuer, "oidc_issuer_kids": [self.keys["kid"]],
                "oidc_issuer_signing_key": self.keys["signing"], "oidc_issuer_public_key": self.keys["public"],
                "kind_cluster_kind_binary": KIND, "kind_cluster_kubectl": kubectl(),
                "kind_cluster_kubeconfig": self.kubeconfig, "kind_cluster_config_dir": str(self.tmp / name),
                "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python"), **more}

    def play(self, variables: dict, check: bool = False) -> dict:
        """ansible-playbook with the json callback: the stats, the task results and the output."""
        extra = self.tmp / "vars.json"
        extra.write_text(json.dumps(variables))
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                   ANSIBLE_NOCOLOR="1")
        argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}",
                str(self.tmp / "play.yml")] + (["--check"] if check else [])
        run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        try:
            out = json.loads(run.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"ansible-playbook printed no JSON (rc {run.returncode}):\n{run.stdout}\n{run.stderr}")
        stats = out["stats"]["localhost"]
        facts, messages, why = {}, [], []
        for task in out["plays"][0]["tasks"]:
            result = task["hosts"].get("localhost", {})
            facts.update(result.get("ansible_facts", {}))
            if result.get("failed"):
                messages.append(str(result.get("msg", "")))
                # what a failed assertion shows first (the whole JSON output is cut short in CI's log)
                why.append(f"{task['task']['name']}: {result.get('msg', '')}\n{str(result.get('stderr', ''))[-2000:]}")
        return {"rc": run.returncode, "changed": stats["changed"], "failed": stats["failures"], "facts": facts,
                "message": "\n".join(messages), "text": "\n".join(why + [run.stdout])}

    def clusters(self) -> list[str]:
        return subprocess.run([KIND, "get", "clusters"], capture_output=True, text=True, check=True).stdout.split()

    def jwks_kids(self, context: str) -> list[str]:
        out = subprocess.run([kubectl(), "--kubeconfig", self.kubeconfig, "--context", context, "get", "--raw",
                              "/openid/v1/jwks"], capture_output=True, text=True, check=True, timeout=30)
        return [key["kid"] for key in json.loads(out.stdout)["keys"]]

    def cleanup(self):
        for name in self.names:
            subprocess.run([KIND, "delete", "cluster", "--name", name, "--kubeconfig", self.kubeconfig],
                           capture_output=True, timeout=120)


@pytest.fixture
def runner(tmp_path, keys):
    runner = Runner(tmp_path, keys)
    yield runner
    runner.cleanup()


def test_creates_checks_is_idempotent_and_refuses_a_drifted_issuer(runner):
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}/"
    variables = runner.variables(name, issuer)

    predicted = runner.play(variables, check=True)
    assert predicted["rc"] == 0, predicted["text"]
    assert predicted["changed"] > 0
    assert name not in runner.clusters(), "check mode created the cluster"

    first = runner.play(variables)
    assert first["rc"] == 0, first["text"]
    assert first["changed"] > 0
    assert name in runner.clusters()
    from sandbox.kind.cluster import load_state
    assert load_state(name)["kubeadm_api_version"] == "kubeadm.k8s.io/v1beta3"
    assert first["facts"]["kind_cluster_context"] == f"kind-{name}"
    assert first["facts"]["kind_cluster_kubeconfig_path"] == runner.kubeconfig
    assert discovery(runner.kubeconfig)["issuer"] == issuer
    assert runner.keys["kid"] in runner.jwks_kids(f"kind-{name}")
    config = yaml.safe_load((runner.tmp / name / "kind-config.yaml").read_text())
    patches = [yaml.safe_load(p) for p in config["kubeadmConfigPatches"]]
    assert [p["apiVersion"] for p in patches] == ["kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"]

    second = runner.play(variables)
    assert second["rc"] == 0, second["text"]
    assert second["changed"] == 0, second["text"]
    assert runner.play(variables, check=True)["changed"] == 0

    other = f"https://other.example.invalid/{name}"
    drifted = runner.play(runner.variables(name, other))
    assert drifted["rc"] != 0 and drifted["failed"] == 1
    assert json.dumps(issuer) in drifted["message"] and json.dumps(other) in drifted["message"], drifted["text"]
    assert "kind_cluster_recreate_on_drift" in drifted["message"]
    assert discovery(runner.kubeconfig)["issuer"] == issuer, "a refused drift must leave the cluster alone"

    recreated = runner.play(runner.variables(name, other, kind_cluster_recreate_on_drift=True))
    assert recreated["rc"] == 0, recreated["text"]
    assert recreated["changed"] > 0
    assert discovery(runner.kubeconfig)["issuer"] == other


@pytest.mark.parametrize("image", ["kindest/node:v1.36.1"])
def test_the_roles_config_works_with_kubeadm_v1beta4(runner, image):
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}"
    first = runner.play(runner.variables(name, issuer, kind_cluster_node_image=image, kind_cluster_workers=1))
    assert first["rc"] == 0, first["text"]
    assert load_state(name)["kubeadm_api_version"] == "kubeadm.k8s.io/v1beta4"
    assert discovery(runner.kubeconfig)["issuer"] == issuer
    assert runner.keys["kid"] in runner.jwks_kids(f"kind-{name}")
    again = runner.play(runner.variables(name, issuer, kind_cluster_node_image=image, kind_cluster_workers=1))
    assert again["rc"] == 0 and again["changed"] == 0, again["text"]

    # provider existing: nothing created, the same checks, the same facts
    existing = runner.play(runner.variables("unused", issuer, kind_cluster_provider="existing",
                                            kind_cluster_context=f"kind-{name}"))
    assert existing["rc"] == 0, existing["text"]
    assert existing["changed"] == 0
    assert existing["facts"]["kind_cluster_context"] == f"kind-{name}"
    assert "unused" not in runner.clusters()


def test_the_seeds_map_form_patch_under_v1beta4_fails_with_an_explanation(runner):
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}/"
    config = runner.tmp / "seed.yaml"
    config.write_text(SEED_CONFIG.format(image="kindest/node:v1.36.1", issuer=issuer))
    created = subprocess.run([KIND, "create", "cluster", "--name", name, "--config", str(config), "--kubeconfig",
                              runner.kubeconfig, "--wait", "60s"], capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stderr
    result = runner.play(runner.variables(name, issuer, kind_cluster_provider="existing"))
    assert result["rc"] != 0
    text = result["message"]
    assert json.dumps("https://kubernetes.default.svc.cluster.local") in text and json.dumps(issuer) in text
    assert "kubeadm's default issuer" in text
    assert "kubeadm.k8s.io/v1beta4" in text and "list of {name, value}" in text, result["text"]


def test_a_killed_create_is_deleted_and_created_again(runner):
    """SIGKILL of the play (ansible-playbook and every process under it: the worker, the module, `kind
    create`; not the node processes, which stand for containers) while kind create runs leaves what kind
    leaves, a listed cluster that never finished; the role's marker names it, the
    re-run deletes it and creates it, and the run after that changes nothing. A cluster without the
    marker is never deleted this way (the idempotent re-runs of the other tests)."""
    import signal
    import time

    from sandbox.kind.cluster import cluster_dir

    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}/"
    variables = runner.variables(name, issuer)
    extra = runner.tmp / "vars.json"
    extra.write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}",
                             str(runner.tmp / "play.yml")], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state = cluster_dir(name) / "cluster.json"  # written before the first component starts
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.exists(), "kind create never started"
    killed = kill_play(proc.pid)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # all of them die (kind create with them: the play's command, not a node process left running)
    deadline = time.monotonic() + 30
    while [pid for pid in killed if running(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in killed if running(pid)]
    assert not _commands_with("sandbox.kind.cli", "create", name), "kind create outlived the play"

    assert name in runner.clusters()
    marker = runner.tmp / name / "kind-create.unfinished"
    assert marker.exists()
    assert not json.loads(state.read_text()).get("ready_after_s"), "the kill landed after kind create finished"

    rerun = runner.play(variables)
    assert rerun["rc"] == 0, rerun["text"]
    assert rerun["changed"] > 0
    assert f"Delete the cluster whose create was interrupted, {name}" in rerun["text"]
    assert not marker.exists()
    assert load_state(name).get("ready_after_s")
    assert discovery(runner.kubeconfig)["issuer"] == issuer
    assert runner.keys["kid"] in runner.jwks_kids(f"kind-{name}")
    again = runner.play(variables)
    assert again["rc"] == 0 and again["changed"] == 0, again["text"]
