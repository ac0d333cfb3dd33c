"""Every App API route (`/api/app/projects/{project_id}/...`). One line per route."""

from __future__ import annotations

from starlette.routing import Route

APP_ROUTES: list[Route] = []
