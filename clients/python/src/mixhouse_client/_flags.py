"""Local evaluation of feature flags, bit for bit as the mixhouse server's `/flags` (and PyPI mixpanel
5.4.1's local evaluator, `mixpanel/flags/local_feature_flags.py`) assigns them, over the definitions
`/flags/definitions` returns.

1. the flag's context value, `context[flag["context"]]`, must be present and truthy, else no answer;
2. a QA tester (`ruleset.test.users[context["distinct_id"]]` naming a variant, matched with casefold) gets
   that variant, `is_qa_tester: true`;
3. rollouts in order; rollout *i* hashes the value (as `str()` gives it) with `key + hash_salt + str(i)`
   (`key + "rollout"` without a salt) and is taken when the hash is below `rollout_percentage` and its
   runtime rule passes;
4. the variant: `variant_override` naming a variant (`is_qa_tester: true`); else the value hashed with
   `key + (hash_salt or "") + "variant"` walks the cumulative splits of the variants sorted by key,
   `variant_splits` replacing splits, falling through to the last.

The hash is FNV-1a 64 over the UTF-8 bytes of value then salt, mod 100, / 100. Runtime rules
(`runtime_evaluation_rule`, JsonLogic) need `json-logic` 0.7.0a0, the library and version the server and
PyPI mixpanel run (the `flags` extra); Mixpanel's `semver_compare` and `datetime_compare` operators are
registered with the SDK's semantics. Rollouts with a `cohort_hash` are the server's alone (cohort
membership lives in its engine): `LocalFlags` asks `/flags` for those flags.

This module is a port of the server's `mixhouse/flags/{evaluate,hashing,rules,model}.py`; the client must
install without the server, so it cannot import them. `tests/test_client_flags.py` holds the two equal."""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from mixhouse_client._exceptions import ConfigurationError

# -- the hash ---------------------------------------------------------------------------------------------

_OFFSET = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def _fnv1a64(data: bytes, h: int = _OFFSET) -> int:
    for byte in data:
        h = ((h ^ byte) * _PRIME) & _MASK
    return h


def normalized_hash(key: str, salt: str) -> float:
    """One of 0.00 .. 0.99: ("abc", "variant") -> 0.72, ("def", "variant") -> 0.21."""
    return (_fnv1a64(key.encode("utf-8") + salt.encode("utf-8")) % 100) / 100.0


class _KeyHasher:
    def __init__(self, key: str) -> None:
        self._state = _fnv1a64(key.encode("utf-8"))

    def __call__(self, salt: bytes) -> float:
        return (_fnv1a64(salt, self._state) % 100) / 100.0


# -- definitions, compiled -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Variant:
    key: str
    value: Any
    split: float


@dataclass(frozen=True)
class _Rollout:
    percentage: float
    rule: dict[str, Any] | None  # string leaves casefolded
    definition: dict[str, str] | None
    override: str | None
    splits: dict[str, float] | None
    cohort: str | None


@dataclass(frozen=True)
class _Flag:
    key: str
    context: str
    experiment_id: str | None
    is_experiment_active: bool | None
    variants: tuple[_Variant, ...]  # sorted by key
    rollouts: tuple[_Rollout, ...]
    test_users: dict[str, str]
    rollout_salts: tuple[bytes, ...]
    variant_salt: bytes

    @property
    def targets_cohort(self) -> bool:
        return any(r.cohort is not None for r in self.rollouts)


def _casefold_keys_and_values(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_casefold_keys_and_values(item) for item in value]
    if isinstance(value, dict):
        return {(k.casefold() if isinstance(k, str) else k): _casefold_keys_and_values(v) for k, v in value.items()}
    return value


def _casefold_leaves(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_casefold_leaves(item) for item in value]
    if isinstance(value, dict):
        return {k: _casefold_leaves(v) for k, v in value.items()}
    return value


