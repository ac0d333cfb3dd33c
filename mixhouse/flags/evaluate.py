"""Assignment, step for step as Mixpanel's local evaluator does it (mixpanel-python 5.4.1,
`flags/local_feature_flags.py`), so that a user gets the same variant from this server's `/flags` as
from any SDK evaluating `/flags/definitions` in process:

1. the flag's context value, `context[flag.context]`, must be present and truthy, else no answer;
2. a QA tester (`ruleset.test.users[context["distinct_id"]]` naming a variant, matched case-insensitively)
   gets that variant, `is_qa_tester: true`;
3. rollouts are tried in order; rollout *i* hashes the context value with `key + hash_salt + str(i)`
   (or `key + "rollout"` without a salt) and is taken when the hash is below `rollout_percentage` and its
   runtime rule passes; none taken, no answer;
4. the variant: `variant_override` when it names a variant (reported `is_qa_tester: true`, as the SDK
   does); else the context value hashed with `key + (hash_salt or "") + "variant"` walks the cumulative
   splits of the variants sorted by key, `variant_splits` replacing splits, falling through to the last.

One addition the SDKs cannot make locally (Mixpanel documents cohort targeting as remote-only): a rollout
with `cohort_hash` also requires the context's `distinct_id` to be in that saved cohort."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mixhouse.flags.hashing import KeyHasher
from mixhouse.flags.model import Flag, Rollout, Variant
from mixhouse.flags.rules import definition_passes, rule_passes, runtime_parameters

# (cohort id, distinct id) -> member?
Membership = Callable[[str, str], bool]


@dataclass(frozen=True)
class Selected:
    variant_key: str
    variant_value: Any
    experiment_id: str | None
    is_experiment_active: bool | None
    is_qa_tester: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant_key": self.variant_key,
            "variant_value": self.variant_value,
            "experiment_id": self.experiment_id,
            "is_experiment_active": self.is_experiment_active,
            "is_qa_tester": self.is_qa_tester,
        }


def _matching(flag: Flag, key: str) -> Selected | None:
    folded = key.casefold()
    for v in flag.variants:
        if v.key.casefold() == folded:
            return Selected(v.key, v.value, flag.experiment_id, flag.is_experiment_active, True)
    return None


class Request:
    """What the flags of one evaluation share: the context, the hash states of its values, and its
    casefolded custom properties (computed once, on first use)."""

    _UNSET: Any = object()

    def __init__(self, context: dict[str, Any], members: Membership | None) -> None:
        self.context = context
        self.members = members
        self.hashers: dict[str, KeyHasher] = {}
        self._params: Any = self._UNSET

    def hasher(self, text: str) -> KeyHasher:
        h = self.hashers.get(text)
        if h is None:
            h = self.hashers[text] = KeyHasher(text)
        return h

    @property
    def params(self) -> dict[str, Any] | None:
        if self._params is self._UNSET:
            self._params = runtime_parameters(self.context)
        params: dict[str, Any] | None = self._params
        return params


def _runtime_ok(rollout: Rollout, req: Request) -> bool:
    if rollout.rule:
        return rule_passes(rollout.rule, req.params)
    if rollout.definition:
        return definition_passes(rollout.definition, req.params)
    return True


def _cohort_ok(rollout: Rollout, req: Request) -> bool:
    if rollout.cohort is None:
        return True
    distinct_id = req.context.get("distinct_id")
    if req.members is None or not isinstance(distinct_id, str) or not distinct_id:
        return False
    return req.members(rollout.cohort, distinct_id)


def _rollout(flag: Flag, value: KeyHasher, req: Request) -> Rollout | None:
    for rollout, salt in zip(flag.rollouts, flag.rollout_salts, strict=True):
        if value(salt) < rollout.percentage and _runtime_ok(rollout, req) and _cohort_ok(rollout, req):
            return rollout
    return None


def _variant(flag: Flag, value: KeyHasher, rollout: Rollout) -> Selected:
    if rollout.override is not None and (chosen := _matching(flag, rollout.override)):
        return chosen
    h = value(flag.variant_salt)
    splits = rollout.splits or {}
    selected: Variant = flag.variants[0]
    cumulative = 0.0
    for v in flag.variants:
        selected = v
        cumulative += splits.get(v.key, v.split)
        if h < cumulative:
            break
    return Selected(selected.key, selected.value, flag.experiment_id, flag.is_experiment_active, None)


def evaluate(flag: Flag, req: Request) -> Selected | None:
    """The variant the request's context gets, or None (not in any rollout, or no context value)."""
    context = req.context
    raw = context.get(flag.context)
    if not raw:
        return None
    value = req.hasher(str(raw))
    distinct_id = context.get("distinct_id")
    if flag.test_users and distinct_id and isinstance(distinct_id, str):
        tester = flag.test_users.get(distinct_id)
        if tester and (chosen := _matching(flag, tester)):
            return chosen
    rollout = _rollout(flag, value, req)
    return _variant(flag, value, rollout) if rollout is not None else None


def evaluate_all(
    flags: Iterable[Flag], context: dict[str, Any], members: Membership | None = None
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    req = Request(context, members)
    for flag in flags:
        selected = evaluate(flag, req)
        if selected is not None:
            out[flag.key] = selected.as_dict()
    return out
