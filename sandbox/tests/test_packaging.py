"""The collection as users get it: `ansible-galaxy collection build` makes the artifact, which installs
into an empty collections path; from there the playbooks run by FQCN (`arcwi.workload_identity.site`,
`arcwi.workload_identity.teardown`) against the sandbox, outside this checkout and its ansible.cfg.

Sources: docs.ansible.com "Developing collections" (build, build_ignore, install from a tarball) and
"Using collections" (playbooks in a collection's playbooks/ directory run as
`ansible-playbook namespace.collection.playbook`, ansible-core 2.11 and later).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import yaml

from .conftest import REPO, needs_binaries

BIN = Path(sys.executable).parent


def _galaxy(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    run = subprocess.run([str(BIN / "ansible-galaxy"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


@needs_binaries("kube-apiserver", "etcd", "kwok", "helm", "azure-wi-webhook")
def test_built_artifact_installs_and_runs_its_playbooks_by_fqcn(sandbox, tmp_path):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    # outside the checkout: no ansible.cfg, no collections path pointing back at the repository
    # (nor a PYTHONPATH: tests/run_all.py puts a link to the checkout on it, which ansible also searches)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(sandbox.env, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_HOME=str(tmp_path / "home"))
    _galaxy("collection", "build", str(REPO), "--output-path", str(tmp_path / "dist"), cwd=tmp_path, env=env)
    artifact = tmp_path / "dist" / f"arcwi-workload_identity-{version}.tar.gz"
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    for needed in ("plugins/modules/federated_credential.py", "plugins/module_utils/_azure.py",
                   "roles/workload_identity/tasks/federation.yml", "playbooks/site.yml", "playbooks/teardown.yml",
                   "meta/runtime.yml", "MANIFEST.json", "FILES.json"):
        assert needed in names, f"{needed} is not in the artifact"
    for excluded in ("sandbox/", ".state/", ".venv/", ".cache/", "tests/output/", "bench/"):
        assert not [n for n in names if n.startswith(excluded)], f"{excluded} was packaged"

    _galaxy("collection", "install", str(artifact), "-p", str(tmp_path / "collections"), "--no-deps",
            cwd=tmp_path, env=env)
    listed = _galaxy("collection", "list", "arcwi.workload_identity", "--format", "json", cwd=tmp_path, env=env)
    assert str(tmp_path / "collections" / "ansible_collections") in json.loads(listed.stdout)

    suffix = uuid.uuid4().hex[:6]
    variables = {"kind_cluster_name": f"pkg-{suffix}", "identity_resource_group": f"rg-pkg-{suffix}",
                 "identity_name": f"id-pkg-{suffix}", "oidc_issuer_name": f"pkg{suffix}", "arc_enabled": False,
                 "kind_cluster_kubeconfig": str(tmp_path / "kubeconfig")}

    def playbook(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "sandbox"),
                               "-e", json.dumps(variables), f"arcwi.workload_identity.{name}"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)

    try:
        site = playbook("site")
        assert site.returncode == 0, site.stdout[-4000:] + site.stderr[-2000:]
        # the roles ran from the installed copy (include_tasks prints the file it included)
        installed = str(tmp_path / "collections" / "ansible_collections" / "arcwi" / "workload_identity" / "roles")
        assert f"included: {installed}/identity/tasks/name.yml" in site.stdout, site.stdout[-3000:]
        assert f"{REPO}/roles/" not in site.stdout
    finally:
        down = playbook("teardown")
    assert down.returncode == 0, down.stdout[-4000:] + down.stderr[-2000:]


def _requirement_lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def test_execution_environment_context_builds_and_introspects_to_the_collection_files(tmp_path):
    """ansible-builder (no container runtime needed for these two steps): `create` writes the build context
    from execution-environment.yml, and `introspect` reads the installed collection's
    meta/execution-environment.yml the way the image build does, yielding exactly requirements.txt
    and bindep.txt. Source: ansible-builder 3.x docs (definition version 3, `create`, `introspect`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    _galaxy("collection", "build", str(REPO), "--output-path", str(tmp_path / "dist"), cwd=tmp_path, env=env)
    for name in ("execution-environment.yml", "requirements.yml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    create = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml",
                             "-c", "context", "--output-filename", "Containerfile"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert create.returncode == 0, create.stdout + create.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert (tmp_path / "context" / "_build" / "arcwi" / f"arcwi-workload_identity-{version}.tar.gz").is_file()
    assert "ansible-galaxy collection install /tmp/arcwi-dist/arcwi-workload_identity-" in containerfile
    assert "introspect" in containerfile and 'sha256sum -c' in containerfile
    # the galaxy stage installs kubernetes.core and community.crypto from the copied requirements.yml
    galaxy = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())
    assert {c["name"] for c in galaxy["collections"]} >= {"kubernetes.core", "community.crypto"}

    _galaxy("collection", "install", str(tmp_path / "dist" / f"arcwi-workload_identity-{version}.tar.gz"),
            "-p", str(tmp_path / "collections"), "--no-deps", cwd=tmp_path, env=env)
    introspect = subprocess.run([str(BIN / "ansible-builder"), "introspect", "--sanitize", str(tmp_path / "collections")],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert introspect.returncode == 0, introspect.stdout + introspect.stderr
    found = yaml.safe_load(introspect.stdout)

    def strip(entries):
        return [e.split("  # from collection", 1)[0].strip() for e in entries]

    assert strip(found["python"]) == _requirement_lines(REPO / "requirements.txt")
    assert strip(found["system"]) == _requirement_lines(REPO / "bindep.txt")
