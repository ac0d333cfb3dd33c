"""Every Query API endpoint, each on /api/query/X and /api/2.0/X. One line per endpoint (part of the route
table, mixhouse/http/routes.py)."""

from __future__ import annotations

from mixhouse.annotations import api as annotation_api
from mixhouse.domain.permissions import Action
from mixhouse.domain.query import cohorts, engage, events, funnels, insights, retention, revenue, segmentation, stream
from mixhouse.http.endpoint import Endpoint
from mixhouse.http.query import query_routes
from mixhouse.jql import api as jql_api

QUERY_ROUTES: list[Endpoint] = [
    *query_routes("events/names", events.event_names),
    *query_routes("events", events.events),
    *query_routes("events/top", events.event_top),
    *query_routes("events/properties", events.event_properties),
    *query_routes("events/properties/top", events.event_properties_top),
    *query_routes("events/properties/values", events.event_properties_values),
    *query_routes("engage/properties", events.engage_properties),
    *query_routes("segmentation", segmentation.segmentation),
    *query_routes("segmentation/numeric", segmentation.numeric),
    *query_routes("segmentation/sum", segmentation.segmentation_sum),
    *query_routes("segmentation/average", segmentation.segmentation_average),
    *query_routes("segmentation/multiseg", segmentation.multiseg),
    *query_routes("funnels", funnels.funnels),
    *query_routes("funnels/list", funnels.funnels_list),
    *query_routes("funnels/names", funnels.funnel_names),
    *query_routes("funnels/dates", funnels.funnel_dates),
    *query_routes("funnels/properties", funnels.funnel_properties),
    *query_routes("funnels/properties/names", funnels.funnel_property_names),
    *query_routes("retention", retention.retention),
    *query_routes("retention/addiction", retention.addiction),
    *query_routes("events/retention", retention.event_retention),
    *query_routes("engage", engage.engage),
    *query_routes("engage/query", engage.engage),
    *query_routes("engage/revenue", revenue.revenue),
    *query_routes("cohorts/list", cohorts.cohorts_list),
    *query_routes("stream/query", stream.stream_query),
    *query_routes("insights", insights.insights),
    *query_routes("annotations", annotation_api.legacy_list),
    *query_routes("annotations/create", annotation_api.legacy_create, action=Action.SAVE),  # GET too: a write
    *query_routes("annotations/update", annotation_api.legacy_update, action=Action.SAVE),  # GET too: a write
    *query_routes("annotations/delete", annotation_api.legacy_delete, action=Action.SAVE),  # GET too: a write
    *query_routes("jql", jql_api.jql),
]
