"""A feature flag as Mixpanel's APIs carry it, validated, and compiled for the evaluator.

The stored form is the App API's flag object (`id`, `key`, `name`, `status`, `context`, `ruleset`,
`hash_salt`, `experiment_id`, ...); `/flags/definitions` shows a subset of it. The ruleset is kept as it
was given (variants in their order); the compiled form sorts variants by key, as the SDKs do when they
load definitions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mixhouse.errors import BadRequest
from mixhouse.flags.rules import casefold_leaves

MAX_KEY_LENGTH = 255
MAX_VARIANTS = 100
MAX_ROLLOUTS = 100
MAX_TEST_USERS = 1000


class Status(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    ARCHIVED = "archived"


class ServingMethod(StrEnum):
    CLIENT = "client"
    SERVER = "server"
    REMOTE_OR_LOCAL = "remote_or_local"
    REMOTE_ONLY = "remote_only"


@dataclass(frozen=True)
class Variant:
    key: str
    value: Any
    is_control: bool
    split: float


@dataclass(frozen=True)
class Rollout:
    percentage: float
    rule: dict[str, Any] | None  # runtime_evaluation_rule (JsonLogic), string leaves casefolded; {} is none
    definition: dict[str, str] | None  # legacy runtime_evaluation_definition
    override: str | None  # variant_override.key
    splits: dict[str, float] | None  # variant_splits
    cohort: str | None  # cohort_hash: a saved cohort of the project, by id


@dataclass(frozen=True)
class Flag:
    """What evaluation needs of one flag."""

    id: str
    key: str
    context: str
    hash_salt: str | None
    experiment_id: str | None
    is_experiment_active: bool | None
    variants: tuple[Variant, ...]  # sorted by key
    rollouts: tuple[Rollout, ...]
    test_users: dict[str, str]  # distinct_id -> variant key
    rollout_salts: tuple[bytes, ...]  # UTF-8 of key + hash_salt + str(i), or key + "rollout" without a salt
    variant_salt: bytes  # UTF-8 of key + (hash_salt or "") + "variant"


def _number(value: Any, where: str, *, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{where} must be a number")
    if value < low or (high is not None and value > high):
        raise BadRequest(f"{where} must be between {low:g} and {high:g}" if high else f"{where} must be >= {low:g}")
    return float(value)


def _text(value: Any, where: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"{where} must be a non-empty string")
    if len(value) > MAX_KEY_LENGTH:
        raise BadRequest(f"{where} must be at most {MAX_KEY_LENGTH} characters")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    return value


def _variants(raw: Any) -> list[Variant]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("ruleset.variants must be a non-empty list")
    if len(raw) > MAX_VARIANTS:
        raise BadRequest(f"ruleset.variants may hold at most {MAX_VARIANTS} variants")
    out: list[Variant] = []
    for i, v in enumerate(raw):
        where = f"ruleset.variants[{i}]"
        v = _object(v, where)
        key = _text(v.get("key"), f"{where}.key")
        if "value" not in v:
            raise BadRequest(f"{where}.value is required")
        is_control = v.get("is_control", False)
        if not isinstance(is_control, bool):
            raise BadRequest(f"{where}.is_control must be a boolean")
        split = _number(v.get("split", 0.0), f"{where}.split", high=1.0)
        out.append(Variant(key, v["value"], is_control, split))
    keys = [v.key for v in out]
    if len(set(keys)) != len(keys):
        raise BadRequest("ruleset.variants: variant keys must be unique")
    return out


def _rollout(raw: Any, i: int, variant_keys: set[str]) -> Rollout:
    where = f"ruleset.rollout[{i}]"
    r = _object(raw, where)
    # 0..1 per Mixpanel's spec; values up to 100 (which mixpanel-python's own tests use) mean "everyone".
    percentage = _number(r.get("rollout_percentage"), f"{where}.rollout_percentage", high=100.0)
    rule = r.get("runtime_evaluation_rule")
    if rule is not None:
        rule = _object(rule, f"{where}.runtime_evaluation_rule")
    definition = r.get("runtime_evaluation_definition")
    if definition is not None:
        definition = _object(definition, f"{where}.runtime_evaluation_definition")
        if not all(isinstance(v, str) for v in definition.values()):
            raise BadRequest(f"{where}.runtime_evaluation_definition values must be strings")
    override = r.get("variant_override")
    override_key = None
    if override is not None:
        override_key = _text(_object(override, f"{where}.variant_override").get("key"), f"{where}.variant_override.key")
    splits = r.get("variant_splits")
    if splits is not None:
        splits = _object(splits, f"{where}.variant_splits")
        splits = {k: _number(v, f"{where}.variant_splits.{k}", high=1.0) for k, v in splits.items()}
        unknown = sorted(set(splits) - variant_keys)
        if unknown:
            raise BadRequest(f"{where}.variant_splits names unknown variants: {', '.join(unknown)}")
    cohort = r.get("cohort_hash")
    if cohort is not None:
        if isinstance(cohort, int) and not isinstance(cohort, bool):
            cohort = str(cohort)
        cohort = _text(cohort, f"{where}.cohort_hash")
    folded = casefold_leaves(rule) if rule else None  # as the SDK folds it before every evaluation
    return Rollout(percentage, folded, definition or None, override_key, splits or None, cohort)


def validate_ruleset(raw: Any) -> dict[str, Any]:
    """The ruleset as given, after checking that the evaluator (and every SDK) can run it, with the fields
    PyPI mixpanel's definition parser requires filled in when left out (`variants[].is_control` false,
    `variants[].split` 0, `rollout` [], `test.users` {}): one flag it cannot parse makes it drop every
    definition of the project."""
    ruleset = _object(raw, "ruleset")
    variants = _variants(ruleset.get("variants"))
    rollouts = ruleset.get("rollout", [])
    if not isinstance(rollouts, list):
        raise BadRequest("ruleset.rollout must be a list")
    if len(rollouts) > MAX_ROLLOUTS:
        raise BadRequest(f"ruleset.rollout may hold at most {MAX_ROLLOUTS} rollouts")
    keys = {v.key for v in variants}
    for i, r in enumerate(rollouts):
        _rollout(r, i, keys)
    test = ruleset.get("test")
    if test is not None:
        users = _object(test, "ruleset.test").get("users", {})
        users = _object(users, "ruleset.test.users")
        if len(users) > MAX_TEST_USERS:
            raise BadRequest(f"ruleset.test.users may hold at most {MAX_TEST_USERS} users")
        if not all(isinstance(v, str) for v in users.values()):
            raise BadRequest("ruleset.test.users maps distinct ids to variant keys (strings)")
        ruleset = {**ruleset, "test": {**test, "users": users}}
    filled = [
        {**v, "is_control": v.get("is_control", False), "split": v.get("split", 0.0)} for v in ruleset["variants"]
    ]
    return {**ruleset, "variants": filled, "rollout": rollouts}


def compile_flag(doc: dict[str, Any]) -> Flag:
    ruleset = doc["ruleset"]
    variants = _variants(ruleset["variants"])
    keys = {v.key for v in variants}
    rollouts = tuple(_rollout(r, i, keys) for i, r in enumerate(ruleset.get("rollout") or []))
    test = ruleset.get("test") or {}
    key, salt = str(doc["key"]), doc.get("hash_salt")
    return Flag(
        id=str(doc["id"]),
        key=key,
        context=str(doc["context"]),
        hash_salt=doc.get("hash_salt"),
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


DEFINITION_FIELDS = (
    "id",
    "name",
    "key",
    "status",
    "project_id",
    "workspace_id",
    "context",
    "experiment_id",
    "is_experiment_active",
    "hash_salt",
    "ruleset",
)


def definition(doc: dict[str, Any]) -> dict[str, Any]:
    """One entry of `/flags/definitions`."""
    return {name: doc.get(name) for name in DEFINITION_FIELDS}
