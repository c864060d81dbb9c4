"""The shared comparator: changed and diff from one DifferenceTracker."""

from __future__ import annotations

import pytest

from ansible_collections.arcwi.workload_identity.plugins.module_utils._diff import (
    DifferenceTracker,
    compare,
    values_equal,
)

FIC = {
    "issuer": "https://issuer.test/",
    "subject": "system:serviceaccount:ns:sa",
    "audiences": ["api://AzureADTokenExchange"],
}


def test_equal_states_are_unchanged():
    tracker = compare(dict(FIC), dict(FIC), set_keys={"audiences"})
    assert not tracker.changed and tracker.empty and not tracker
    assert tracker.diff() == {"before": {}, "after": {}}


def test_missing_resource_makes_every_desired_value_a_difference():
    tracker = compare(FIC, None)
    assert tracker.changed
    assert tracker.differences == ["issuer", "subject", "audiences"]
    assert tracker.diff() == {"before": {"issuer": None, "subject": None, "audiences": None}, "after": FIC}
    assert tracker.apply(None) == FIC


@pytest.mark.parametrize("desired, actual, set_keys, changed", [
    (["a", "b"], ["b", "a"], {"audiences"}, False),
    (["a", "b"], ["b", "a"], set(), True),
    (["a"], ["a", "a"], {"audiences"}, False),
    (["a"], ["a", "b"], {"audiences"}, True),
    (["api://AzureADTokenExchange"], ["api://azureadtokenexchange"], {"audiences"}, True),
    (["a", "b"], ["a", "b"], set(), False),
    (["a"], [], {"audiences"}, True),
])
def test_audiences_compared_as_sets_when_asked(desired, actual, set_keys, changed):
    tracker = compare({"audiences": desired}, {"audiences": actual}, set_keys=set_keys)
    assert tracker.changed is changed
    assert tracker.has_difference_for("audiences") is changed


def test_strings_are_case_sensitive_unless_casefolded():
    desired, actual = {"subject": "system:serviceaccount:NS:sa"}, {"subject": "system:serviceaccount:ns:sa"}
    assert compare(desired, actual).changed
    assert not compare(desired, actual, casefold_keys={"subject"}).changed


def test_none_means_not_specified_and_extra_actual_keys_are_ignored():
    actual = dict(FIC, clientId="c", principalId="p")
    assert not compare({"issuer": FIC["issuer"], "subject": None}, actual).changed


def test_nested_dicts_are_compared_by_path_and_diff_is_nested():
    desired = {"location": "westeurope", "tags": {"owner": "me", "env": "prod"}, "properties": {"issuer": "https://new/"}}
    actual = {"location": "westeurope", "tags": {"owner": "me", "env": "dev", "extra": "x"},
              "properties": {"issuer": "https://old/", "subject": "s"}}
    tracker = compare(desired, actual)
    assert tracker.differences == ["tags.env", "properties.issuer"]
    assert tracker.has_difference_for("tags") and tracker.has_difference_for(("properties", "issuer"))
    assert not tracker.has_difference_for("location")
    before, after = tracker.get_before_after()
    assert before == {"tags": {"env": "dev"}, "properties": {"issuer": "https://old/"}}
    assert after == {"tags": {"env": "prod"}, "properties": {"issuer": "https://new/"}}


def test_set_keys_by_dotted_path():
    desired = {"properties": {"audiences": ["b", "a"]}}
    actual = {"properties": {"audiences": ["a", "b"]}}
    assert not compare(desired, actual, set_keys={"properties.audiences"}).changed
    assert compare(desired, actual, set_keys={"other.audiences"}).changed


def test_apply_predicts_the_state_for_check_mode_without_touching_actual():
    actual = {"issuer": "https://old/", "subject": "s", "audiences": ["x"], "clientId": "c"}
    tracker = compare(FIC, actual, set_keys={"audiences"})
    predicted = tracker.apply(actual)
    assert predicted == dict(FIC, clientId="c")
    assert actual["issuer"] == "https://old/"  # not mutated


def test_full_state_diff():
    actual = {"issuer": "https://old/", "subject": FIC["subject"], "audiences": FIC["audiences"], "clientId": "c"}
    tracker = compare(FIC, actual)
    assert tracker.diff(actual) == {"before": actual, "after": dict(actual, issuer=FIC["issuer"])}
    assert tracker.diff(None, {"x": 1}) == {"before": {}, "after": {"x": 1}}


def test_keys_with_dots_stay_one_key():
    tracker = compare({"tags": {"kubernetes.io/name": "a"}}, {"tags": {"kubernetes.io/name": "b"}})
    before, after = tracker.get_before_after()
    assert after == {"tags": {"kubernetes.io/name": "a"}}


def test_merge_and_manual_add():
    first, second = DifferenceTracker(), DifferenceTracker()
    first.add("identity.location", "westus", "westeurope")
    second.add(("fic", "issuer"), "a", "b")
    first.merge(second)
    assert first.differences == ["identity.location", "fic.issuer"]
    assert first.get_before_after() == ({"identity": {"location": "westus"}, "fic": {"issuer": "a"}},
                                        {"identity": {"location": "westeurope"}, "fic": {"issuer": "b"}})


@pytest.mark.parametrize("want, have, as_set, equal", [
    (True, 1, False, False),
    (1, 1.0, False, True),
    ([{"a": 1}, {"b": 2}], [{"b": 2}, {"a": 1}], True, True),
    ([{"a": 1}], [{"a": 2}], True, False),
    ({"a": [1, 2]}, {"a": [1, 2]}, False, True),
    ({"a": 1}, {"a": 1, "b": 2}, False, False),
    ("x", None, False, False),
])
def test_values_equal(want, have, as_set, equal):
    assert values_equal(want, have, as_set=as_set) is equal
