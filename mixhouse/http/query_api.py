"""Every Query API endpoint, each on /api/query/X and /api/2.0/X. One line per endpoint."""

from __future__ import annotations

from starlette.routing import Route

from mixhouse.domain.query import events
from mixhouse.http.query import query_routes

QUERY_ROUTES: list[Route] = [
    *query_routes("events/names", events.event_names),
]
