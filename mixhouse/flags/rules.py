"""Runtime rules: a rollout's `runtime_evaluation_rule` (JsonLogic) or its legacy
`runtime_evaluation_definition` (exact matches), read against the context's `custom_properties`.

The rule runs on `json-logic` 0.7.0a0, the very library (and version) PyPI `mixpanel` pins for its local
evaluator, so that every operator, coercion and corner case (`"1" == 1`, `in` on a missing var, ...)
answers as it does in the SDK. Mixpanel's two extra operators, `semver_compare` and `datetime_compare`,
are registered here with the SDK's semantics (mixpanel-python `flags/custom_operators.py`, Apache-2.0).

Case folding, as the SDK does it: every key and string value of the properties is casefolded, and every
string leaf of the rule (not its keys, so operator names stay intact). Missing or non-object
`custom_properties` fail a rule. Any error inside a rule fails that rule."""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from typing import Any

import json_logic  # type: ignore[import-untyped]


def casefold_keys_and_values(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [casefold_keys_and_values(item) for item in value]
    if isinstance(value, dict):
        return {(k.casefold() if isinstance(k, str) else k): casefold_keys_and_values(v) for k, v in value.items()}
    return value


def casefold_leaves(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [casefold_leaves(item) for item in value]
    if isinstance(value, dict):
        return {k: casefold_leaves(v) for k, v in value.items()}
    return value


def runtime_parameters(context: dict[str, Any]) -> dict[str, Any] | None:
    props = context.get("custom_properties")
    if not props or not isinstance(props, dict):
        return None
    folded: dict[str, Any] = casefold_keys_and_values(props)
    return folded


def rule_passes(folded_rule: dict[str, Any], params: dict[str, Any] | None) -> bool:
    """`folded_rule`: the rule after casefold_leaves; `params`: runtime_parameters(context)."""
    if params is None:
        return False
    try:
        return bool(json_logic.jsonLogic(folded_rule, params))
    except Exception:  # a rule that cannot be evaluated excludes, as in the SDK
        return False


def definition_passes(definition: dict[str, str], params: dict[str, Any] | None) -> bool:
    """Legacy exact-match map. The SDK folds the properties' keys but not the definition's, so an
    upper-case key in a definition never matches; kept as is."""
    if params is None:
        return False
    for key, expected in definition.items():
        if key not in params:
            return False
        actual = params[key]
        if not isinstance(actual, str) or actual.casefold() != expected.casefold():
            return False
    return True


# -- Mixpanel's custom operators ------------------------------------------------------------------------

_MAX_EPOCH_MS = 2**63
_MAX_SEMVER_LENGTH = 256
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_RFC3339_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_COMPARATORS: dict[str, Callable[[int], bool]] = {
    "===": lambda c: c == 0,
    "!==": lambda c: c != 0,
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _matches(cmp: int, symbol: str) -> bool:
    predicate = _COMPARATORS.get(symbol)
    return predicate(cmp) if predicate is not None else False


def _normalize_semver(value: str) -> str:
    value = value.strip()
    if value[:1] in ("v", "V"):
        value = value[1:]
    cut = len(value)
    for sep in ("-", "+"):
        i = value.find(sep)
        if i != -1 and i < cut:
            cut = i
    parts = value[:cut].split(".")
    while len(parts) < 3:
        parts.append("0")
    return ".".join(parts) + value[cut:]


def _numeric(identifier: str) -> bool:
    return identifier != "" and all("0" <= ch <= "9" for ch in identifier)


def _cmp_numeric(a: str, b: str) -> int:
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    return (a > b) - (a < b)


def _cmp_identifier(a: str, b: str) -> int:
    an, bn = _numeric(a), _numeric(b)
    if an and bn:
        return _cmp_numeric(a, b)
    if an:
        return -1
    if bn:
        return 1
    return (a > b) - (a < b)


def _split_semver(version: str) -> tuple[list[str], list[str]]:
    plus = version.find("+")
    if plus != -1:
        version = version[:plus]
    dash = version.find("-")
    if dash == -1:
        return version.split("."), []
    return version[:dash].split("."), version[dash + 1 :].split(".")


def _cmp_semver(a: str, b: str) -> int:
    a_core, a_pre = _split_semver(a)
    b_core, b_pre = _split_semver(b)
    for x, y in zip(a_core, b_core, strict=False):
        if r := _cmp_numeric(x, y):
            return r
    if not a_pre and not b_pre:
        return 0
    if not a_pre:
        return 1
    if not b_pre:
        return -1
    for x, y in zip(a_pre, b_pre, strict=False):
        if r := _cmp_identifier(x, y):
            return r
    return (len(a_pre) > len(b_pre)) - (len(a_pre) < len(b_pre))


def semver_compare(*values: Any) -> bool:
    if len(values) != 3:
        return False
    actual, symbol, target = values
    if not isinstance(symbol, str) or not isinstance(actual, str) or not isinstance(target, str):
        return False
    if len(actual) > _MAX_SEMVER_LENGTH or len(target) > _MAX_SEMVER_LENGTH:
        return False
    a, t = _normalize_semver(actual), _normalize_semver(target)
    if not _SEMVER_RE.match(a) or not _SEMVER_RE.match(t):
        return False
    return _matches(_cmp_semver(a, t), symbol)


def _offset_seconds(offset: str) -> int | None:
    if offset == "Z":
        return 0
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    if hours > 23 or minutes > 59:
        return None
    seconds = hours * 3600 + minutes * 60
    return -seconds if offset[0] == "-" else seconds


def _rfc3339_seconds(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    fields = _RFC3339_RE.match(value.strip().upper())
    if not fields:
        return None
    year, month, day, hour, minute, second = (int(fields.group(i)) for i in range(1, 7))
    offset = _offset_seconds(fields.group(7))
    if offset is None:
        return None
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        return None
    return int((moment - _EPOCH).total_seconds()) - offset


def _epoch_ms_seconds(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    ms = int(value)
    if abs(ms) >= _MAX_EPOCH_MS:
        return None
    magnitude = abs(ms) // 1000
    return -magnitude if ms < 0 else magnitude


def datetime_compare(*values: Any) -> bool:
    if len(values) != 3:
        return False
    actual, symbol, target = values
    if not isinstance(symbol, str):
        return False
    a, t = _rfc3339_seconds(actual), _epoch_ms_seconds(target)
    if a is None or t is None:
        return False
    return _matches(a - t, symbol)


json_logic.operations["semver_compare"] = semver_compare
json_logic.operations["datetime_compare"] = datetime_compare
