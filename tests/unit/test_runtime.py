"""meta/runtime.yml's `azure` action group lists exactly the modules that take the Azure options."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def azure_modules() -> set[str]:
    found = set()
    for path in (ROOT / "plugins" / "modules").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
                doc = yaml.safe_load(node.value.value)
                if "arcwi.workload_identity.azure" in (doc.get("extends_documentation_fragment") or []):
                    found.add(path.stem)
    return found


def test_azure_action_group_matches_the_modules():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    group = set(runtime["action_groups"]["azure"])
    modules = azure_modules()
    assert modules, "no module uses the azure doc fragment?"
    assert group == modules, f"only in runtime.yml: {sorted(group - modules)}; only in modules: {sorted(modules - group)}"


def test_azure_modules_document_the_action_group():
    for name in azure_modules():
        text = (ROOT / "plugins" / "modules" / f"{name}.py").read_text()
        assert "arcwi.workload_identity.attributes.ACTIONGROUP_AZURE" in text, name
