#!/usr/bin/env python3
"""Run the collection's test stages: sanity, docs, unit, sandbox, integration, molecule.

Usage (from `make test`): .venv/bin/python tests/run_all.py [sanity|docs|unit|sandbox|integration|molecule ...]
No argument runs all of them, in that order. Prints one summary line per stage and exits non-zero if any
failed.

sanity   `ansible-test sanity --venv` on a copy of the collection parts laid out as
         <tmp>/ansible_collections/arcwi/workload_identity (sandbox/ and bench/ are not part of the
         collection and stay out). ansible-test's --venv mode bootstraps pip in each venv from
         ~/.ansible/test/cache/get_pip_<version>.py, normally downloaded from ci-files.testing.ansible.com
         (not reachable here); this script writes an ensurepip-based stand-in there first.
unit     pytest on tests/unit with `ansible_collections.arcwi.workload_identity` importable through a
         symlink on PYTHONPATH. Chosen over `ansible-test units --venv` because it runs with the
         SDKs already pinned in .venv: no per-run venv built from PyPI, so it works offline after
         `make setup` and takes seconds. The tests are still laid out for `ansible-test units`.
sandbox  pytest on sandbox/tests (the tests start the sandbox themselves through a fixture).
docs     antsibull-docs: `lint-collection-docs --plugin-docs` on a copy of the collection (module and
         role documentation, argument specs, references), then the collection's RST docs built into
         .cache/docs (`make docs` runs this stage); antsibull-changelog lint on changelogs/.
integration
         The integration targets under tests/integration/targets against the sandbox: every target whose
         aliases say `sandbox`, plus those that say `offline` (jwks_generate: no Azure at all). It runs
         `python -m sandbox up` (a no-op when it runs; stopped again afterwards only if this stage started
         it), exports the variables of `python -m sandbox env`, and runs each target with ansible-playbook
         and a two-task wrapper playbook that includes the target as a role (ANSIBLE_ROLES_PATH = the
         targets directory, so `needs/target/setup_sandbox` resolves too; ANSIBLE_COLLECTIONS_PATH = a
         temporary tree whose arcwi/workload_identity is a symlink to this checkout, so `make setup`'s
         .cache/collections is not needed). One ansible-playbook per target: a failing target does not
         hide the others, and each gets its own log in tests/output/integration/<target>.log (printed
         in full when it fails). The sandbox's ports and state directory come from the ARCWI_SANDBOX_*
         variables of the calling environment, as for every `python -m sandbox` command.
         Not `ansible-test integration --local`: it runs ansible-playbook with a filtered environment
         (PATH, HOME and a few more), so the sandbox variables (ARCWI_CLOUD_METADATA_URL, AZURE_*,
         REQUESTS_CA_BUNDLE, which the modules' TLS verification needs) never reach the targets; passing
         them would mean an integration_config.yml written per run plus `environment:` in every target.
         Runs after the sandbox stage: the emulators' own tests come first, so an emulator defect shows
         up as one rather than as a failure of a module's target.

molecule `molecule test --all` (extensions/molecule: the identity and oidc_issuer roles on localhost
         against the sandbox; converge, idempotence, verify, cleanup). Exports the variables of
         `python -m sandbox env`; Molecule's `default` scenario starts the sandbox if it is not running
         (and stops it again in that case only). Log in tests/output/molecule/molecule.log.

pytest exit code 5 (no tests collected) counts as a failure in every stage: each stage owns tests,
so collecting none means the stage is misconfigured, not that there is nothing to check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "arcwi"
NAME = "workload_identity"
STAGES = ("sanity", "docs", "unit", "sandbox", "integration")

# What goes into the collection tree that ansible-test sees (mirrors galaxy.yml's build_ignore the other
# way round: only collection content, never sandbox/, bench/, .ci/, Makefile, virtualenvs or caches).
COLLECTION_PARTS = (
    "galaxy.yml",
    "meta",
    "plugins",
    "roles",
    "playbooks",
    "tests/unit",
    "tests/integration",
    "tests/sanity",
    "tests/config.yml",
    "docs",
    "changelogs",
    "README.md",
    "extensions",
    "LICENSE",
    "COPYING",
)
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", "output"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".retry")

# Sanity tests skipped, each with its reason. None: every sanity test of ansible-test 2.19 runs. None
# needs the network once its venv exists (pip installs from PyPI on the first run only), none needs
# docker with --venv. pslint and shellcheck skip themselves with a warning when they have targets but
# pwsh / shellcheck are not installed, and are silent without targets (we ship no PowerShell).
SANITY_SKIPS: dict[str, str] = {}

PIP_STAND_IN = '''\
"""Offline stand-in for get-pip.py, written by tests/run_all.py (arcwi.workload_identity).

