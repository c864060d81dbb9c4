# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each role's typed API (meta/argument_specs.yml) and its defaults (defaults/main.yml) stay equal.

Same variable names, same default values (a default that is a Jinja expression is compared as the
same string), defaults of the declared type and within the declared choices, role-prefixed names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COLLECTION = Path(__file__).resolve().parents[2]
ROLES = sorted(path.parents[1] for path in (COLLECTION / "roles").glob("*/tasks/main.yml"))

# argument spec type -> the Python types a YAML default of that type loads as
TYPES = {
    "str": (str,),
    "path": (str,),
    "raw": (object,),
    "bool": (bool,),
    "int": (int,),
    "float": (float, int),
    "list": (list,),
    "dict": (dict,),
}


def _load(path: Path):
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _main_spec(role: Path) -> dict:
    specs = _load(role / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"].get("options") or {}


def _defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (_load(path) or {}) if path.exists() else {}


def _ids(roles):
    return [role.name for role in roles]


def test_there_are_roles():
    assert ROLES, f"no roles found under {COLLECTION / 'roles'}"


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_every_role_has_a_main_entry_point(role):
    path = role / "meta" / "argument_specs.yml"
    assert path.exists(), f"{role.name}: {path.relative_to(COLLECTION)} is missing"
    specs = _load(path)
    assert "main" in (specs or {}).get("argument_specs", {}), f"{role.name}: no `main` entry point"


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_same_variable_names(role):
    spec, defaults = _main_spec(role), _defaults(role)
    # a required option has no default by definition; every other option has one in defaults/main.yml
    optional = {name for name, option in spec.items() if not option.get("required")}
    only_spec = sorted(optional - set(defaults))
    only_defaults = sorted(set(defaults) - set(spec))
    assert not only_spec and not only_defaults, (
        f"{role.name}: options without a value in defaults/main.yml: {only_spec}; "
        f"defaults/main.yml variables missing from meta/argument_specs.yml: {only_defaults}"
    )
    required_with_default = sorted(name for name in defaults if spec.get(name, {}).get("required"))
    assert not required_with_default, f"{role.name}: required options with a default: {required_with_default}"


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_same_default_values(role):
    spec, defaults = _main_spec(role), _defaults(role)
    differ = {
        name: {"argument_specs": option.get("default"), "defaults/main.yml": defaults[name]}
        for name, option in spec.items()
        if name in defaults and option.get("default") != defaults[name]
    }
    assert not differ, f"{role.name}: defaults differ: {differ}"


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_defaults_have_the_declared_type_and_choices(role):
    spec, defaults = _main_spec(role), _defaults(role)
    problems = []
    for name, value in defaults.items():
        option = spec.get(name)
        if option is None:
            continue
        if isinstance(value, str) and "{{" in value:
            continue  # a Jinja expression: its type is known only when it is rendered
        kind = option.get("type", "str")
        if not isinstance(value, TYPES[kind]) or (kind != "bool" and isinstance(value, bool)):
            problems.append(f"{name}: default {value!r} is not of type {kind}")
        if "choices" in option and value not in option["choices"]:
            problems.append(f"{name}: default {value!r} is not one of {option['choices']}")
        if kind == "list" and option.get("options"):
            for element in value:
                unknown = sorted(set(element) - set(option["options"]))
                required = {key for key, sub in option["options"].items() if sub.get("required")}
                missing = sorted(required - set(element))
                if unknown or missing:
                    problems.append(f"{name}: element {element!r} has unknown keys {unknown}, lacks required {missing}")
    assert not problems, f"{role.name}: " + "; ".join(problems)


@pytest.mark.parametrize("role", ROLES, ids=_ids(ROLES))
def test_public_variables_are_role_prefixed(role):
    names = set(_main_spec(role)) | set(_defaults(role))
    unprefixed = sorted(name for name in names if not name.startswith(role.name + "_"))
    assert not unprefixed, f"{role.name}: variables without the `{role.name}_` prefix: {unprefixed}"
