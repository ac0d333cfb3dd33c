"""Dashboards: a name and an ordered list of saved reports (Insights bookmarks and saved funnels), each
shown by the app through the same Query API call that answers the saved report (`/insights?bookmark_id=`,
`/funnels?funnel_id=`). Kept in the catalog database; App API routes under
`/api/app/projects/{project_id}/dashboards[/{dashboard_id}]`, with the App envelope."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from mixhouse.catalog import Catalog
from mixhouse.domain.app_context import AppContext
from mixhouse.domain.dates import parse_date
from mixhouse.domain.saved.bookmarks import BookmarkStore
from mixhouse.domain.saved.funnels import FunnelStore
from mixhouse.domain.saved.table import SavedTable
from mixhouse.errors import BadRequest, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS web_dashboards (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    items       TEXT NOT NULL,     -- JSON [{"type": "bookmark"|"funnel", "id", "from_date"?, "to_date"?}]
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS web_dashboards_by_project ON web_dashboards(project_id, id);
"""

MAX_ITEMS = 40
MAX_NAME_LENGTH = 200
ITEM_TYPES = ("bookmark", "funnel")


@dataclass(frozen=True)
class Dashboard:
    id: int
    project_id: int
    name: str
    items: tuple[dict[str, Any], ...]
    created_at: float


_COLUMNS = "id, project_id, name, items, created_at"


def _row(row: tuple[Any, ...]) -> Dashboard:
    did, pid, name, items, created = row
    return Dashboard(int(did), int(pid), str(name), tuple(orjson.loads(items)), float(created))


class DashboardStore:
    def __init__(self, catalog: Catalog) -> None:
        self._table = SavedTable(catalog, schema=_SCHEMA, table="web_dashboards", columns=_COLUMNS, row=_row)

    def create(self, project_id: int, *, name: str, items: tuple[dict[str, Any], ...]) -> Dashboard:
        return self._table.insert(project_id, {"name": name, "items": orjson.dumps(items).decode()})

    def get(self, project_id: int, dashboard_id: int) -> Dashboard | None:
        return self._table.get(project_id, dashboard_id)

    def list(self, project_id: int) -> list[Dashboard]:
        return self._table.list(project_id)

    def update(self, dashboard: Dashboard) -> Dashboard:
        values = {"name": dashboard.name, "items": orjson.dumps(dashboard.items).decode()}
        return self._table.update(dashboard.project_id, dashboard.id, values)

    def delete(self, project_id: int, dashboard_id: int) -> bool:
        return self._table.delete(project_id, dashboard_id)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("name is required")
    if len(value) > MAX_NAME_LENGTH:
        raise BadRequest(f"name may have at most {MAX_NAME_LENGTH} characters")
    return value.strip()


def _text(value: Any, name: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a date in yyyy-mm-dd format")
    return value


def _items(ctx: AppContext, value: Any) -> tuple[dict[str, Any], ...]:
    """Each item names a saved report of this project (checked now, so a dashboard never points elsewhere)."""
    if not isinstance(value, list):
        raise BadRequest("items must be a list of {type, id}")
    if len(value) > MAX_ITEMS:
        raise BadRequest(f"a dashboard holds at most {MAX_ITEMS} items")
    bookmarks, funnels = BookmarkStore(ctx.catalog), FunnelStore(ctx.catalog)
    items = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict) or raw.get("type") not in ITEM_TYPES:
            raise BadRequest(f"items[{i}].type must be one of {', '.join(ITEM_TYPES)}")
        object_id = raw.get("id")
        if isinstance(object_id, bool) or not isinstance(object_id, int):
            raise BadRequest(f"items[{i}].id must be an integer")
        found = (bookmarks if raw["type"] == "bookmark" else funnels).get(ctx.project.id, object_id)
        if found is None:
            raise BadRequest(f"items[{i}]: no saved {raw['type']} with id {object_id} in this project")
        item: dict[str, Any] = {"type": raw["type"], "id": object_id}
        if raw["type"] == "funnel":  # a saved funnel has no dates of its own: the dashboard keeps them
            first = parse_date("from_date", _text(raw.get("from_date"), f"items[{i}].from_date"))
            last = parse_date("to_date", _text(raw.get("to_date"), f"items[{i}].to_date"))
            if first > last:
                raise BadRequest("from_date cannot be later than to_date")
            item |= {"from_date": first.isoformat(), "to_date": last.isoformat()}
        items.append(item)
    return tuple(items)


def _detail(dashboard: Dashboard) -> dict[str, Any]:
    return {
        "id": dashboard.id,
        "project_id": dashboard.project_id,
        "name": dashboard.name,
        "items": list(dashboard.items),
        "created": datetime.fromtimestamp(dashboard.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def _body(ctx: AppContext) -> dict[str, Any]:
    if not isinstance(ctx.body, dict):
        raise BadRequest("the body must be a JSON object")
    return ctx.body


def dashboards_collection(ctx: AppContext) -> dict[str, Any]:
    store = DashboardStore(ctx.catalog)
    if ctx.method == "GET":
        return {"status": "ok", "results": [_detail(d) for d in store.list(ctx.project.id)]}
    body = _body(ctx)
    dashboard = store.create(ctx.project.id, name=_name(body.get("name")), items=_items(ctx, body.get("items", [])))
    return {"status": "ok", "results": _detail(dashboard)}


def dashboard_item(ctx: AppContext) -> dict[str, Any]:
    store = DashboardStore(ctx.catalog)
    dashboard_id = ctx.path_id("dashboard_id", "Dashboard not found for id {}")
    dashboard = store.get(ctx.project.id, dashboard_id)
    if dashboard is None:
        raise NotFound(f"Dashboard not found for id {dashboard_id}")
    if ctx.method == "DELETE":
        store.delete(ctx.project.id, dashboard_id)
        return {"status": "ok", "results": {"id": dashboard_id, "deleted": True}}
    if ctx.method == "PATCH":
        body = _body(ctx)
        name = _name(body["name"]) if "name" in body else dashboard.name
        items = _items(ctx, body["items"]) if "items" in body else dashboard.items
        dashboard = store.update(Dashboard(dashboard.id, dashboard.project_id, name, items, dashboard.created_at))
    return {"status": "ok", "results": _detail(dashboard)}