ansible-test --venv bootstraps pip in every virtual environment it creates by running
~/.ansible/test/cache/get_pip_<version>.py, which it downloads from ci-files.testing.ansible.com.
That host is not reachable here, so this file takes its place: it installs the pip that ships with
Python (ensurepip), then lets that pip install the requested version. ensurepip ignores every
PIP_* setting (find-links, cert, index), so the second step runs with the environment as it was.
"""

import os
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel", "--no-pip")


def main():
    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                   check=True, stdout=subprocess.DEVNULL)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    rc = subprocess.run([sys.executable, "-m", "pip", "install"] + args, env=env).returncode
    if rc == 0 and "--no-setuptools" in sys.argv:
        # get-pip.py leaves setuptools out on request; ensurepip (Python < 3.12) always installs it
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"],
                       env=env, stderr=subprocess.DEVNULL)
    sys.exit(rc)


if __name__ == "__main__":
    main()
'''


def log(message: str) -> None:
    print(f"run_all: {message}", flush=True)


def bin_path(name: str) -> str:
    """A tool next to this interpreter (the project venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def ansible_test_pip_version() -> str:
    """The pip version ansible-test bootstraps into its venvs (get_venv_packages in its source)."""
    import ansible_test  # the package ships with ansible-core

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", source.read_text())
    if not match:
        raise RuntimeError(f"cannot find ansible-test's pip version in {source}")
    return match.group(1)


def ensure_pip_stand_in() -> Path:
    version = ansible_test_pip_version()
    path = Path("~/.ansible/test/cache").expanduser() / f"get_pip_{version.replace('.', '_')}.py"
    if not path.exists() or path.read_text() != PIP_STAND_IN:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and "arcwi.workload_identity" not in path.read_text():
            log(f"keeping existing pip bootstrap script {path} (not ours)")
            return path
        path.write_text(PIP_STAND_IN)
        log(f"wrote pip bootstrap stand-in {path}")
    return path


def collection_files() -> list[str]:
    """Files of the collection parts, relative to ROOT: what git would commit, else a directory walk."""
    parts = [part for part in COLLECTION_PARTS if (ROOT / part).exists() or (ROOT / part).is_symlink()]
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *parts],
            cwd=ROOT, check=True, capture_output=True,
        ).stdout.decode()
        # deleted-but-not-committed files are still listed by --cached
        return sorted(path for path in out.split("\0") if path and os.path.lexists(ROOT / path))
    files = []
    for part in parts:
        top = ROOT / part
        if not top.is_dir():
            files.append(part)
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            rel = Path(dirpath).relative_to(ROOT)
            files.extend(str(rel / f) for f in filenames if not f.endswith(SKIP_SUFFIXES))
    return sorted(files)


def build_collection_copy(base: Path) -> Path:
    """Copy the collection parts to base/ansible_collections/arcwi/workload_identity.

    A copy rather than a tree of file symlinks: ansible-test's `symlinks` sanity test rejects symlinks
    that point outside the content tree, and its file walker does not follow directory symlinks.
    Symlinks inside the repository are copied as symlinks so that test still sees them.
    """
    dest = base / "ansible_collections" / NAMESPACE / NAME
    dest.mkdir(parents=True)
    for rel in collection_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target, follow_symlinks=False)
    # results (junit, bot json) land in the repository's git-ignored tests/output
    (ROOT / "tests" / "output").mkdir(parents=True, exist_ok=True)
    (dest / "tests").mkdir(exist_ok=True)
    (dest / "tests" / "output").symlink_to(ROOT / "tests" / "output")
    return dest


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> int:
    log("$ " + " ".join(cmd) + f"    (in {cwd})")
    return subprocess.run(cmd, cwd=cwd, env=env).returncode


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def stage_sanity(tmp: Path) -> int:
    ensure_pip_stand_in()
    collection = build_collection_copy(tmp / "sanity")
    cmd = [bin_path("ansible-test"), "sanity", "--venv", "--python", python_version(), "--color", "no"]
    for test in sorted(SANITY_SKIPS):
        cmd += ["--skip-test", test]
    env = dict(os.environ)
    # ansible-test looks for python<version> on PATH; prefer the project venv's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return run(cmd, collection, env)