def _compile_rollout(r: Mapping[str, Any]) -> _Rollout:
    rule = r.get("runtime_evaluation_rule")
    definition = r.get("runtime_evaluation_definition")
    override = r.get("variant_override")
    splits = r.get("variant_splits")
    cohort = r.get("cohort_hash")
    return _Rollout(
        percentage=float(r["rollout_percentage"]),
        rule=_casefold_leaves(rule) if rule else None,
        definition=dict(definition) if definition else None,
        override=str(override["key"]) if isinstance(override, dict) and "key" in override else None,
        splits={str(k): float(v) for k, v in splits.items()} if splits else None,
        cohort=None if cohort is None else str(cohort),
    )


def compile_flag(doc: Mapping[str, Any]) -> _Flag:
    """One entry of `/flags/definitions` (validated by the server that served it)."""
    ruleset = doc["ruleset"]
    variants = [_Variant(str(v["key"]), v.get("value"), float(v.get("split", 0.0))) for v in ruleset["variants"]]
    rollouts = tuple(_compile_rollout(r) for r in ruleset.get("rollout") or [])
    test = ruleset.get("test") or {}
    key, salt = str(doc["key"]), doc.get("hash_salt")
    return _Flag(
        key=key,
        context=str(doc.get("context") or "distinct_id"),
        experiment_id=doc.get("experiment_id"),
        is_experiment_active=doc.get("is_experiment_active"),
        variants=tuple(sorted(variants, key=lambda v: v.key)),
        rollouts=rollouts,
        test_users=dict(test.get("users") or {}),
        rollout_salts=tuple(
            (key + salt + str(i) if salt is not None else key + "rollout").encode() for i in range(len(rollouts))
        ),
        variant_salt=(key + (salt if salt is not None else "") + "variant").encode(),
    )


# -- runtime rules ---------------------------------------------------------------------------------------

_JSON_LOGIC: ModuleType | None = None


def _json_logic(flag_key: str) -> ModuleType:
    """json-logic, with Mixpanel's two operators registered; a clear error when the extra is missing."""
    global _JSON_LOGIC
    if _JSON_LOGIC is None:
        try:
            import json_logic  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigurationError(
                f"flag {flag_key!r} has a runtime rule (JsonLogic), and evaluating it locally needs json-logic: "
                "pip install 'mixhouse-client[flags]' (or evaluate remotely)"
            ) from exc
        json_logic.operations["semver_compare"] = semver_compare
        json_logic.operations["datetime_compare"] = datetime_compare
        _JSON_LOGIC = json_logic
    return _JSON_LOGIC


def _rule_passes(flag_key: str, rule: dict[str, Any], params: dict[str, Any] | None) -> bool:
    engine = _json_logic(flag_key)  # raise for a missing extra even when the context has no properties
    if params is None:
        return False
    try:
        return bool(engine.jsonLogic(rule, params))
    except Exception:  # a rule that cannot be evaluated excludes, as in the SDK and on the server
        return False


def _definition_passes(definition: dict[str, str], params: dict[str, Any] | None) -> bool:
    if params is None:
        return False
    for key, expected in definition.items():
        if key not in params:
            return False
        actual = params[key]
        if not isinstance(actual, str) or actual.casefold() != expected.casefold():
            return False
    return True


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


# -- evaluation ------------------------------------------------------------------------------------------

_UNSET: Any = object()


class _Request:
    """What the flags of one evaluation share: the context, its values' hash states, its folded properties."""

    def __init__(self, context: Mapping[str, Any]) -> None:
        self.context = context
        self._hashers: dict[str, _KeyHasher] = {}
        self._params: Any = _UNSET

    def hasher(self, text: str) -> _KeyHasher:
        h = self._hashers.get(text)
        if h is None:
            h = self._hashers[text] = _KeyHasher(text)
        return h

    @property
    def params(self) -> dict[str, Any] | None:
        if self._params is _UNSET:
            props = self.context.get("custom_properties")
            self._params = _casefold_keys_and_values(props) if props and isinstance(props, dict) else None
        params: dict[str, Any] | None = self._params
        return params


def _selected(flag: _Flag, v: _Variant, qa: bool | None) -> dict[str, Any]:
    return {
        "variant_key": v.key,
        "variant_value": v.value,
        "experiment_id": flag.experiment_id,
        "is_experiment_active": flag.is_experiment_active,
        "is_qa_tester": qa,
    }


