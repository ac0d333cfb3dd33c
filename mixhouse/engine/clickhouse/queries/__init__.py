"""The ClickHouse side of each analysis: a function of (store, spec) per spec type. Specs without a line
here are answered with NotSupportedByEngine (docs/scale-out.md lists them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mixhouse.domain.query import engage as engage_spec
from mixhouse.domain.query import events as events_spec
from mixhouse.domain.query import funnels as funnels_spec
from mixhouse.domain.query import insights as insights_spec
from mixhouse.domain.query import retention as retention_spec
from mixhouse.domain.query import revenue as revenue_spec
from mixhouse.domain.query import segmentation as segmentation_spec
from mixhouse.domain.query import stream as stream_spec
from mixhouse.engine.clickhouse.queries import (
    engage,
    events,
    funnels,
    insights,
    retention,
    revenue,
    segmentation,
    stream,
)
from mixhouse.engine.clickhouse.queries import flags as flag_queries
from mixhouse.engine.clickhouse.queries import jql as jql_queries
from mixhouse.engine.clickhouse.store import Store
from mixhouse.flags import cohorts as flags_cohorts
from mixhouse.flags import readout as flags_readout
from mixhouse.jql import pushdown as jql_pushdown

QueryFunction = Callable[[Store, Any], Any]

HANDLERS: dict[type, QueryFunction] = {
    events_spec.EventNamesSpec: events.event_names,
    events_spec.EventTopSpec: events.event_top,
    events_spec.PropertyNamesSpec: events.property_names,
    events_spec.PropertyValuesSpec: events.property_values,
    events_spec.ProfilePropertiesSpec: events.profile_properties,
    segmentation_spec.SeriesSpec: segmentation.series_rows,
    segmentation_spec.NumberRangeSpec: segmentation.number_range,
    engage_spec.EngageSpec: engage.engage_page,
    engage_spec.CohortCountSpec: engage.cohort_counts,
    retention_spec.RetentionSpec: retention.retention_rows,
    retention_spec.AddictionSpec: retention.addiction_rows,
    retention_spec.EventRetentionSpec: retention.event_retention_rows,
    flags_cohorts.CohortMembersSpec: flag_queries.cohort_members,
    funnels_spec.FunnelSpec: funnels.funnel_figures,
    funnels_spec.StepPropertyNamesSpec: funnels.step_property_names,
    stream_spec.StreamSpec: stream.stream_events,
    insights_spec.InsightsSpec: insights.insights_rows,
    revenue_spec.RevenueSpec: revenue.transactions,
    flags_readout.ReadoutSpec: flag_queries.readout_rows,
    jql_pushdown.AggregateSpec: jql_queries.aggregate_rows,
}
