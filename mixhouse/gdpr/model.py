"""GDPR/CCPA v3 requests and answers, as Mixpanel documents them
(https://docs.mixpanel.com/reference/gdpr-api): validation of the bodies, the job payloads, the shapes of
the status answers. No HTTP, no SQL."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixhouse.errors import BadRequest, MissingParameter
from mixhouse.jobs import Job

DELETION = "gdpr-deletion"
RETRIEVAL = "gdpr-retrieval"

DEFAULT_MAX_IDS = 2000
COMPLIANCE_TYPES = ("GDPR", "CCPA")
DISCLOSURE_TYPES = ("Data", "Categories", "Sources")
CCPA_LOOKBACK_DAYS = 365  # a CCPA request covers the previous 12 months (Mixpanel's privacy page)
_FIELDS = frozenset({"distinct_ids", "compliance_type", "disclosure_type", "token", "project_id"})


@dataclass(frozen=True)
class GdprRequest:
    distinct_ids: tuple[str, ...]  # as given, duplicates dropped
    compliance_type: str
    disclosure_type: str  # retrievals: what a CCPA request discloses ("Data" for GDPR)

    def payload(self, requesting_user: str, now: float | None = None) -> dict[str, Any]:
        moment = time.gmtime(time.time() if now is None else now)
        return {
            "distinct_ids": list(self.distinct_ids),
            "compliance_type": self.compliance_type,
            "disclosure_type": self.disclosure_type,
            "requesting_user": requesting_user,
            "date_requested": time.strftime("%Y-%m-%dT%H:%M:%S", moment),
        }


def parse_request(body: Any, *, retrieval: bool, max_ids: int = DEFAULT_MAX_IDS) -> GdprRequest:
    """`max_ids`: the gdpr_max_ids setting."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object: {"distinct_ids": [...], "compliance_type": "GDPR"}')
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    if "distinct_ids" not in body:
        raise MissingParameter("distinct_ids")
    ids = body["distinct_ids"]
    if not isinstance(ids, list) or not ids:
        raise BadRequest("distinct_ids must be a non-empty list of strings")
    for i, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise BadRequest(f"distinct_ids[{i}] must be a non-empty string")
    if len(ids) > max_ids:
        raise BadRequest(f"too many distinct_ids: at most {max_ids} a request, got {len(ids)}")
    compliance = body.get("compliance_type", "GDPR")
    if compliance not in COMPLIANCE_TYPES:
        raise BadRequest(f"compliance_type must be GDPR or CCPA, got {compliance!r}")
    disclosure = body.get("disclosure_type", "Data")
    if disclosure not in DISCLOSURE_TYPES:
        raise BadRequest(f"disclosure_type must be Data, Categories or Sources, got {disclosure!r}")
    if not retrieval or compliance == "GDPR":
        disclosure = "Data"  # only CCPA retrievals disclose categories or sources
    return GdprRequest(tuple(dict.fromkeys(ids)), compliance, disclosure)


def created(job: Job) -> dict[str, Any]:
    return {"status": "ok", "results": {"task_id": job.id}}


def retrieval_status(job: Job | None, download_url: str) -> dict[str, Any]:
    """`results` is the download URL once the file is ready, "" before (and after a failure)."""
    if job is None:
        return {"status": "ok", "results": {"status": "NOT_FOUND", "results": "", "distinct_ids": []}}
    ready = job.state.value == "SUCCESS"
    return {
        "status": "ok",
        "results": {
            "status": job.state.value,
            "results": download_url if ready else "",
            "distinct_ids": list(_payload(job)["distinct_ids"]),
        },
    }


def deletion_status(job: Job | None, tracking_id: str, project_id: int) -> dict[str, Any]:
    if job is None:
        return {
            "status": "ok",
            "results": {
                "tracking_id": tracking_id,
                "status": "NOT_FOUND",
                "project_id": project_id,
                "distinct_ids": [],
            },
        }
    payload = _payload(job)
    return {
        "status": "ok",
        "results": {
            "tracking_id": job.id,
            "status": job.state.value,
            "requesting_user": payload["requesting_user"],
            "compliance_type": payload["compliance_type"],
            "project_id": job.project_id,
            "date_requested": payload["date_requested"],
            "distinct_ids": list(payload["distinct_ids"]),
        },
    }


def _payload(job: Job) -> Mapping[str, Any]:
    return job.payload