def pytest_env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def collection_link(base: Path) -> Path:
    """base/ansible_collections/arcwi/workload_identity -> the repository (for imports only)."""
    link = base / "ansible_collections" / NAMESPACE / NAME
    link.parent.mkdir(parents=True)
    link.symlink_to(ROOT, target_is_directory=True)
    return base


def stage_unit(tmp: Path) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT / "tests" / "unit"),
           str(ROOT / "tests" / "unit")]
    return run(cmd, ROOT, pytest_env(collection_link(tmp / "unit")))


def stage_sandbox(tmp: Path) -> int:
    # the sandbox tests that exercise plugins/module_utils import it by its collection name
    cmd = [sys.executable, "-m", "pytest", "sandbox/tests", "-q", "-p", "no:cacheprovider"]
    return run(cmd, ROOT, pytest_env(collection_link(tmp / "sandbox")))


TARGETS_DIR = ROOT / "tests" / "integration" / "targets"
# a target runs in the integration stage when one of its aliases is one of these
INTEGRATION_ALIASES = {"sandbox", "offline"}
SKIP_ALIASES = {"disabled", "unsupported"}

WRAPPER_PLAYBOOK = """\
---
# Written by tests/run_all.py: runs one integration target (a role under tests/integration/targets).
- name: Integration target {{ arcwi_integration_target }}
  hosts: testhost
  gather_facts: false
  tasks:
    - name: Run the target
      ansible.builtin.include_role:
        name: "{{ arcwi_integration_target }}"
"""


def target_aliases(target: Path) -> set[str]:
    path = target / "aliases"
    if not path.is_file():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def integration_targets() -> list[str]:
    names = []
    for target in sorted(TARGETS_DIR.iterdir()):
        aliases = target_aliases(target)
        if aliases & INTEGRATION_ALIASES and not aliases & SKIP_ALIASES and (target / "tasks" / "main.yml").is_file():
            names.append(target.name)
    return names


def sandbox_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=ROOT, capture_output=True, text=True)


def stage_integration(tmp: Path) -> int:

    targets = integration_targets()
    only = os.environ.get("ARCWI_INTEGRATION_TARGETS")  # a developer's comma-separated selection
    if only:
        targets = [t for t in targets if t in only.split(",")]
    if not targets:
        log("integration: no targets with a sandbox or offline alias")
        return 5
    was_running = sandbox_cli("status").returncode == 0
    up = sandbox_cli("up")
    log(f"integration: {(up.stdout + up.stderr).strip()}")
    if up.returncode != 0:
        return up.returncode
    try:
        env = dict(os.environ)
        env.update(json.loads(sandbox_cli("env", "--json").stdout))
        env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(collection_link(tmp / "collections")),
            "ANSIBLE_ROLES_PATH": str(TARGETS_DIR),
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            # the targets that need a cluster find the kind stand-in and the Go binaries through it
            "ARCWI_REPO": str(ROOT),
            "ANSIBLE_NOCOLOR": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        playbook = tmp / "integration.yml"
        playbook.write_text(WRAPPER_PLAYBOOK)
        inventory = tmp / "inventory.ini"
        inventory.write_text(f"testhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
        logs = ROOT / "tests" / "output" / "integration"
        logs.mkdir(parents=True, exist_ok=True)
        failed = []
        for name in targets:
            cmd = [bin_path("ansible-playbook"), "-i", str(inventory), str(playbook),
                   "-e", f"arcwi_integration_target={name}"]
            start = time.monotonic()
            with open(logs / f"{name}.log", "w") as out:
                rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
            text = (logs / f"{name}.log").read_text(errors="replace")
            recap = [line.strip() for line in text.splitlines() if line.startswith("testhost ")]
            log(f"integration: {name:24s} {'ok' if rc == 0 else f'FAILED (exit {rc})':16s} "
                f"{time.monotonic() - start:6.1f}s  {recap[-1] if recap else ''}")
            if rc != 0:
                failed.append(name)
                print(text, flush=True)
        log(f"integration: {len(targets) - len(failed)} of {len(targets)} targets passed"
            + (f"; failed: {', '.join(failed)}" if failed else "") + f" (logs in {logs})")
        return 1 if failed else 0
    finally:
        if not was_running:
            down = sandbox_cli("down")
            log(f"integration: {(down.stdout + down.stderr).strip()} (this stage started it)")


def stage_docs(tmp: Path) -> int:
    collection = build_collection_copy(tmp / "docs")
    env = dict(os.environ)
    # antsibull-docs runs ansible-doc / ansible-galaxy: this venv's, against the copy only
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp / "docs")
    out = ROOT / ".cache" / "docs"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for cmd, cwd in (([bin_path("antsibull-docs"), "lint-collection-docs", "--plugin-docs", "."], collection),
                     ([bin_path("antsibull-docs"), "collection", "--use-current", "--squash-hierarchy",
                       "--dest-dir", str(out), f"{NAMESPACE}.{NAME}"], tmp),
                     ([bin_path("antsibull-changelog"), "lint"], ROOT)):
        rc = run(cmd, cwd, env)
        if rc:
            return rc
    built = {p.name for p in out.glob("*.rst")}
    # a role whose argument_specs.yml does not parse is skipped silently by antsibull-docs: every module
    # and every role must have its page
    expected = {"index.rst"} | {f"{m.stem}_module.rst" for m in (ROOT / "plugins" / "modules").glob("*.py")
                                if not m.name.startswith("_")} | \
               {f"{r.name}_role.rst" for r in (ROOT / "roles").iterdir() if (r / "meta" / "argument_specs.yml").exists()}
    missing = sorted(expected - built)
    log(f"docs: {len(built)} RST pages in {out}" + (f"; missing: {', '.join(missing)}" if missing else ""))
    return 1 if missing else 0


