"""What each role may do: the one table every route is checked against (docs/auth.md).

Routes name the action they perform (`mixhouse.http.permissions`); a caller's role either includes it
or the request is refused with Forbidden (403) before anything is read or changed. A project secret,
token or API key acts as the project owner.
"""

from __future__ import annotations

from enum import StrEnum

from mixhouse.domain.project import Role
from mixhouse.errors import Forbidden


class Action(StrEnum):
    READ = "read"  # queries, export, listing and reading saved objects
    SAVE = "save"  # create, change and delete saved reports (funnels, cohorts, bookmarks) and annotations
    IMPORT = "import"  # /import: write events and profiles with project credentials
    MANAGE = "manage"  # project data and settings: deletions, schemas, anything else that changes the project


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.CONSUMER: frozenset({Action.READ}),
    Role.ANALYST: frozenset({Action.READ, Action.SAVE}),
    Role.ADMIN: frozenset(Action),
    Role.OWNER: frozenset(Action),
}

_DOING = {
    Action.READ: "read this project's data",
    Action.SAVE: "create, change or delete saved reports",
    Action.IMPORT: "import data",
    Action.MANAGE: "manage this project",
}


def allowed(role: Role, action: Action) -> bool:
    return action in ROLE_ACTIONS[role]


def require(role: Role, action: Action, who: str | None = None) -> None:
    if not allowed(role, action):
        name = f"service account {who!r}" if who else "these credentials"
        raise Forbidden(f"{name} with the {role.value} role may not {_DOING[action]}")
