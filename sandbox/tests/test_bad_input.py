"""Malformed inputs through the collection's modules and roles: refused before any write, naming the field.

Each case is a small playbook run with ansible-playbook (a subprocess, with the variables of
`python -m sandbox env` exported and arcwi.workload_identity resolving to this checkout through a
temporary ANSIBLE_COLLECTIONS_PATH). The case's tasks run in a block whose rescue writes
`ansible_failed_result` to a file; the test then checks

* that the playbook failed at all (a case that succeeds is a missing validation),
* that the failure message holds the expected fragments, which name the field (or, for key files,
  the file and what is wrong with it),
* from the sandbox request log (admin API, `requests?since=<mark>&service=arm`) that no PUT, PATCH,
  POST or DELETE reached ARM while it ran. Reads are allowed (e.g. looking up a role by name, or
  counting the FICs before the 21st); POSTs to the Entra token endpoint are not ARM and not writes.

Unreadable key file: the tests run as root, for whom mode 000 does not block a read, so the unreadable
file is a directory given as a key path. A FIFO is not used: open() of a FIFO without a writer blocks,
and the module would hang instead of failing.

Preparation (resource group, identities, 20 FICs on one identity, key files) is done with the SDK and
cryptography before the cases run, outside the marks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

LOCATION = "westeurope"
ISSUER = "https://issuer.example.invalid/bad-input/"
SUBJECT = "system:serviceaccount:demo:workload"
WRITE_METHODS = ("PUT", "PATCH", "POST", "DELETE")
PLAYBOOK_TIMEOUT = 300


class World:
    """What the cases refer to, created once before them."""

    def __init__(self, sandbox, tmp: Path):
        from azure.mgmt.msi import ManagedServiceIdentityClient
        from azure.mgmt.resource.resources import ResourceManagementClient
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        u = uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.subscription_id = sandbox.subscription_id
        self.rg = f"rg-bad-{u}"
        self.new_rg = f"rg-bad-new-{u}"  # never created: a case that creates it made a write
        self.identity = f"id-bad-{u}"
        self.full_identity = f"id-bad-full-{u}"
        sandbox.client(ResourceManagementClient).resource_groups.create_or_update(self.rg, {"location": LOCATION})
        msi = sandbox.client(ManagedServiceIdentityClient)
        created = msi.user_assigned_identities.create_or_update(self.rg, self.identity, {"location": LOCATION})
        self.principal_id = created.principal_id
        msi.user_assigned_identities.create_or_update(self.rg, self.full_identity, {"location": LOCATION})
        for i in range(20):
            msi.federated_identity_credentials.create_or_update(
                self.rg, self.full_identity, f"fic-{i:02d}",
                {"issuer": ISSUER, "subject": f"system:serviceaccount:demo:sa-{i:02d}",
                 "audiences": ["api://AzureADTokenExchange"]})
        assert len(list(msi.federated_identity_credentials.list(self.rg, self.full_identity))) == 20

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pkcs1_key = tmp / "pkcs1.pub"
        self.pkcs1_key.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.PKCS1))
        self.missing_key = tmp / "no-such-dir" / "sa.pub"
        self.directory_key = tmp / "sa.pub.d"
        self.directory_key.mkdir()
        self.key_dir = tmp / "issuer-keys"

        collections = tmp / "collections"
        link = collections / "ansible_collections" / "arcwi" / "workload_identity"
        link.parent.mkdir(parents=True)
        link.symlink_to(REPO, target_is_directory=True)
        self.collections = collections
        self.inventory = tmp / "inventory.ini"
        self.inventory.write_text(f"testhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")


@pytest.fixture(scope="module")
def world(sandbox, tmp_path_factory):
    from azure.mgmt.resource.resources import ResourceManagementClient

    w = World(sandbox, tmp_path_factory.mktemp("bad-input"))
    yield w
    client = sandbox.client(ResourceManagementClient)
    for rg in (w.rg, w.new_rg):
        if client.resource_groups.check_existence(rg):
            client.resource_groups.begin_delete(rg).result()


# ---- the cases ------------------------------------------------------------------------------------------
# Each case: id -> (function(world) -> list of tasks, expected message fragments). The fragments name the
# field; all must occur in the failure message (or in the message of a failed loop item).

def fic(w: World, **args) -> list:
    params = {"resource_group": w.rg, "identity": w.identity, "name": "bad-input", "issuer": ISSUER,
              "subject": SUBJECT}
    params.update(args)
    return [{"name": "Federated credential", "arcwi.workload_identity.federated_credential": params}]


def module(module_name: str, /, **params) -> list:
    return [{"name": module_name, f"arcwi.workload_identity.{module_name}": params}]


def role(name: str, **variables) -> list:
    return [{"name": f"Role {name}", "ansible.builtin.include_role": {"name": f"arcwi.workload_identity.{name}"},
             "vars": variables}]


def issuer_role(w: World, **variables) -> list:
    defaults = {"oidc_issuer_key_dir": str(w.key_dir), "oidc_issuer_resource_group": w.rg,
                "oidc_issuer_location": LOCATION, "oidc_issuer_name": "bad-input", "oidc_issuer_lock": False}
    return role("oidc_issuer", **{**defaults, **variables})


def identity_role(w: World, **variables) -> list:
    # an existing group and identity: the role reads them and finds nothing to change
    defaults = {"identity_resource_group": w.rg, "identity_name": w.identity, "identity_location": LOCATION,
                "identity_role_assignments": []}
    return role("identity", **{**defaults, **variables})


def wi_role(w: World, **variables) -> list:
    # everything valid but the variable under test; the kubeconfig does not exist (never reached)
    defaults = {"workload_identity_tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "workload_identity_client_id": "00000000-0000-0000-0000-00000000c11d",
                "workload_identity_issuer": ISSUER, "workload_identity_identity_resource_group": w.rg,
                "workload_identity_identity_name": w.identity,
                "workload_identity_kubeconfig": str(w.tmp / "no-such-kubeconfig")}
    return role("workload_identity", **{**defaults, **variables})


def kind_role(w: World, **variables) -> list:
    defaults = {"kind_cluster_issuer": ISSUER, "kind_cluster_signing_key": str(w.tmp / "sa.key"),
                "kind_cluster_public_key": str(w.tmp / "sa.pub"), "kind_cluster_arc_enabled": False,
                "kind_cluster_kind_binary": str(w.tmp / "no-such-kind")}
    return role("kind_cluster", **{**defaults, **variables})


OTHER_SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000000"

CASES = {
    # federated credential fields
    "http-issuer": (lambda w: fic(w, issuer="http://issuer.example.invalid/oidc/"),
                    ["issuer must be an https URL", "http://issuer.example.invalid/oidc/"]),
    "issuer-over-600-chars": (lambda w: fic(w, issuer="https://issuer.example.invalid/" + "a" * 600),
                              ["issuer must be at most 600 characters", "got 631"]),
    "whitespace-in-issuer": (lambda w: fic(w, issuer="https://issuer.example.invalid/my oidc/"),
                             ["issuer must not contain whitespace"]),
    "trailing-newline-in-issuer": (lambda w: fic(w, issuer=ISSUER + "\n"),
                                   ["issuer must not contain whitespace"]),
    "bad-fic-name": (lambda w: fic(w, name="bad name!"), ["name 'bad name!' is invalid"]),
    "two-audiences": (lambda w: fic(w, audiences=["api://AzureADTokenExchange", "api://other"]),
                      ["audiences must hold exactly one audience", "got 2"]),
    "empty-subject": (lambda w: fic(w, subject=""), ["subject is required and must not be empty"]),
    "subject-bad-namespace": (lambda w: fic(w, subject="system:serviceaccount:Bad_NS:sa"),
                              ["subject: namespace 'Bad_NS' is not a valid Kubernetes namespace"]),
    "subject-missing-service-account": (lambda w: fic(w, subject="system:serviceaccount:demo"),
                                        ["subject must be system:serviceaccount:NAMESPACE:SERVICEACCOUNT"]),
    "21st-fic": (lambda w: fic(w, identity=w.full_identity, name="fic-20",
                               subject="system:serviceaccount:demo:sa-20"),
                 ["identity '{full_identity}' already has 20 federated credentials", "the maximum is 20"]),
    # storage
    "invalid-storage-account-name": (lambda w: module("issuer_storage", name="Bad_Account", resource_group=w.rg,
                                                      location=LOCATION),
                                     ["name 'Bad_Account' is not a valid storage account name"]),
    "invalid-storage-account-name-in-role": (lambda w: issuer_role(w, oidc_issuer_storage_account="st-bad"),
                                             ['oidc_issuer_storage_account "st-bad" is not a valid storage']),
    "storage-location-missing": (lambda w: module("issuer_storage", name="stbadnoloc" + w.rg[-8:],
                                                  resource_group=w.rg),
                                 ["location is required"]),
    # keys
    "key-file-missing": (lambda w: module("jwks_generate", public_keys=[str(w.missing_key)]),
                         ["cannot read key file {missing_key}", "No such file or directory"]),
    "key-file-unreadable": (lambda w: module("jwks_generate", public_keys=[str(w.directory_key)]),
                            ["cannot read key file {directory_key}", "it is a directory"]),
    "pkcs1-public-key": (lambda w: module("jwks_generate", public_keys=[str(w.pkcs1_key)]),
                         ["(RSA PUBLIC KEY) of {pkcs1_key} is a PKCS#1 RSA public key", "openssl"]),
    "pkcs1-public-key-in-role": (lambda w: issuer_role(w, oidc_issuer_extra_public_keys=[str(w.pkcs1_key)]),
                                 ["{pkcs1_key} is a PKCS#1 RSA public key"]),
    "key-size-1000-in-role": (lambda w: issuer_role(w, oidc_issuer_key_size=1000),
                              ["oidc_issuer_key_size must be one of: 2048, 3072, 4096, got: 1000"]),
    # role assignments
    "unknown-role-name": (lambda w: module("role_assignment", principal_id=w.principal_id, role="Reeder",
                                           scope=f"/subscriptions/{w.subscription_id}/resourceGroups/{w.rg}"),
                          ["role: no role named 'Reeder'"]),
    "unknown-role-name-in-role": (lambda w: identity_role(w, identity_role_assignments=[{"role": "Reeder"}]),
                                  ["role: no role named 'Reeder'"]),
    "scope-outside-subscription": (lambda w: module("role_assignment", principal_id=w.principal_id,
                                                    role="Reader", scope=OTHER_SUBSCRIPTION),
                                   [f"scope '{OTHER_SUBSCRIPTION}' is outside the subscription"]),
    "scope-outside-subscription-in-role": (lambda w: identity_role(
        w, identity_role_assignments=[{"role": "Reader", "scope": OTHER_SUBSCRIPTION}]),
        [f"scope '{OTHER_SUBSCRIPTION}' is outside the subscription"]),
    "role-assignment-state-in-role": (lambda w: identity_role(
        w, identity_role_assignments=[{"role": "Reader", "state": "gone"}]),
        ["identity_role_assignments", "state must be one of: present, absent, got: gone"]),
    # locations
    "identity-location-missing": (lambda w: module("managed_identity", name="id-bad-noloc", resource_group=w.rg),
                                  ["location is required when state=present"]),
    "identity-name-in-role": (lambda w: identity_role(w, identity_resource_group=w.new_rg, identity_name="bad name!"),
                              ['identity_name "bad name!" is invalid']),
    "http-issuer-in-role": (lambda w: issuer_role(w, oidc_issuer_url="http://issuer.example.invalid/oidc/"),
                            ["oidc_issuer_url", "the issuer must be an https URL"]),
    "location-empty-in-role": (lambda w: identity_role(w, identity_resource_group=w.new_rg, identity_location=""),
                               ["identity_location is required"]),
    # diagnostics (checked before the cluster or Azure is contacted)
    "check-namespace": (lambda w: module("workload_identity_check", namespace="Demo_NS", service_account="workload",
                                         resource_group=w.rg, identity=w.identity),
                        ["namespace must be a DNS-1123 label", "'Demo_NS'"]),
    "check-service-account": (lambda w: module("workload_identity_check", namespace="demo", service_account="-sa",
                                               resource_group=w.rg, identity=w.identity),
                              ["service_account must be a DNS-1123 subdomain", "'-sa'"]),
    "check-exchange-timeout": (lambda w: module("workload_identity_check", namespace="demo",
                                                service_account="workload", resource_group=w.rg,
                                                identity=w.identity, exchange_timeout=-1),
                               ["exchange_timeout must be between 0 and 3600 seconds, got -1"]),
    # the workload_identity role (before the webhook release, the namespace or the FIC)
    "wi-namespace-in-role": (lambda w: wi_role(w, workload_identity_namespace="Demo_NS"),
                             ['workload_identity_namespace "Demo_NS" is invalid', "DNS-1123 label"]),
    "wi-service-account-in-role": (lambda w: wi_role(w, workload_identity_service_account="-sa"),
                                   ['workload_identity_service_account "-sa" is invalid', "DNS-1123 subdomain"]),
    "wi-token-expiration-in-role": (lambda w: wi_role(w, workload_identity_token_expiration=3599),
                                    ["workload_identity_token_expiration 3599 is out of bounds", "3600-86400"]),
    "wi-http-issuer-in-role": (lambda w: wi_role(w, workload_identity_issuer="http://issuer.example.invalid/oidc/"),
                               ['workload_identity_issuer "http://issuer.example.invalid/oidc/" is invalid']),
    "wi-helm-values-not-a-dict": (lambda w: wi_role(w, workload_identity_webhook_values=["azureTenantID", "x"]),
                                  ["workload_identity_webhook_values", "dict"]),
    # a kubeconfig that does not exist, with no context (the current one): named before any Azure write
    "wi-kubeconfig-missing": (lambda w: wi_role(w, workload_identity_webhook_values={}),
                              ["{tmp}/no-such-kubeconfig"]),
    # the kind_cluster role (before kind, the kind config or the cluster)
    "kind-cluster-name-in-role": (lambda w: kind_role(w, kind_cluster_name="Bad_Cluster"),
                                  ['kind_cluster_name "Bad_Cluster" is invalid']),
    # fleets
    "identity-shards-in-role": (lambda w: identity_role(w, identity_shards=101),
                                ["identity_shards 101 is invalid", "0 to 100"]),
    # Azure Arc (checked before the cluster, the providers or the resource are touched)
    "arc-name-with-slash": (lambda w: module("arc_connect", name="a/b", resource_group=w.rg, location=LOCATION),
                            ["name 'a/b' is invalid: a connected cluster name is 1-63 characters"]),
    "arc-location-missing": (lambda w: module("arc_connect", name="arc-bad", resource_group=w.rg),
                             ["location is required when state=present"]),
    "arc-wait-timeout-zero": (lambda w: module("arc_connect", name="arc-bad", resource_group=w.rg, location=LOCATION,
                                               wait_timeout=0),
                              ["wait_timeout must be between 1 and 7200 seconds, got 0"]),
    "arc-http-dataplane": (lambda w: module("arc_connect", name="arc-bad", resource_group=w.rg, location=LOCATION,
                                            dataplane_endpoint="http://127.0.0.1:1/"),
                           ["dataplane_endpoint must be an https URL"]),
}


# Cases that write before refusing, as expected failures (strict: a fix turns them into XPASS
# failures and the entry must go). Empty since the roles check their input before any task writes.
KNOWN_BUGS: dict = {}


def expected(fragments: list, w: World) -> list:
    return [f.format(**{k: str(v) for k, v in vars(w).items()}) for f in fragments]


def playbook(tasks: list, result_file: Path) -> list:
    return [{
        "name": "Bad input",
        "hosts": "testhost",
        "gather_facts": False,
        "tasks": [{
            "name": "The case",
            "block": tasks,
            "rescue": [{
                "name": "Record the failure",
                "ansible.builtin.copy": {"content": "{{ ansible_failed_result | to_json }}",
                                         "dest": str(result_file), "mode": "0600"},
            }],
        }],
    }]


def messages(result: dict) -> list:
    """The failure message, and those of failed loop items."""
    found = [str(result.get("msg", ""))]
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            found.append(str(item.get("msg", "")))
    return found


def run_case(sandbox, world: World, case: str, tasks: list) -> tuple[dict | None, str]:
    result_file = world.tmp / f"{case}.result.json"
    book = world.tmp / f"{case}.yml"
    book.write_text(yaml.safe_dump(playbook(tasks, result_file), sort_keys=False, width=1000))
    env = dict(os.environ)
    env.update(sandbox.env)
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(world.collections), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "false"})
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(world.inventory),
                           str(book)], cwd=world.tmp, env=env, capture_output=True, text=True,
                          timeout=PLAYBOOK_TIMEOUT)
    output = proc.stdout + proc.stderr
    if not result_file.exists():
        return None, output
    return json.loads(result_file.read_text()), output


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case])) if case in KNOWN_BUGS else case
    for case in sorted(CASES)])
def test_refused_before_any_write(sandbox, world, case):
    build, fragments = CASES[case]
    mark = sandbox.mark()
    result, output = run_case(sandbox, world, case, build(world))
    writes = [f"{r['method']} {r['path']} -> {r['status']}" for r in sandbox.writes_since(mark)]
    assert result is not None, f"{case}: not refused, the playbook succeeded\n{output}"
    assert not writes, f"{case}: refused only after writing to ARM: {writes}\nmessage: {messages(result)}"
    text = "\n".join(messages(result))
    missing = [f for f in expected(fragments, world) if f not in text]
    assert not missing, f"{case}: the message does not name the field ({missing} not in it):\n{text}"


def test_cases_cover_the_issue():
    """Issue 3's list of malformed inputs, each with at least one case (at least 15 in all)."""
    assert len(CASES) >= 15
    for needed in ("http-issuer", "issuer-over-600-chars", "whitespace-in-issuer", "bad-fic-name",
                   "two-audiences", "empty-subject", "subject-bad-namespace", "21st-fic",
                   "invalid-storage-account-name", "key-file-missing", "key-file-unreadable", "pkcs1-public-key",
                   "unknown-role-name", "scope-outside-subscription", "identity-location-missing",
                   "key-size-1000-in-role"):
        assert needed in CASES
