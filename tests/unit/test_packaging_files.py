"""The files execution environments are built from agree with what the modules import.

- requirements.txt names exactly the distributions that own the third-party modules plugins/ imports
  (found through the installed files, so a namespace package like azure.mgmt.resource.locks maps to
  the distribution that really ships it), with minimum versions and no exact pins;
- meta/execution-environment.yml (read by ansible-builder from installed collections) points at
  requirements.txt and bindep.txt, and bindep.txt parses;
- execution-environment.yml and requirements.yml carry galaxy.yml's collection dependencies.
Sources: ansible-builder docs "Execution environment definition" (version 3; collection-level
meta/execution-environment.yml, dependencies python/system/galaxy) and bindep's README (line format).
"""
from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.match(r"[A-Za-z0-9._-]+", line).group(0)
            out[normalise(name)] = line[len(name):].strip()
    return out


def third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in STDLIB and top not in ("ansible", "ansible_collections", "__future__"):
                    found.add(name)
    return found


def owner_index() -> dict[str, str]:
    index = {}
    for dist in md.distributions():
        for file in dist.files or []:
            if str(file).endswith(".py"):
                index[str(Path(dist.locate_file(file)).resolve())] = normalise(dist.metadata["Name"])
    return index


def owners(module: str, index: dict[str, str]) -> set[str]:
    """The distributions that ship a module: one for a regular module or package; for a namespace
    package (azure.mgmt.resource, shared by azure-mgmt-resource and azure-mgmt-resource-locks), every
    distribution with files under it."""
    parts = module.split(".")
    while parts:
        spec = importlib.util.find_spec(".".join(parts))
        if spec is not None:
            if spec.origin and spec.origin.endswith(".py"):
                dist = index.get(str(Path(spec.origin).resolve()))
                if dist:
                    return {dist}
            found = {index[str(p.resolve())] for location in spec.submodule_search_locations or []
                     for p in Path(location).rglob("*.py") if str(p.resolve()) in index}
            if found:
                return found
        parts.pop()
    raise AssertionError(f"no installed distribution ships {module}")


def test_requirements_are_what_the_modules_import_with_minimum_versions_only():
    reqs = requirements()
    index = owner_index()
    shipped = {module: owners(module, index) for module in third_party_imports()}
    missing = {module: sorted(dists) for module, dists in shipped.items() if not dists & set(reqs)}
    assert missing == {}, "imported by plugins/ but no distribution shipping it is in requirements.txt"
    used = set().union(*shipped.values())
    assert sorted(set(reqs) - used) == [], "in requirements.txt but imported by nothing in plugins/"
    for name, spec in reqs.items():
        assert spec.startswith(">="), f"{name}: a minimum version (>=), got {spec!r}"
        assert "==" not in spec, f"{name}: exact pin {spec!r}"


def test_collection_execution_environment_metadata_points_at_existing_files():
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["version"] == 1
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    for line in (ROOT / "bindep.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9.+_-]+( \[[a-z0-9:! -]+\])?", line), f"bindep line: {line!r}"


def test_execution_environment_and_requirements_yml_carry_the_galaxy_dependencies():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    assert ee["dependencies"]["galaxy"] == "requirements.yml"
    collections = {c["name"]: c["version"] for c in
                   yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert collections == galaxy["dependencies"]
    assert "dist" in galaxy["build_ignore"]


@pytest.mark.parametrize("name", ["execution-environment.yml", "requirements.yml", "bindep.txt",
                                  "meta/execution-environment.yml"])
def test_packaged(name):
    """The EE files ship in the artifact (nothing in build_ignore drops them)."""
    ignored = yaml.safe_load((ROOT / "galaxy.yml").read_text())["build_ignore"]
    assert not any(Path(name).match(pattern) or name.startswith(pattern.rstrip("/") + "/") for pattern in ignored)
