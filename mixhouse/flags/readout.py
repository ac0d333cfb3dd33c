"""Experiment readout: for one flag, the users exposed to each variant (their first `$experiment_started`
with `Experiment name` = the flag key, in the date range) and how many of them did a conversion event at
or after that first exposure, with a two-proportion z-test of each variant against the control.

The test: pooled proportion p = (k1 + k0) / (n1 + n0), z = (p1 - p0) / sqrt(p (1 - p) (1/n1 + 1/n0)),
two-sided p-value = erfc(|z| / sqrt(2)); significant when p < 1 - confidence. Undefined (null) when a
group is empty or p is 0 or 1."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixhouse.domain.app_context import AppContext
from mixhouse.domain.dates import date_range_ms
from mixhouse.domain.spec import Spec
from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.flags.model import Status
from mixhouse.flags.service import FlagService

EXPOSURE_EVENT = "$experiment_started"
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class ReadoutSpec(Spec["list[ReadoutRow]"]):
    project_id: int
    flag_key: str
    conversion_event: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class ReadoutRow:
    variant: str
    exposed: int
    converted: int


@dataclass(frozen=True)
class ZTest:
    z: float | None
    p_value: float | None


def two_proportion_z(k1: int, n1: int, k0: int, n0: int) -> ZTest:
    if n1 == 0 or n0 == 0:
        return ZTest(None, None)
    pooled = (k1 + k0) / (n1 + n0)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n0)
    if variance <= 0:
        return ZTest(None, None)
    z = (k1 / n1 - k0 / n0) / math.sqrt(variance)
    return ZTest(z, math.erfc(abs(z) / math.sqrt(2)))


def _control(doc: dict[str, Any], rows: list[ReadoutRow]) -> str | None:
    variants = doc["ruleset"]["variants"]
    for v in variants:
        if v.get("is_control"):
            return str(v["key"])
    keys = sorted(str(v["key"]) for v in variants)
    return keys[0] if keys else (rows[0].variant if rows else None)


def _confidence(raw: str | None) -> float:
    if raw is None or raw == "":
        return DEFAULT_CONFIDENCE
    try:
        value = float(raw)
    except ValueError as exc:
        raise BadRequest("confidence must be a number between 0 and 1") from exc
    if not 0 < value < 1:
        raise BadRequest("confidence must be a number between 0 and 1")
    return value


@dataclass(frozen=True)
class ReadoutRequest:
    """The readout's parameters, read once: the conversion event, the range (its ends as sent, and as
    epoch ms [start_ms, end_ms) in the project's zone) and the confidence level."""

    conversion_event: str
    from_date: str | None
    to_date: str | None
    start_ms: int
    end_ms: int
    confidence: float

    @classmethod
    def read(cls, params: Mapping[str, str], timezone: str) -> ReadoutRequest:
        event = params.get("conversion_event")
        if not event:
            raise MissingParameter("conversion_event")
        from_date, to_date = params.get("from_date"), params.get("to_date")
        start_ms, end_ms = date_range_ms(from_date, to_date, timezone)
        return cls(event, from_date, to_date, start_ms, end_ms, _confidence(params.get("confidence")))


def readout(ctx: AppContext) -> dict[str, Any]:
    """`GET /api/app/projects/{project_id}/feature-flags/{flag_id}/readout?conversion_event=&from_date=&to_date=`"""
    doc = FlagService(ctx.catalog, ctx.project).get(ctx.path_params["flag_id"])
    req = ReadoutRequest.read(ctx.params, ctx.project.timezone)
    event, confidence = req.conversion_event, req.confidence
    rows = ctx.engine.query(ReadoutSpec(ctx.project.id, doc["key"], event, req.start_ms, req.end_ms))
    control = _control(doc, rows)
    base = next((r for r in rows if r.variant == control), ReadoutRow(control or "", 0, 0))
    variants = []
    for r in rows:
        test = two_proportion_z(r.converted, r.exposed, base.converted, base.exposed)
        is_control = r.variant == control
        variants.append(
            {
                "variant": r.variant,
                "is_control": is_control,
                "exposed_users": r.exposed,
                "converted_users": r.converted,
                "conversion_rate": r.converted / r.exposed if r.exposed else None,
                "lift": None
                if is_control or not base.exposed or not base.converted
                else (r.converted / r.exposed) / (base.converted / base.exposed) - 1,
                "z_score": None if is_control else test.z,
                "p_value": None if is_control else test.p_value,
                "significant": None if is_control or test.p_value is None else test.p_value < 1 - confidence,
            }
        )
    return {
        "status": "ok",
        "results": {
            "flag_id": doc["id"],
            "flag_key": doc["key"],
            "flag_status": doc["status"],
            "is_running": doc["status"] == Status.ENABLED,
            "experiment_id": doc.get("experiment_id"),
            "conversion_event": event,
            "from_date": req.from_date,
            "to_date": req.to_date,
            "confidence": confidence,
            "control": control,
            "exposed_users": sum(r.exposed for r in rows),
            "variants": variants,
        },
    }
