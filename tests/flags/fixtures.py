"""The flags the SDK tests run: one of each kind the evaluator knows, in the `/flags/definitions` shape
(ids, keys, hash salts as Mixpanel gives them), plus the users and cohort the cohort-targeted flag reads."""

from __future__ import annotations

import random
import zlib
from typing import Any

COHORT = {"name": "Pro plan", "description": "plan is pro", "filter": 'user["plan"] == "pro"'}
# Users u0..u299 have profiles; every third is on the pro plan (the cohort). Ids past 299 have none.
PROFILED = 300
COHORT_MEMBERS = frozenset(f"u{i}" for i in range(PROFILED) if i % 3 == 0)
QA_USERS = {"qa-anna": "Blue", "qa-ben": "RED", "u7": "green"}  # variant keys matched case-insensitively


def _flag(key: str, ruleset: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{zlib.crc32(key.encode()):012d}",
        "name": key.replace("_", " ").title(),
        "key": key,
        "status": "enabled",
        "context": "distinct_id",
        "experiment_id": None,
        "is_experiment_active": None,
        "hash_salt": None,
        "ruleset": ruleset,
        **extra,
    }


COLORS = [
    {"key": "red", "value": "#f00", "is_control": True, "split": 0.34},
    {"key": "green", "value": "#0f0", "is_control": False, "split": 0.33},
    {"key": "blue", "value": {"hex": "#00f", "rgb": [0, 0, 255]}, "is_control": False, "split": 0.33},
]
ON_OFF = [
    {"key": "on", "value": True, "is_control": False, "split": 1.0},
    {"key": "off", "value": False, "is_control": True, "split": 0.0},
]


def flag_definitions(cohort_id: int) -> list[dict[str, Any]]:
    return [
        # Multivariate: variants listed out of key order, rollout-level variant_splits, a salt, an experiment.
        _flag(
            "checkout_colors",
            {"variants": COLORS, "rollout": [{"rollout_percentage": 0.8, "variant_splits": {"red": 0.5, "green": 0.2, "blue": 0.3}}]},
            hash_salt="9f1c2a7be04d4c1b", experiment_id="exp-checkout", is_experiment_active=True,
        ),
        # No hash salt: the legacy salts key + "rollout" / key + "variant".
        _flag("legacy_three_way", {"variants": list(reversed(COLORS)), "rollout": [{"rollout_percentage": 0.6}]}),
        # Runtime rules in JsonLogic, mixed case on both sides; a second rollout with a variant override.
        _flag(
            "pro_adults",
            {
                "variants": COLORS,
                "rollout": [
                    {"rollout_percentage": 1.0, "runtime_evaluation_rule": {"and": [
                        {"==": [{"var": "Plan"}, "PRO"]}, {">=": [{"var": "age"}, 18]}]}},
                    {"rollout_percentage": 0.5, "runtime_evaluation_rule": {"in": [{"var": "country"}, ["US", "ca"]]},
                     "variant_override": {"key": "Green"}},
                ],
            },
            hash_salt="c0ffee",
        ),
        # Mixpanel's custom operators.
        _flag(
            "new_app_versions",
            {"variants": ON_OFF, "rollout": [{"rollout_percentage": 0.9, "runtime_evaluation_rule": {
                "semver_compare": [{"var": "app_version"}, ">=", "2.1.0"]}}]},
            hash_salt="s2",
        ),
        _flag(
            "recent_signups",
            {"variants": ON_OFF, "rollout": [{"rollout_percentage": 1.0, "runtime_evaluation_rule": {
                "datetime_compare": [{"var": "signed_up_at"}, ">", 1704067200000]}}]},
            hash_salt="s3",
        ),
        # Legacy exact-match definition.
        _flag(
            "us_only",
            {"variants": ON_OFF, "rollout": [{"rollout_percentage": 0.7, "runtime_evaluation_definition": {"country": "us"}}]},
            hash_salt="s4",
        ),
        # QA testers, then a small rollout.
        _flag(
            "qa_colors",
            {"variants": COLORS, "rollout": [{"rollout_percentage": 0.3}], "test": {"users": QA_USERS}},
            hash_salt="qa-salt", experiment_id="exp-qa", is_experiment_active=False,
        ),
        # Device-scoped bucketing.
        _flag("device_bucketed", {"variants": ON_OFF, "rollout": [{"rollout_percentage": 0.5}]},
              context="device_id", hash_salt="dev"),
        # A cohort-targeted rollout (evaluated by the server only; SDKs ignore cohort_hash locally).
        _flag(
            "pro_cohort",
            {"variants": COLORS, "rollout": [{"rollout_percentage": 0.75, "cohort_hash": str(cohort_id)}]},
            hash_salt="cohort-salt",
        ),
        # Disabled: never served, never in /flags/definitions.
        _flag("switched_off", {"variants": ON_OFF, "rollout": [{"rollout_percentage": 1.0}]}, status="disabled"),
    ]  # fmt: skip


COHORT_FLAGS = frozenset({"pro_cohort"})


def random_context(rng: random.Random) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.05:
        distinct_id = rng.choice(sorted(QA_USERS))
    elif pick < 0.6:
        distinct_id = f"u{rng.randrange(PROFILED + 50)}"
    else:
        distinct_id = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(rng.randint(1, 24)))
    context: dict[str, Any] = {"distinct_id": distinct_id}
    if rng.random() < 0.8:
        context["device_id"] = f"dev-{rng.randrange(10**9)}"
    if rng.random() < 0.85:
        props: dict[str, Any] = {}
        if rng.random() < 0.8:
            props[rng.choice(["plan", "Plan", "PLAN"])] = rng.choice(["pro", "Pro", "PRO", "free", "Free"])
        if rng.random() < 0.8:
            props["age"] = rng.choice([rng.randint(10, 80), str(rng.randint(10, 80)), 17.5])
        if rng.random() < 0.8:
            props[rng.choice(["country", "Country"])] = rng.choice(["US", "us", "CA", "FR", "de"])
        if rng.random() < 0.7:
            props["app_version"] = rng.choice(["2.1.0", "v2.0.9", "2.10", "3", "2.1.0-beta.1", "x.y", "1.9.9"])
        if rng.random() < 0.5:
            props["signed_up_at"] = rng.choice(
                ["2023-12-31T23:59:59Z", "2024-01-01T00:00:01Z", "2024-06-01T10:00:00+02:00", "yesterday"]
            )
        context["custom_properties"] = props
    return context
