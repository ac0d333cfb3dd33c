"""The ClickHouse side of each analysis: a function of (store, spec) per spec type. Specs without a line
here are answered with NotSupportedByEngine (docs/scale-out.md lists them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mixhouse.domain.query import events as events_spec
from mixhouse.domain.query import segmentation as segmentation_spec
from mixhouse.engine.clickhouse.queries import events, segmentation
from mixhouse.engine.clickhouse.store import Store

QueryFunction = Callable[[Store, Any], Any]

HANDLERS: dict[type, QueryFunction] = {
    events_spec.EventNamesSpec: events.event_names,
    events_spec.EventTopSpec: events.event_top,
    events_spec.PropertyNamesSpec: events.property_names,
    events_spec.PropertyValuesSpec: events.property_values,
    events_spec.ProfilePropertiesSpec: events.profile_properties,
    segmentation_spec.SeriesSpec: segmentation.series_rows,
    segmentation_spec.NumberRangeSpec: segmentation.number_range,
}
