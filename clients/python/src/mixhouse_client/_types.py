"""The shapes of the JSON objects some calls return, as `TypedDict`s (replies stay plain dicts)."""

from __future__ import annotations

from typing import Any, TypedDict


class AnnotationUser(TypedDict):
    id: int
    first_name: str
    last_name: str


class AnnotationTagRef(TypedDict):
    id: int
    name: str


class Annotation(TypedDict):
    """An annotation as the App API returns it (`date` is `YYYY-MM-DD HH:MM:SS`)."""

    id: int
    project_id: int
    date: str
    description: str
    user: AnnotationUser | None
    tags: list[AnnotationTagRef]


class AnnotationTag(TypedDict):
    id: int
    name: str
    project_id: int
    has_annotations: bool


class LegacyAnnotation(TypedDict):
    """An annotation as `/api/2.0/annotations` returns it: no user, no tags."""

    id: int
    project_id: int
    date: str
    description: str


class FeatureFlag(TypedDict, total=False):
    """A feature flag as the App API's `feature-flags` routes return it."""

    id: str
    project_id: int
    workspace_id: int
    name: str
    key: str
    description: str | None
    status: str  # enabled, disabled, archived
    tags: list[str]
    experiment_id: str | None
    is_experiment_active: bool | None
    context: str
    data_group_id: str | None
    serving_method: str
    ruleset: dict[str, Any]
    hash_salt: str | None
    content_type: str
    created: str
    modified: str
    enabled_at: str | None
    deleted: str | None
    creator_name: str | None
    last_modified_by_name: str | None
    can_edit: bool