RUNNERS = {"sanity": stage_sanity, "docs": stage_docs, "unit": stage_unit, "sandbox": stage_sandbox,
           "integration": stage_integration}


# ---- molecule stage (self-contained; appended to STAGES and RUNNERS at its end) -----------------
def stage_molecule(tmp: Path) -> int:
    """`molecule test --all` on extensions/molecule with the sandbox's variables exported.

    Molecule's `default` scenario starts the sandbox when it is not running and stops it again in that
    case only; this stage just exports what `python -m sandbox env` prints (the same ARCWI_SANDBOX_*
    variables pick the instance) and puts .venv/bin first on PATH (molecule calls ansible-config and
    ansible-playbook by name). Full log in tests/output/molecule/molecule.log, printed when it fails.
    """
    import json

    del tmp  # molecule keeps its own ephemeral state
    sandbox_env = subprocess.run([sys.executable, "-m", "sandbox", "env", "--json"], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
    env = dict(os.environ)
    env.update(json.loads(sandbox_env.stdout))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    logs = ROOT / "tests" / "output" / "molecule"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [bin_path("molecule"), "test", "--all"]
    log("$ " + " ".join(cmd) + f"    (in {ROOT}; log in {logs / 'molecule.log'})")
    with open(logs / "molecule.log", "w") as out:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    text = (logs / "molecule.log").read_text(errors="replace")
    recap = text.split("SCENARIO RECAP", 1)[1].strip().splitlines() if "SCENARIO RECAP" in text else []
    for line in recap:
        log(f"molecule: {line.strip()}")
    if rc != 0:
        print(text, flush=True)
    return rc


STAGES = (*STAGES, "molecule")
RUNNERS["molecule"] = stage_molecule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("stages", nargs="*", metavar="STAGE",
                        help="sanity, docs, unit, sandbox, integration and/or molecule (default: all, in that order)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    stages = [s for s in STAGES if s in args.stages] if args.stages else list(STAGES)

    results: list[tuple[str, int, float]] = []
    for stage in stages:
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"arcwi-{stage}-") as tmp:
            try:
                rc = RUNNERS[stage](Path(tmp))
            except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
                log(f"{stage}: {exc}")
                rc = 1
        results.append((stage, rc, time.monotonic() - start))

    print()
    for stage, rc, seconds in results:
        outcome = "PASS" if rc == 0 else "FAIL (no tests collected)" if rc == 5 else f"FAIL (exit {rc})"
        print(f"{stage:11s} {outcome:26s} {seconds:7.1f}s", flush=True)
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
