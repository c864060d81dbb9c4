# Copyright (c) arcwi.workload_identity contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private module_utils of arcwi.workload_identity: private, may change without notice.
# Not for use outside this collection.
"""The one comparator of the collection: desired vs actual -> differences, changed, diff.

``changed`` and the diff come from the same DifferenceTracker (the community.docker pattern), so
they cannot disagree. Typical use in an ensure-function::

    tracker = compare(desired, actual, set_keys={"audiences"})
    if tracker.changed and not check_mode:
        actual = service.update(...)
    result = dict(changed=tracker.changed, identity=tracker.apply(actual) if check_mode else actual)
    if diff_mode:
        result["diff"] = tracker.diff()

Semantics of compare():
* only keys present in ``desired`` with a value other than None are compared (None means "not
  specified, keep what is there"); keys only in ``actual`` are ignored;
* nested dicts are compared key by key with the same rule (paths such as ``properties.issuer``);
* lists are ordered unless their key (leaf name or dotted path) is in ``set_keys``: then they are
  compared as sets (order and duplicates ignored), e.g. a federated credential's audiences;
* strings compare exactly (case-sensitive) unless the key is in ``casefold_keys``;
* ``actual=None`` (the resource does not exist) makes every desired value a difference.
"""

from __future__ import annotations

import copy
import json

_MISSING = object()


class DifferenceTracker:
    """Records (path, before, after) differences; the source of ``changed`` and of the diff."""

    def __init__(self) -> None:
        self._entries: list = []

    def add(self, path, before=None, after=None) -> None:
        """Record that ``path`` (a dotted string or a tuple of keys) goes from ``before`` to ``after``."""
        self._entries.append((_as_path(path), before, after))

    def merge(self, other: DifferenceTracker) -> None:
        self._entries.extend(other._entries)  # pylint: disable=protected-access

    @property
    def changed(self) -> bool:
        return bool(self._entries)

    @property
    def empty(self) -> bool:
        return not self._entries

    def __bool__(self) -> bool:
        return self.changed

    @property
    def differences(self) -> list:
        """Dotted names of what differs, in comparison order (for messages and tests)."""
        return [".".join(str(part) for part in entry[0]) for entry in self._entries]

    def has_difference_for(self, path) -> bool:
        wanted = _as_path(path)
        return any(entry[0][:len(wanted)] == wanted for entry in self._entries)

    def get_before_after(self) -> tuple:
        """Nested dicts holding only what differs: (before, after)."""
        before, after = {}, {}
        for path, old, new in self._entries:
            _set_path(before, path, copy.deepcopy(old))
            _set_path(after, path, copy.deepcopy(new))
        return before, after

    def diff(self, before_state=None, after_state=None) -> dict:
        """Ansible's diff: full states when given (``after_state`` defaults to ``apply(before_state)``),
        else only the differing parts."""
        if before_state is None and after_state is None:
            before, after = self.get_before_after()
            return {"before": before, "after": after}
        if after_state is None:
            after_state = self.apply(before_state)
        return {"before": before_state or {}, "after": after_state}

    def apply(self, state) -> dict:
        """``state`` (the actual one, or None) with every difference applied: the predicted state,
        for check mode."""
        result = copy.deepcopy(state) if state else {}
        for path, unused_before, new in self._entries:
            _set_path(result, path, copy.deepcopy(new))
        return result


def compare(desired, actual, set_keys=(), casefold_keys=(), tracker: DifferenceTracker | None = None,
            _prefix: tuple = ()) -> DifferenceTracker:
    """Compare ``desired`` with ``actual`` (see the module docstring); returns the tracker."""
    tracker = DifferenceTracker() if tracker is None else tracker
    set_keys, casefold_keys = frozenset(set_keys), frozenset(casefold_keys)
    for key, want in desired.items():
        if want is None:
            continue
        path = _prefix + (key,)
        have = actual.get(key, _MISSING) if isinstance(actual, dict) else _MISSING
        if isinstance(want, dict) and isinstance(have, dict):
            compare(want, have, set_keys, casefold_keys, tracker, path)
            continue
        if have is _MISSING or not values_equal(want, have, as_set=_matches(path, set_keys),
                                                casefold=_matches(path, casefold_keys)):
            tracker.add(path, None if have is _MISSING else have, want)
    return tracker


def values_equal(want, have, as_set: bool = False, casefold: bool = False) -> bool:
    """Equality used by compare(): sets for lists when ``as_set``, casefolded strings when ``casefold``."""
    if casefold:
        want, have = _casefold(want), _casefold(have)
    if as_set and isinstance(want, (list, tuple, set, frozenset)) and isinstance(have, (list, tuple, set, frozenset)):
        return {_hashable(v) for v in want} == {_hashable(v) for v in have}
    if isinstance(want, (list, tuple)) and isinstance(have, (list, tuple)):
        return len(want) == len(have) and all(values_equal(w, h) for w, h in zip(want, have))
    if isinstance(want, dict) and isinstance(have, dict):
        return want.keys() == have.keys() and all(values_equal(want[k], have[k]) for k in want)
    if isinstance(want, bool) or isinstance(have, bool):
        return type(want) is type(have) and want == have
    return want == have


def _casefold(value):
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_casefold(v) for v in value]
    return value


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _matches(path: tuple, keys: frozenset) -> bool:
    return bool(keys) and (str(path[-1]) in keys or ".".join(str(p) for p in path) in keys)


def _as_path(path) -> tuple:
    return tuple(path.split(".")) if isinstance(path, str) else tuple(path)


def _set_path(target: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = target[key] = {}
        target = child
    target[path[-1]] = value
