"""Every App API route (`/api/app/projects/{project_id}/...`). One line per route (part of the route table,
mixhouse/http/routes.py)."""

from __future__ import annotations

from mixhouse.accounts import api as accounts_api
from mixhouse.annotations import api as annotation_api
from mixhouse.domain.permissions import Action
from mixhouse.domain.query import cohorts, funnels, insights
from mixhouse.flags import api as flags
from mixhouse.flags.readout import readout
from mixhouse.http.app_routes import app_route
from mixhouse.http.endpoint import Endpoint
from mixhouse.imports import api as imports_api
from mixhouse.lexicon import api as lexicon_api

SAVE = Action.SAVE  # saved reports and annotations: analysts may create, change and delete them

APP_ROUTES: list[Endpoint] = [
    app_route("/funnels", funnels.funnels_collection, ["GET", "POST"], writes=SAVE),
    app_route("/funnels/{funnel_id}", funnels.funnel_item, ["GET", "PATCH", "DELETE"], writes=SAVE),
    app_route("/cohorts", cohorts.cohorts_collection, ["GET", "POST"], writes=SAVE),
    app_route("/cohorts/{cohort_id}", cohorts.cohort_item, ["GET", "PATCH", "DELETE"], writes=SAVE),
    app_route("/bookmarks", insights.bookmarks_collection, ["GET", "POST"], writes=SAVE),
    app_route("/bookmarks/{bookmark_id}", insights.bookmark_item, ["GET", "PATCH", "DELETE"], writes=SAVE),
    app_route("/annotations", annotation_api.app_list, ["GET"]),
    app_route("/annotations", annotation_api.app_create, ["POST"], status=201, writes=SAVE),
    app_route("/annotations/tags", annotation_api.app_tags, ["GET"]),
    app_route("/annotations/tags", annotation_api.app_create_tag, ["POST"], status=201, writes=SAVE),
    app_route("/annotations/{annotation_id}", annotation_api.app_item, ["GET", "PATCH", "PUT", "DELETE"], writes=SAVE),
    app_route("/service-accounts", accounts_api.project_accounts, ["GET"]),
    # Lexicon: every role reads, admins and owners write (docs/lexicon.md)
    app_route("/schemas", lexicon_api.collection, ["GET", "POST", "DELETE", "PATCH"]),
    app_route("/schemas/{entity_type}", lexicon_api.by_type, ["GET", "DELETE"]),
    app_route("/schemas/{entity_type}/{name:path}", lexicon_api.item, ["GET", "POST", "DELETE", "PATCH"]),
    # Warehouse imports: every role reads, admins and owners write (docs/warehouse-imports.md)
    app_route("/warehouse-sources", imports_api.sources, ["GET", "POST"]),
    app_route("/warehouse-sources/imports", imports_api.collection, ["GET"]),
    app_route("/warehouse-sources/imports/event-stream", imports_api.create_event_stream, ["POST"]),
    app_route("/warehouse-sources/imports/people", imports_api.create_people, ["POST"]),
    app_route("/warehouse-sources/imports/groups", imports_api.create_groups, ["POST"]),
    app_route("/warehouse-sources/imports/lookup-table", imports_api.create_lookup_table, ["POST"]),
    app_route("/warehouse-sources/imports/{import_id}", imports_api.item, ["GET", "PATCH", "DELETE"]),
    app_route("/warehouse-sources/imports/{import_id}/manual-sync", imports_api.manual_sync, ["PUT"]),
    app_route("/warehouse-sources/imports/{import_id}/history", imports_api.history, ["GET"]),
    *[
        route
        for scope in ("", "/workspaces/{workspace_id}")
        for route in (
            app_route(scope + "/feature-flags", flags.collection, ["GET", "POST"]),
            app_route(scope + "/feature-flags/{flag_id}", flags.item, ["GET", "PUT", "PATCH", "DELETE"]),
            app_route(scope + "/feature-flags/{flag_id}/archive", flags.archive, ["POST", "DELETE"]),
            app_route(scope + "/feature-flags/{flag_id}/test-users", flags.test_users, ["PUT"]),
            app_route(scope + "/feature-flags/{flag_id}/readout", readout, ["GET"]),
        )
    ],
]
