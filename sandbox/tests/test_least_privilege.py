"""Least privilege: the operator role in docs/operator-role.json is enough for site.yml (with Azure Arc),
verify.yml and teardown.yml, and every action in it is used.

A sandbox principal holds only that custom role at the subscription; the three playbooks run with its
client secret. The sandbox's ARM enforces RBAC per action (sandbox/server/arm/core.py `authorize`,
actions as in learn.microsoft.com/azure/role-based-access-control/permissions) and records what each
principal was granted and refused (admin API /principals/{oid}/actions).
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid

from azure.mgmt.authorization import AuthorizationManagementClient

from .conftest import REPO, needs_binaries

ROLE = json.loads((REPO / "docs" / "operator-role.json").read_text())
# needed only while the subscription has not registered the provider (Azure Arc's first onboarding)
REGISTER = {f"{ns}/register/action": ns for ns in
            ("Microsoft.Kubernetes", "Microsoft.KubernetesConfiguration", "Microsoft.ExtendedLocation")}


def _playbook(sandbox, operator: dict, name: str, variables: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **sandbox.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "AZURE_CLIENT_ID": operator["client_id"], "AZURE_CLIENT_SECRET": operator["secret"]}
    return subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox"),
                           "-e", json.dumps(variables), str(REPO / "playbooks" / name)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)


@needs_binaries("kube-apiserver", "etcd", "kwok", "helm", "azure-wi-webhook")
def test_the_operator_role_runs_site_verify_and_teardown_and_each_action_is_used(sandbox, tmp_path):
    from azure.mgmt.resource.resources import ResourceManagementClient

    providers = sandbox.client(ResourceManagementClient).providers
    registered_before = {ns for ns in REGISTER.values() if providers.get(ns).registration_state == "Registered"}
    auth = sandbox.client(AuthorizationManagementClient)
    role_name = f"{ROLE['Name']} {uuid.uuid4().hex[:6]}"
    auth.role_definitions.create_or_update(sandbox.sub_scope, str(uuid.uuid4()), {
        "role_name": role_name, "description": ROLE["Description"], "role_type": "CustomRole",
        "permissions": [{"actions": ROLE["Actions"], "not_actions": ROLE["NotActions"],
                         "data_actions": ROLE["DataActions"], "not_data_actions": ROLE["NotDataActions"]}],
        "assignable_scopes": [sandbox.sub_scope]})
    operator = sandbox.principal(roles=[{"role": role_name}], name="arcwi-operator")

    suffix = uuid.uuid4().hex[:6]
    variables = {"kind_cluster_name": f"lp-{suffix}", "identity_resource_group": f"rg-lp-{suffix}",
                 "identity_name": f"id-lp-{suffix}", "oidc_issuer_name": f"lp{suffix}",
                 "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig")}
    try:
        site = _playbook(sandbox, operator, "site.yml", variables)
        assert site.returncode == 0, site.stdout[-5000:] + site.stderr[-2000:]
        verify = _playbook(sandbox, operator, "verify.yml", variables)
        assert verify.returncode == 0, verify.stdout[-5000:] + verify.stderr[-2000:]
    finally:
        down = _playbook(sandbox, operator, "teardown.yml", variables)
    assert down.returncode == 0, down.stdout[-5000:] + down.stderr[-2000:]

    seen = sandbox.admin("GET", f"/principals/{operator['object_id']}/actions")
    assert seen["refused"] == []
    granted = {a.lower() for a in seen["granted"]}
    unused = [a for a in ROLE["Actions"] if a.lower() not in granted and REGISTER.get(a) not in registered_before]
    assert unused == [], f"in the role but used by none of the three playbooks: {unused}"
