"""The kind_cluster role on real kind: kind v0.33.0 built from its Go module, the sandbox's Docker daemon,
and node images built offline (sandbox/nodeimage) for Kubernetes v1.37.2 (kubeadm v1beta4) and v1.35.4
(kubeadm v1beta3). Real kubelets, containerd and static pods; nothing here is a stand-in.

Nothing is skipped: a missing Docker, kind or node image fails (the session fixture builds what is
missing, as `make setup` does). Sources: kind v0.33.0 pkg/internal/patch/kubeadm_merge.go and
resource.go (a patch that names no apiVersion is converted to the rendered config's form; one naming
another apiVersion is skipped), pkg/cluster/internal/kubeadm/config.go (v1beta4 from v1.36.0),
kubeadm's v1beta4 docs (extraArgs is a list of name/value).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, kill_play
from .realkind import DEFAULT_ISSUER, KUBEADM_API, VERSIONS, Runner, docker, free_port

@pytest.fixture
def runner(tmp_path, keys, real_kind):
    runner = Runner(tmp_path, keys, real_kind)
    yield runner
    runner.cleanup()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_role_creates_a_real_cluster_that_signs_with_the_issuer(runner, version):
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}/"
    variables = runner.variables(name, issuer, version)

    predicted = runner.play(variables, check=True)
    assert predicted["rc"] == 0, predicted["text"]
    assert predicted["changed"] > 0
    assert name not in runner.clusters() and not runner.containers(name), "check mode created the cluster"

    started = time.monotonic()
    first = runner.play(variables)
    took = time.monotonic() - started
    assert first["rc"] == 0, first["text"]
    print(f"\n{version}: the role created {name} in {took:.1f}s")
    assert first["changed"] > 0
    assert runner.containers(name) == [f"{name}-control-plane"]
    # the real node: Ready, the kubelet of the image's version, containerd as its runtime
    node = json.loads(runner.kubectl(name, "get", "node", f"{name}-control-plane", "-o", "json"))
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == version
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    # kind rendered the kubeadm API of the version, and the role's patch of that form set the issuer
    kubeadm_conf = docker("exec", f"{name}-control-plane", "cat", "/kind/kubeadm.conf").stdout
    assert f"apiVersion: {KUBEADM_API[version]}" in kubeadm_conf
    assert runner.served(name) == (issuer, [runner.keys["kid"]])
    config = yaml.safe_load((runner.tmp / name / "kind-config.yaml").read_text())
    assert config["networking"]["apiServerPort"] == variables["kind_cluster_api_server_port"]

    second = runner.play(variables)
    assert second["rc"] == 0 and second["changed"] == 0, second["text"]
    assert runner.play(variables, check=True)["changed"] == 0

    memory = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", f"{name}-control-plane").stdout.strip()
    print(f"{version}: node container memory {memory}")


# The four forms of the service-account patches, as users write them (the seed's own config names no
# apiVersion). kind v0.33: a patch without apiVersion is converted to the rendered form; one that names an
# apiVersion applies only to a config of that apiVersion.
MAP_FORM = """  - |
    kind: ClusterConfiguration{api_version}
    apiServer:
      extraArgs:
        service-account-issuer: {issuer}
        service-account-key-file: /etc/kubernetes/pki/sa.pub
        service-account-signing-key-file: /etc/kubernetes/pki/sa.key
    controllerManager:
      extraArgs:
        service-account-private-key-file: /etc/kubernetes/pki/sa.key
"""
LIST_FORM = """  - |
    kind: ClusterConfiguration
    apiVersion: kubeadm.k8s.io/v1beta4
    apiServer:
      extraArgs:
        - name: service-account-issuer
          value: {issuer}
        - name: service-account-key-file
          value: /etc/kubernetes/pki/sa.pub
        - name: service-account-signing-key-file
          value: /etc/kubernetes/pki/sa.key
    controllerManager:
      extraArgs:
        - name: service-account-private-key-file
          value: /etc/kubernetes/pki/sa.key
