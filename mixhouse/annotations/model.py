"""What an annotation is and what input is accepted for one; knows nothing of HTTP or SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mixhouse.errors import BadRequest

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Accepted spellings of an annotation's moment; a bare day is that day's midnight.
_MOMENT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
MAX_DESCRIPTION = 512  # characters, as Mixpanel's own client mixpanel-headless validates
MAX_TAG_NAME = 255  # characters
MAX_TAGS = 100  # tags on one annotation


@dataclass(frozen=True)
class Tag:
    id: int
    project_id: int
    name: str
    has_annotations: bool = False


@dataclass(frozen=True)
class AnnotationUser:
    id: int
    name: str


@dataclass(frozen=True)
class Annotation:
    id: int
    project_id: int
    date: str  # "YYYY-MM-DD HH:MM:SS"
    description: str
    user: AnnotationUser | None  # None: made with project credentials (secret, token, signature)
    tags: tuple[Tag, ...] = ()


def parse_moment(value: Any, name: str = "date") -> str:
    """An annotation's date as "YYYY-MM-DD HH:MM:SS"."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be a date in the format YYYY-MM-DD HH:MM:SS")
    for fmt in _MOMENT_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).strftime(DATE_FORMAT)
        except ValueError:
            continue
    raise BadRequest(f"{name} must be a date in the format YYYY-MM-DD HH:MM:SS, got {value!r}")


def parse_day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise BadRequest(f"{name} must be a date in the format YYYY-MM-DD, got {value!r}") from None


def day_range(from_value: str | None, to_value: str | None, names: tuple[str, str]) -> tuple[str | None, str | None]:
    """Inclusive whole days as bounds on the stored "YYYY-MM-DD HH:MM:SS" text: [from 00:00:00, to 23:59:59]."""
    start, end = parse_day(from_value, names[0]), parse_day(to_value, names[1])
    if start and end and start > end:
        raise BadRequest(f"{names[0]} {start.isoformat()} is after {names[1]} {end.isoformat()}")
    return (
        f"{start.isoformat()} 00:00:00" if start else None,
        f"{end.isoformat()} 23:59:59" if end else None,
    )


def parse_description(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("description must be a non-empty string")
    if len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"description is longer than {MAX_DESCRIPTION} characters")
    return value


def parse_tag_ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise BadRequest("tags must be a list of tag ids (integers)")
    if len(value) > MAX_TAGS:
        raise BadRequest(f"an annotation takes at most {MAX_TAGS} tags")
    return list(dict.fromkeys(value))


def parse_tag_filter(value: str | None) -> set[int] | None:
    """The list filter `tags=1,2`: annotations with any of these tags."""
    if value is None or value.strip() == "":
        return None
    ids = [part.strip() for part in value.split(",")]
    if not all(part.isascii() and part.isdigit() for part in ids):
        raise BadRequest(f"tags must be comma-separated tag ids, got {value!r}")
    return {int(part) for part in ids}


def parse_tag_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("name must be a non-empty string")
    if len(value) > MAX_TAG_NAME:
        raise BadRequest(f"name is longer than {MAX_TAG_NAME} characters")
    return value.strip()


def body_object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """A JSON object body whose keys are all known: anything else is a 400 naming the key."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; expected some of {', '.join(sorted(allowed))}")
    return body


def app_shape(a: Annotation) -> dict[str, Any]:
    """The App API's annotation object."""
    return {
        "id": a.id,
        "project_id": a.project_id,
        "date": a.date,
        "description": a.description,
        "user": {"id": a.user.id, "first_name": a.user.name, "last_name": ""} if a.user else None,
        "tags": [{"id": t.id, "name": t.name} for t in a.tags],
    }


def legacy_shape(a: Annotation) -> dict[str, Any]:
    """The legacy `/api/2.0/annotations` object."""
    return {"id": a.id, "project_id": a.project_id, "date": a.date, "description": a.description}


def tag_shape(t: Tag) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "project_id": t.project_id, "has_annotations": t.has_annotations}
