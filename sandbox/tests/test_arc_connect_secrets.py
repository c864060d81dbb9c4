"""arc_connect never shows the agents' private key (issue 5, "Acceptance"): a connect run at -vvv, whose
whole output (stdout and stderr, module arguments and results included) is searched for the private key
the agents actually received (read back from the cluster's Secret, where the chart keeps it), and for
any PEM private-key header. The temporary values file that carried the key to helm is gone afterwards.

Sources: azure-cli-extensions connectedk8s (the key reaches the agents as the Helm value
global.onboardingPrivateKey); the fixture chart stores it in Secret azure-arc/azure-arc-connect-privatekey.
"""
from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import tempfile
import uuid

from .conftest import REPO, binary_paths, needs_binaries

KIND = str(REPO / "sandbox" / "bin" / "kind")
PLAYBOOK = """
- name: arc_connect at -vvv
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/arcwi.workload_identity.azure:
      cloud_metadata_url: "{{ lookup('ansible.builtin.env', 'ARCWI_CLOUD_METADATA_URL') }}"
      subscription_id: "{{ lookup('ansible.builtin.env', 'AZURE_SUBSCRIPTION_ID') }}"
      tenant: "{{ lookup('ansible.builtin.env', 'AZURE_TENANT_ID') }}"
      client_id: "{{ lookup('ansible.builtin.env', 'AZURE_CLIENT_ID') }}"
      secret: "{{ lookup('ansible.builtin.env', 'AZURE_CLIENT_SECRET') }}"
  tasks:
    - name: Resource group
      arcwi.workload_identity.resource_group: {name: "{{ rg }}", location: westeurope, state: "{{ state }}"}
      when: state == 'present'
    - name: Connect
      arcwi.workload_identity.arc_connect:
        name: "{{ cluster }}"
        resource_group: "{{ rg }}"
        location: westeurope
        kubeconfig: "{{ kubeconfig }}"
        context: "kind-{{ cluster }}"
        helm_binary: "{{ helm }}"
        state: "{{ state }}"
        wait_timeout: 180
    - name: Resource group gone
      arcwi.workload_identity.resource_group: {name: "{{ rg }}", state: absent}
      when: state == 'absent'
"""

pytestmark = needs_binaries("etcd", "kube-apiserver", "kwok", "kubectl", "helm")


def _play(tmp_path, sandbox, variables: dict) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(PLAYBOOK)
    env = dict(os.environ, **sandbox.env, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-vvv", "-i", "localhost,",
                           "-e", json.dumps(variables), str(play)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_agent_private_key_appears_in_no_output_at_vvv(tmp_path, sandbox):
    cluster = "arcsec" + uuid.uuid4().hex[:6]
    kubeconfig = str(tmp_path / "kubeconfig")
    created = subprocess.run([KIND, "create", "cluster", "--name", cluster, "--kubeconfig", kubeconfig, "--wait",
                              "120s"], capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stderr
    variables = {"cluster": cluster, "kubeconfig": kubeconfig, "rg": f"rg-{cluster}", "helm": binary_paths()["helm"],
                 "state": "present", "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}
    leftovers_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "arcwi-arc-*")))
    try:
        run = _play(tmp_path, sandbox, variables)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-5000:]
        assert "<localhost> EXEC" in output or "ESTABLISH LOCAL CONNECTION" in output  # really -vvv
        secret = json.loads(subprocess.run(
            [binary_paths()["kubectl"], "--kubeconfig", kubeconfig, "-n", "azure-arc", "get", "secret",
             "azure-arc-connect-privatekey", "-o", "json"], capture_output=True, text=True, check=True).stdout)
        pem = base64.b64decode(secret["data"]["privateKey"]).decode()
        assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
        body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
        assert len(body) > 40  # RSA-4096
        leaked = sum(1 for line in body if line in output)  # a count: the report must not print the key either
        assert leaked == 0, f"{leaked} lines of the agents' private key are in the -vvv output"
        assert "PRIVATE KEY" not in output
        assert "onboardingPrivateKey" not in output
        assert set(glob.glob(os.path.join(tempfile.gettempdir(), "arcwi-arc-*"))) == leftovers_before
    finally:
        _play(tmp_path, sandbox, dict(variables, state="absent"))
        subprocess.run([KIND, "delete", "cluster", "--name", cluster, "--kubeconfig", kubeconfig],
                       capture_output=True, timeout=120, check=False)
