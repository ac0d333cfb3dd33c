"""Drives the unmodified PyPI `mixpanel-headless` 0.4.0 library against MP_API_BASE_URL (run with its own
venv's python; credentials come from MP_USERNAME / MP_SECRET / MP_PROJECT_ID / MP_REGION, real-clients §7).

argv: cohort_id funnel_id bookmark_id. Prints one JSON object: what each call returned."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import mixpanel_headless as mp  # type: ignore[import-not-found]

FROM_DATE, TO_DATE = "2024-01-01", "2024-01-02"
DATES = {"from_date": FROM_DATE, "to_date": TO_DATE}


def jsonable(value: Any) -> Any:
    """The client's result objects as plain JSON (what a caller of the library would look at)."""
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def main() -> None:
    cohort_id, funnel_id, bookmark_id = (int(a) for a in sys.argv[1:4])
    ws = mp.Workspace()
    out: dict[str, Any] = {}
    calls: dict[str, Any] = {
        "events": lambda: ws.events(),
        "properties": lambda: ws.properties("Signed Up"),
        "property_values": lambda: ws.property_values("plan", event="Signed Up"),
        "funnels": lambda: ws.funnels(),
        "cohorts": lambda: ws.cohorts(),
        "segmentation": lambda: ws.segmentation("Signed Up", on='properties["plan"]', **DATES),
        "segmentation_where": lambda: ws.segmentation("Signed Up", where='properties["plan"] == "pro"', **DATES),
        "segmentation_sum": lambda: ws.segmentation_sum("Purchase", on='properties["amount"]', **DATES),
        "segmentation_average": lambda: ws.segmentation_average("Purchase", on='properties["amount"]', **DATES),
        "event_counts": lambda: ws.event_counts(["Signed Up", "Purchase"], **DATES),
        "property_counts": lambda: ws.property_counts("Signed Up", "plan", **DATES),
        "funnel": lambda: ws.funnel(funnel_id, **DATES),
        "retention": lambda: ws.retention(born_event="Signed Up", return_event="Purchase", interval_count=2, **DATES),
        "saved_report": lambda: ws.query_saved_report(bookmark_id),
        "stream_events": lambda: list(ws.stream_events(events=["Signed Up"], **DATES)),
        "stream_events_where": lambda: list(ws.stream_events(where='properties["amount"] > 10', **DATES)),
        "stream_profiles": lambda: list(ws.stream_profiles()),
        "stream_profiles_cohort": lambda: list(ws.stream_profiles(cohort_id=str(cohort_id))),
        "stream_profiles_where": lambda: list(
            ws.stream_profiles(where='properties["plan"] == "pro"', output_properties=["plan"])
        ),
        # Annotations, in order: later calls use the ids earlier ones answered with.
        "annotation_tag": lambda: ws.create_annotation_tag(mp.CreateAnnotationTagParams(name="release")),
        "annotation": lambda: ws.create_annotation(
            mp.CreateAnnotationParams(
                date="2024-01-01 10:00:00", description="Launch", tags=[out["annotation_tag"]["id"]]
            )
        ),
        "annotation_outside": lambda: ws.create_annotation(
            mp.CreateAnnotationParams(date="2023-12-01 00:00:00", description="Earlier")
        ),
        "annotations": lambda: ws.list_annotations(**DATES),
        "annotations_by_tag": lambda: ws.list_annotations(tags=[out["annotation_tag"]["id"]]),
        "annotation_get": lambda: ws.get_annotation(out["annotation"]["id"]),
        "annotation_update": lambda: ws.update_annotation(
            out["annotation"]["id"], mp.UpdateAnnotationParams(description="Launch day", tags=[])
        ),
        "annotation_tags": lambda: ws.list_annotation_tags(),
        "annotation_delete": lambda: ws.delete_annotation(out["annotation_outside"]["id"]),
        "annotations_after_delete": lambda: ws.list_annotations(),
    }
    for name, call in calls.items():
        try:
            out[name] = jsonable(call())
        except Exception as exc:  # reported per call, so one missing endpoint does not hide the others
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
