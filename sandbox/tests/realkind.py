"""Helpers of the tests on real kind (kind v0.33.0 on the sandbox's Docker, the sandbox's node images):
a runner of the kind_cluster role and what the tests read back. The fixture `real_kind` (conftest.py)
makes sure Docker, kind and both node images are there."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .conftest import REPO

PLAYBOOK = """
- name: kind_cluster under test
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: arcwi.workload_identity.kind_cluster
"""
VERSIONS = ["v1.37.2", "v1.35.4"]
KUBEADM_API = {"v1.37.2": "kubeadm.k8s.io/v1beta4", "v1.35.4": "kubeadm.k8s.io/v1beta3"}
DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def go_path(tool: str, binary: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / "sandbox" / "go" / "build.py"), "paths", "--json", tool],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)[binary]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=300)


class Runner:
    def __init__(self, tmp_path: Path, keys: dict, real: dict):
        self.tmp, self.keys, self.real = tmp_path, keys, real
        self.kubeconfig = str(tmp_path / "kubeconfig")
        self.names: list[str] = []
        (tmp_path / "play.yml").write_text(PLAYBOOK)

    def name(self) -> str:
        name = "rk" + uuid.uuid4().hex[:8]
        self.names.append(name)
        return name

    def variables(self, name: str, issuer: str, version: str = "v1.37.2", **more) -> dict:
        return {"kind_cluster_name": name, "oidc_issuer_url": issuer, "oidc_issuer_kids": [self.keys["kid"]],
                "oidc_issuer_signing_key": self.keys["signing"], "oidc_issuer_public_key": self.keys["public"],
                "kind_cluster_kind_binary": self.real["kind"], "kind_cluster_kubectl": self.real["kubectl"],
                "kind_cluster_node_image": self.real["images"][version], "kind_cluster_node_image_pull": False,
                "kind_cluster_kubeadm_config_patches": self.real["patches"][version],
                "kind_cluster_api_server_port": free_port(),
                "kind_cluster_kubeconfig": self.kubeconfig, "kind_cluster_config_dir": str(self.tmp / name),
                "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python"), **more}

    def play(self, variables: dict, check: bool = False, env: dict | None = None, playbook: str = "play.yml") -> dict:
        extra = self.tmp / "vars.json"
        extra.write_text(json.dumps(variables))
        run_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                       ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1", **(env or {}))
        argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}",
                str(self.tmp / playbook)] + (["--check"] if check else [])
        run = subprocess.run(argv, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=900)
        try:
            out = json.loads(run.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"ansible-playbook printed no JSON (rc {run.returncode}):\n{run.stdout}\n{run.stderr}")
        stats = out["stats"]["localhost"]
        facts, messages, why, changed_tasks = {}, [], [], []
        for task in out["plays"][0]["tasks"]:
            result = task["hosts"].get("localhost", {})
            facts.update(result.get("ansible_facts", {}))
            if result.get("changed"):
                changed_tasks.append(task["task"]["name"].split(" : ", 1)[-1])
            if result.get("failed"):
                messages.append(str(result.get("msg", "")))
                why.append(f"{task['task']['name']}: {result.get('msg', '')}\n{str(result.get('stderr', ''))[-2000:]}")
        return {"rc": run.returncode, "changed": stats["changed"], "failed": stats["failures"], "facts": facts,
                "changed_tasks": changed_tasks, "message": "\n".join(messages),
                "text": "\n".join(why + [run.stdout[-6000:]])}

    def kind(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([self.real["kind"], *args], capture_output=True, text=True, check=check, timeout=timeout)

    def clusters(self) -> list[str]:
        return self.kind("get", "clusters").stdout.split()

    def kubectl(self, name: str, *args: str) -> str:
        return subprocess.run([self.real["kubectl"], "--kubeconfig", self.kubeconfig, "--context", f"kind-{name}", *args],
                              capture_output=True, text=True, check=True, timeout=60).stdout

    def served(self, name: str) -> tuple[str, list[str]]:
        issuer = json.loads(self.kubectl(name, "get", "--raw", "/.well-known/openid-configuration"))["issuer"]
        kids = [k["kid"] for k in json.loads(self.kubectl(name, "get", "--raw", "/openid/v1/jwks"))["keys"]]
        return issuer, kids

    def containers(self, name: str) -> list[str]:
        return docker("ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={name}", "--format", "{{.Names}}").stdout.split()

    def cleanup(self) -> None:
        for name in self.names:
            self.kind("delete", "cluster", "--name", name, "--kubeconfig", self.kubeconfig, check=False, timeout=120)


def issuer_keys(issuer, directory: Path) -> dict:
    """The test issuer's key as a cluster's service-account key pair (sa.key 0600, sa.pub), with its kid."""
    from cryptography.hazmat.primitives import serialization

    (directory / "sa.key").write_bytes(issuer.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    os.chmod(directory / "sa.key", 0o600)
    (directory / "sa.pub").write_bytes(issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"signing": str(directory / "sa.key"), "public": str(directory / "sa.pub"), "kid": issuer.kid}