def _matching(flag: _Flag, key: str) -> dict[str, Any] | None:
    folded = key.casefold()
    for v in flag.variants:
        if v.key.casefold() == folded:
            return _selected(flag, v, True)
    return None


def _runtime_ok(flag: _Flag, rollout: _Rollout, req: _Request) -> bool:
    if rollout.rule:
        return _rule_passes(flag.key, rollout.rule, req.params)
    if rollout.definition:
        return _definition_passes(rollout.definition, req.params)
    return True


def evaluate(flag: _Flag, req: _Request) -> dict[str, Any] | None:
    """The variant the context gets (the `/flags` reply's object for the flag), or None. Cohorts are not
    looked at: callers send cohort-targeted flags to the server."""
    raw = req.context.get(flag.context)
    if not raw:
        return None
    value = req.hasher(str(raw))
    distinct_id = req.context.get("distinct_id")
    if flag.test_users and distinct_id and isinstance(distinct_id, str):
        tester = flag.test_users.get(distinct_id)
        if tester and (chosen := _matching(flag, tester)):
            return chosen
    for rollout, salt in zip(flag.rollouts, flag.rollout_salts, strict=True):
        if value(salt) < rollout.percentage and _runtime_ok(flag, rollout, req):
            break
    else:
        return None
    if rollout.override is not None and (chosen := _matching(flag, rollout.override)):
        return chosen
    h = value(flag.variant_salt)
    splits = rollout.splits or {}
    selected = flag.variants[0]
    cumulative = 0.0
    for v in flag.variants:
        selected = v
        cumulative += splits.get(v.key, v.split)
        if h < cumulative:
            break
    return _selected(flag, selected, None)


RemoteFlags = Callable[[Mapping[str, Any], str], dict[str, dict[str, Any]]]


class LocalFlags:
    """Flag definitions held in process: `evaluate(context)` answers as the server's `/flags` would, without
    a request, except for flags with a cohort-targeted rollout, which `remote` (one `/flags?flag_key=`
    request each) answers. `Client.local_flags()` builds one from the server's `/flags/definitions`."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]], remote: RemoteFlags | None = None) -> None:
        flags = [compile_flag(doc) for doc in definitions]
        self._flags = {f.key: f for f in flags}
        self._remote = remote

    @property
    def keys(self) -> list[str]:
        return list(self._flags)

    @property
    def cohort_flags(self) -> frozenset[str]:
        """Keys of the flags only the server can evaluate (a rollout targets a cohort)."""
        return frozenset(k for k, f in self._flags.items() if f.targets_cohort)

    def evaluate(self, context: Mapping[str, Any], flag_key: str | None = None) -> dict[str, dict[str, Any]]:
        """`{flag key: {"variant_key", "variant_value", "experiment_id", "is_experiment_active",
        "is_qa_tester"}}` for the flags the context gets, as `/flags` answers (its `flags` object).

        The context goes through JSON first, as it does on its way to the server, so that a value is hashed
        as the server reads it (a tuple as a list, `1e16` as `1e+16`); what JSON cannot carry raises
        `TypeError`, as `Client.flags` does."""
        context = json.loads(json.dumps(dict(context), ensure_ascii=False))
        distinct_id = context.get("distinct_id")
        if not isinstance(distinct_id, str) or not distinct_id:
            raise ValueError("distinct_id must be provided in evalContext as a string")
        if flag_key is not None:
            flag = self._flags.get(flag_key)
            chosen = [flag] if flag is not None else []
        else:
            chosen = list(self._flags.values())
        req = _Request(context)
        out: dict[str, dict[str, Any]] = {}
        for flag in chosen:
            if flag.targets_cohort:
                if self._remote is None:
                    raise ConfigurationError(
                        f"flag {flag.key!r} targets a cohort: only the server can evaluate it (use Client.local_flags())"
                    )
                out.update(self._remote(context, flag.key))
                continue
            selected = evaluate(flag, req)
            if selected is not None:
                out[flag.key] = selected
        return out
