"""The two job kinds of GDPR/CCPA requests.

A deletion calls the engine's `delete_users` once for the whole request: one transaction, so a crash
leaves all of it or none of it, and the runner's rerun after a restart deletes what is left (nothing
if the first run committed). A retrieval writes its file under a temporary name and renames it into
place, so a crash never leaves a half file where the status's URL points."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from mixhouse.engine.base import UserData
from mixhouse.gdpr.model import CCPA_LOOKBACK_DAYS, DELETION, RETRIEVAL
from mixhouse.jobs import Job, JobContext
from mixhouse.private import private_dir, private_file

RETRIEVALS_DIR = Path("gdpr") / "retrievals"


def retrieval_file(data_dir: Path, job: Job) -> Path:
    return data_dir / RETRIEVALS_DIR / str(job.project_id) / f"{job.id}.json"


class Deletion:
    name = DELETION

    def __init__(self, cancel_window_seconds: float = 0.0) -> None:
        self._cancel_window_seconds = cancel_window_seconds  # the gdpr_cancel_window_seconds setting

    def cancel_window_seconds(self) -> float:
        return self._cancel_window_seconds

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]:
        result = ctx.engine.delete_users(job.project_id, list(job.payload["distinct_ids"]))
        forget = ctx.services.get("forget_users")
        if callable(forget):
            forget(job.project_id)
        return {"deleted_distinct_ids": list(result.distinct_ids), "events": result.events, "profiles": result.profiles}

    def revoked(self, job: Job, ctx: JobContext) -> None:
        return None


class Retrieval:
    name = RETRIEVAL

    def __init__(self, cancel_window_seconds: float = 0.0) -> None:
        self._cancel_window_seconds = cancel_window_seconds  # the gdpr_cancel_window_seconds setting

    def cancel_window_seconds(self) -> float:
        return self._cancel_window_seconds

    def run(self, job: Job, ctx: JobContext) -> Mapping[str, Any]:
        payload = job.payload
        since_ms = None
        if payload["compliance_type"] == "CCPA":
            since_ms = int((time.time() - CCPA_LOOKBACK_DAYS * 86_400) * 1000)
        data = ctx.engine.user_data(job.project_id, list(payload["distinct_ids"]), since_ms)
        target = retrieval_file(ctx.data_dir, job)
        private_dir(target.parent.parent.parent)
        private_dir(target.parent.parent)
        private_dir(target.parent)
        partial = target.with_suffix(".partial")
        events = 0
        try:
            with open(private_file(partial), "wb") as out:
                events = write_retrieval(out, job, data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            close = getattr(data.events, "close", None)
            if callable(close):
                close()
        return {"file": str(target.relative_to(ctx.data_dir)), "events": events, "bytes": target.stat().st_size}

    def revoked(self, job: Job, ctx: JobContext) -> None:
        return None


def _head(job: Job, data: UserData) -> dict[str, Any]:
    payload = job.payload
    return {
        "tracking_id": job.id,
        "project_id": job.project_id,
        "compliance_type": payload["compliance_type"],
        "disclosure_type": payload["disclosure_type"],
        "date_requested": payload["date_requested"],
        "distinct_ids": list(payload["distinct_ids"]),
        "identities": data.canonical,
    }


def _profiles(data: UserData) -> list[dict[str, Any]]:
    return [{"$distinct_id": d, "$properties": p} for d, p in data.profiles.items()]


def write_retrieval(out: Any, job: Job, data: UserData) -> int:
    """The file of a retrieval (docs/gdpr.md); the number of events it holds."""
    head = _head(job, data)
    disclosure = job.payload["disclosure_type"]
    if disclosure != "Data":
        summary, count = _summary(data, disclosure)
        out.write(orjson.dumps({**head, disclosure.lower(): summary}))
        return count
    out.write(orjson.dumps(head)[:-1])
    out.write(b',"profiles":' + orjson.dumps(_profiles(data)) + b',"events":[')
    count = 0
    for line in _lines(data.events):
        out.write((b",\n" if count else b"\n") + line)
        count += 1
    out.write(b"]}\n")
    return count


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        for line in chunk.split(b"\n"):
            if line:
                yield line


def _summary(data: UserData, disclosure: str) -> tuple[dict[str, Any], int]:
    """CCPA `Categories`: the kinds of data held (event names, property names); `Sources`: where it came
    from (the libraries that sent it, `$lib`/`mp_lib`, and "profile updates")."""
    names: set[str] = set()
    event_props: set[str] = set()
    sources: set[str] = set()
    count = 0
    for line in _lines(data.events):
        event = orjson.loads(line)
        count += 1
        names.add(str(event.get("event")))
        props = event.get("properties") or {}
        event_props.update(props)
        lib = props.get("$lib") or props.get("mp_lib")
        sources.add(str(lib) if lib else "server-side import")
    profile_props = sorted({k for p in data.profiles.values() for k in p})
    if disclosure == "Categories":
        return {
            "events": sorted(names),
            "event_properties": sorted(event_props),
            "profile_properties": profile_props,
        }, count
    if data.profiles:
        sources.add("profile updates")
    return {"sources": sorted(sources)}, count


def all_kinds(cancel_window_seconds: float = 0.0) -> list[Any]:
    return [Deletion(cancel_window_seconds), Retrieval(cancel_window_seconds)]