"""
# form -> versions whose apiserver gets the issuer
APPLIED = {"seed": {"v1.37.2", "v1.35.4"}, "v1beta3-only": {"v1.35.4"}, "v1beta4-only": {"v1.37.2"}}


def _config(form: str, image: str, issuer: str, keys: dict, port: int, extra: list[str]) -> str:
    if form == "seed":
        patch = MAP_FORM.format(api_version="", issuer=issuer)
    elif form == "v1beta3-only":
        patch = MAP_FORM.format(api_version="\n    apiVersion: kubeadm.k8s.io/v1beta3", issuer=issuer)
    else:
        patch = LIST_FORM.format(issuer=issuer)
    more = "".join("  - |\n    " + p + "\n" for p in extra)
    return (f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
            f"networking:\n  apiServerAddress: 127.0.0.1\n  apiServerPort: {port}\n"
            f"nodes:\n- role: control-plane\n  image: {image}\n  extraMounts:\n"
            f"  - hostPath: {keys['signing']}\n    containerPath: /etc/kubernetes/pki/sa.key\n"
            f"  - hostPath: {keys['public']}\n    containerPath: /etc/kubernetes/pki/sa.pub\n"
            f"kubeadmConfigPatches:\n{patch}{more}")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("form", list(APPLIED))
def test_patch_forms_as_real_kind_treats_them(runner, version, form):
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}"
    config = runner.tmp / f"{form}.yaml"
    config.write_text(_config(form, runner.real["images"][version], issuer, runner.keys, free_port(),
                              runner.real["patches"][version]))
    runner.kind("create", "cluster", "--name", name, "--config", str(config), "--kubeconfig", runner.kubeconfig,
                "--wait", "120s", timeout=600)
    served_issuer, _ = runner.served(name)
    checked = runner.play(runner.variables(name, issuer, version, kind_cluster_provider="existing"))
    if version in APPLIED[form]:
        assert served_issuer == issuer
        assert checked["rc"] == 0, checked["text"]
    else:
        # kind skipped the patch: kubeadm's default issuer, and the role's check names the cause
        assert served_issuer == DEFAULT_ISSUER
        assert checked["rc"] != 0
        text = checked["message"]
        assert "kubeadm's default issuer" in text and json.dumps(issuer) in text, checked["text"]
        assert "kubeadm.k8s.io/v1beta4" in text and "list of {name, value}" in text


class TestBadInputFailsBeforeAnythingIsCreated:
    def _refused(self, runner, variables, *, env=None, expect: list[str]) -> None:
        result = runner.play(variables, env=env)
        assert result["rc"] != 0, result["text"]
        for words in expect:
            assert words in result["message"], result["text"]
        name = variables["kind_cluster_name"]
        assert not runner.containers(name), "a node container was created"
        assert not (Path(variables["kind_cluster_config_dir"]) / "kind-create.unfinished").exists()

    def test_a_node_image_that_is_not_in_docker(self, runner):
        name = runner.name()
        self._refused(runner, runner.variables(name, "https://issuer.example.invalid/x",
                                               kind_cluster_node_image="arcwi-sandbox/node:v9.99.0"),
                      expect=["arcwi-sandbox/node:v9.99.0 is not in Docker", "python -m sandbox.nodeimage build",
                              "kind_cluster_node_image_pull"])

    def test_docker_unusable(self, runner, tmp_path):
        name = runner.name()
        self._refused(runner, runner.variables(name, "https://issuer.example.invalid/x"),
                      env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
                      expect=["Docker is not usable", f"DOCKER_HOST=unix://{tmp_path}/no-docker.sock",
                              "python -m sandbox up"])

    def test_a_port_taken(self, runner):
        name = runner.name()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            self._refused(runner, runner.variables(name, "https://issuer.example.invalid/x",
                                                   kind_cluster_api_server_port=port),
                          expect=[f"kind_cluster_api_server_port {port}", "already in use"])

    def test_a_kind_binary_of_another_version(self, runner, tmp_path):
        name = runner.name()
        fake = tmp_path / "kind"
        fake.write_text("#!/bin/sh\n[ \"$1\" = version ] && echo 'kind v0.32.0 go1.26.8 linux/amd64' && exit 0\n"
                        f"exec {runner.real['kind']} \"$@\"\n")
        fake.chmod(0o755)
        self._refused(runner, runner.variables(name, "https://issuer.example.invalid/x",
                                               kind_cluster_kind_binary=str(fake)),
                      expect=['"kind v0.32.0 go1.26.8 linux/amd64"', "not kind v0.33.0", "kind_cluster_install"])


def test_a_killed_create_is_deleted_and_created_again(runner):
    """SIGKILL of the play while the real `kind create` runs (its node container exists, kubeadm has not
    finished): kind leaves the node container behind and lists the cluster; the role's marker names it, the
    re-run deletes and creates it, and the run after that changes nothing."""
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}/"
    variables = runner.variables(name, issuer)
    extra = runner.tmp / "vars.json"
    extra.write_text(json.dumps(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}",
                             str(runner.tmp / "play.yml")], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not runner.containers(name) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert runner.containers(name), "kind create never started a node"
    kill_play(proc.pid)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert name in runner.clusters(), "kind lists the cluster whose create was killed"
    marker = runner.tmp / name / "kind-create.unfinished"
    assert marker.exists()

    rerun = runner.play(variables)
    assert rerun["rc"] == 0, rerun["text"]
    assert f"Delete the cluster whose create was interrupted, {name}" in rerun["changed_tasks"], rerun["changed_tasks"]
    assert not marker.exists()
    assert runner.served(name) == (issuer, [runner.keys["kid"]])
    again = runner.play(variables)
    assert again["rc"] == 0 and again["changed"] == 0, again["text"]


SWITCH_PLAYBOOK = """
- name: the in-place issuer switch of kind_cluster (issuer_mode arc) on a real node
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Switch
      ansible.builtin.include_role:
        name: arcwi.workload_identity.kind_cluster
        tasks_from: issuer_in_place
      vars:
        _kind_cluster_issuer: "{{ new_issuer }}"
        _kind_cluster_kubeconfig: "{{ kind_cluster_kubeconfig }}"
"""


def test_the_in_place_issuer_switch_on_a_real_node(runner):
    """docker cp of the apiserver's static pod manifest out of and into the real node; the real kubelet
    restarts the apiserver, which then serves the new issuer (what issuer_mode arc does after Arc)."""
    name = runner.name()
    issuer = f"https://issuer.example.invalid/{name}/"
    variables = runner.variables(name, issuer)
    assert runner.play(variables)["rc"] == 0
    (runner.tmp / "switch.yml").write_text(SWITCH_PLAYBOOK)
    new = f"https://oidc.sandbox.arcwi.invalid/{name}/"
    switched = runner.play({**variables, "new_issuer": new}, playbook="switch.yml")
    assert switched["rc"] == 0, switched["text"]
    assert switched["changed"] > 0
    assert runner.served(name) == (new, [runner.keys["kid"]])
    manifest = docker("exec", f"{name}-control-plane", "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    assert manifest.count("--service-account-issuer=") == 1 and f"--service-account-issuer={new}" in manifest
