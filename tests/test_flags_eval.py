"""The evaluator in process, against PyPI mixpanel's own vectors: the FNV-1a test vectors of its
`flags/test_utils.py`, the golden vectors of its custom JsonLogic operators (`flags/test-data/*.json`,
"to ensure logic parity across platforms"), and the validation limits of a flag definition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mixpanel.flags
import pytest

from mixhouse.errors import BadRequest
from mixhouse.flags.evaluate import Request, evaluate
from mixhouse.flags.hashing import KeyHasher, normalized_hash
from mixhouse.flags.model import MAX_ROLLOUTS, MAX_TEST_USERS, MAX_VARIANTS, compile_flag, validate_ruleset
from mixhouse.flags.rules import datetime_compare, semver_compare

VECTORS = Path(mixpanel.flags.__file__).parent / "test-data"


def _vectors(name: str) -> list[list[Any]]:
    rows = json.loads((VECTORS / name).read_text())
    return [r for r in rows if isinstance(r, list)]


def test_fnv1a_vectors() -> None:
    assert normalized_hash("abc", "variant") == 0.72
    assert normalized_hash("def", "variant") == 0.21
    assert KeyHasher("abc")(b"variant") == 0.72 and KeyHasher("ü-id")("sü".encode()) == normalized_hash("ü-id", "sü")


@pytest.mark.parametrize("row", _vectors("semver_compare_tests.json"), ids=str)
def test_semver_golden_vectors(row: list[Any]) -> None:
    *args, want = row
    assert semver_compare(*args) is want


@pytest.mark.parametrize("row", _vectors("datetime_compare_tests.json"), ids=str)
def test_datetime_golden_vectors(row: list[Any]) -> None:
    *args, want = row
    assert datetime_compare(*args) is want


def _doc(ruleset: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "f", "key": "k", "context": "distinct_id", "ruleset": validate_ruleset(ruleset), **extra}


ON = [{"key": "on", "value": True, "is_control": False, "split": 1.0}]


def test_variant_override_reports_a_qa_tester_as_the_sdk_does() -> None:
    flag = compile_flag(
        _doc({"variants": ON, "rollout": [{"rollout_percentage": 1, "variant_override": {"key": "ON"}}]})
    )
    selected = evaluate(flag, Request({"distinct_id": "x"}, None))
    assert selected is not None and (selected.variant_key, selected.is_qa_tester) == ("on", True)


def test_missing_context_value_and_custom_properties() -> None:
    rule = {"rollout_percentage": 1, "runtime_evaluation_rule": {"==": [{"var": "plan"}, "pro"]}}
    flag = compile_flag(_doc({"variants": ON, "rollout": [rule]}, context="device_id"))
    assert evaluate(flag, Request({"distinct_id": "x"}, None)) is None  # no device_id
    assert evaluate(flag, Request({"distinct_id": "x", "device_id": "d"}, None)) is None  # no custom_properties
    ok = Request({"distinct_id": "x", "device_id": "d", "custom_properties": {"PLAN": "Pro"}}, None)
    assert evaluate(flag, ok) is not None


@pytest.mark.parametrize(
    ("ruleset", "message"),
    [
        ({"variants": [], "rollout": []}, "ruleset.variants must be a non-empty list"),
        ({"variants": ON * 2, "rollout": []}, "variant keys must be unique"),
        ({"variants": ON, "rollout": [{"rollout_percentage": 101}]}, "between 0 and 100"),
        ({"variants": ON, "rollout": [{"rollout_percentage": "1"}]}, "must be a number"),
        ({"variants": ON, "rollout": [{"rollout_percentage": 1, "variant_splits": {"x": 1}}]}, "unknown variants: x"),
        ({"variants": ON, "rollout": [{"rollout_percentage": 1, "runtime_evaluation_definition": {"a": 1}}]}, "values must be strings"),
        ({"variants": [{"key": "on", "value": 1, "split": None}], "rollout": []}, "split must be a number"),
        ({"variants": ON, "rollout": [], "test": {"users": {"u": 1}}}, "variant keys (strings)"),
    ],
)  # fmt: skip
def test_invalid_rulesets(ruleset: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_ruleset(ruleset)


def test_limits_at_their_edges() -> None:
    many = [{"key": f"v{i}", "value": i, "split": 0.0} for i in range(MAX_VARIANTS)]
    validate_ruleset({"variants": many, "rollout": [{"rollout_percentage": 1}] * MAX_ROLLOUTS,
                      "test": {"users": {f"u{i}": "v0" for i in range(MAX_TEST_USERS)}}})  # fmt: skip
    with pytest.raises(BadRequest, match="at most"):
        validate_ruleset({"variants": [*many, {"key": "x", "value": 0}], "rollout": []})
    with pytest.raises(BadRequest, match="at most"):
        validate_ruleset({"variants": ON, "rollout": [{"rollout_percentage": 1}] * (MAX_ROLLOUTS + 1)})
    with pytest.raises(BadRequest, match="at most"):
        validate_ruleset(
            {"variants": ON, "rollout": [], "test": {"users": {f"u{i}": "on" for i in range(MAX_TEST_USERS + 1)}}}
        )


def test_fields_the_sdk_requires_are_filled_in() -> None:
    """PyPI mixpanel drops every definition when one lacks `is_control`, `rollout` or `test.users`."""
    from mixpanel.flags.types import ExperimentationFlags

    ruleset = validate_ruleset({"variants": [{"key": "a", "value": 1, "extra": "kept"}], "test": {}})
    assert ruleset == {"variants": [{"key": "a", "value": 1, "extra": "kept", "is_control": False, "split": 0.0}],
                       "rollout": [], "test": {"users": {}}}  # fmt: skip
    flag = {"id": "1", "name": "n", "key": "k", "status": "enabled", "project_id": 1, "context": "distinct_id",
            "ruleset": ruleset}  # fmt: skip
    [parsed] = ExperimentationFlags.from_dict({"flags": [flag]}).flags
    assert parsed.ruleset.variants[0].is_control is False and parsed.ruleset.test is not None
