"""`AsyncClient` against a live server on loopback: ingestion, streamed export, queries, profiles, the App
API, errors, and retries (429 with Retry-After, 503, a lost answer, an export cut mid-stream) through the
misbehaving proxy of test_client_retries.py. Each result is checked against the server's data and
against the synchronous client, which drives the same operations."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mixhouse_client import (
    AsyncAppTransport,
    AsyncClient,
    BadRequest,
    Client,
    ConfigurationError,
    IngestResult,
    NotFound,
    ProjectSecret,
    RetryPolicy,
    ServiceAccount,
    content_insert_id,
)

from tests.conftest import export
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN, ServerProcess, seed_catalog
from tests.test_client_retries import Flaky

DAY = 86400
T0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())
FAST = RetryPolicy(max_attempts=6, backoff_base=0.05, backoff_cap=0.2)
SA = ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("client-async") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


@pytest.fixture
def flaky(server: ServerProcess) -> Iterator[Flaky]:
    proxy = Flaky(server.url)
    http_server = proxy.serve()
    yield proxy
    http_server.shutdown()
    http_server.server_close()


def make_events(name: str, n: int, days: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "event": name,
            "properties": {"distinct_id": f"a{i % 9}", "time": T0 + (i % days) * DAY + i, "n": i, "odd": i % 2 == 1},
        }
        for i in range(n)
    ]


def test_ingestion_export_and_queries(server: ServerProcess) -> None:
    events = make_events("Async", 90)

    async def scenario() -> tuple[IngestResult, list[dict[str, Any]], list[tuple[date, int]], list[dict[str, Any]]]:
        async with AsyncClient(base_url=server.url, credentials=SA, token=TOKEN) as mp:
            result = await mp.import_events(events, max_records=20)
            exported = [e async for e in mp.export("2024-05-01", "2024-05-03", event="Async")]
            days = []
            for chunk in mp.export_chunks("2024-05-01", "2024-05-03", event=["Async"]):
                days.append((chunk.day, len([line async for line in chunk.lines()])))
            # several queries in flight on one client
            by_day = await asyncio.gather(
                *(mp.segmentation("Async", d, d) for d in ("2024-05-01", "2024-05-02", "2024-05-03"))
            )
            return result, exported, days, by_day

    result, exported, days, by_day = asyncio.run(scenario())
    assert result.ok and result.accepted == 90 and result.requests == 5  # ceil(90 / 20) requests
    stored = export(server.url, from_date="2024-05-01", to_date="2024-05-03", event='["Async"]')
    assert exported == stored and len(stored) == 90
    assert sorted(e["properties"]["$insert_id"] for e in stored) == sorted(content_insert_id(e) for e in events)
    assert days == [(date(2024, 5, 1), 30), (date(2024, 5, 2), 30), (date(2024, 5, 3), 30)]
    with Client(base_url=server.url, credentials=SA) as sync:
        for day, reply in zip(("2024-05-01", "2024-05-02", "2024-05-03"), by_day, strict=True):
            assert reply == sync.segmentation("Async", day, day)
            assert reply["data"]["values"]["Async"] == {day: 30}
        odd = sync.segmentation("Async", "2024-05-01", "2024-05-03", on='properties["odd"]')

    async def odd_async() -> dict[str, Any]:
        async with AsyncClient(base_url=server.url, credentials=ProjectSecret(SECRET)) as mp:
            return await mp.segmentation("Async", "2024-05-01", "2024-05-03", on='properties["odd"]')

    assert asyncio.run(odd_async()) == odd


def test_profiles_batches_identity_and_the_app_api(server: ServerProcess) -> None:
    async def scenario() -> dict[str, Any]:
        async with AsyncClient(base_url=server.url, credentials=SA, token=TOKEN) as mp:
            updates = [{"$distinct_id": f"ap{i:02d}", "$set": {"tier": i % 2}} for i in range(11)]
            engaged = await mp.engage(updates)
            profiles = [p["$distinct_id"] async for p in mp.profiles(where='user["tier"] == 1', page_size=2)]
            batches = [r.accepted async for r in mp.import_batches(make_events("Batched", 25), max_records=10)]
            note = await mp.annotations.create("2024-05-02 10:00:00", "async launch")
            legacy = await mp.legacy_annotations.list(from_date="2024-05-01", to_date="2024-05-31")
            await mp.annotations.delete(note["id"])
            with pytest.raises(NotFound):
                await mp.annotations.get(note["id"])
            flag = await mp.feature_flags.create(
                {
                    "name": "Async",
                    "key": "async-flag",
                    "status": "enabled",
                    "ruleset": {
                        "variants": [{"key": "on", "value": True, "split": 1.0}],
                        "rollout": [{"rollout_percentage": 1.0}],
                    },
                }
            )
            served = await mp.flags({"distinct_id": "u1"}, "async-flag")
            await mp.feature_flags.delete(flag["id"])
            return {
                "engaged": engaged.accepted,
                "profiles": profiles,
                "batches": batches,
                "legacy": legacy,
                "note": note,
                "served": served,
            }

    got = asyncio.run(scenario())
    assert got["engaged"] == 11
    assert got["profiles"] == [f"ap{i:02d}" for i in range(11) if i % 2]  # 5 profiles over 3 pages of 2
    assert got["batches"] == [10, 10, 5]
    assert got["legacy"] == [
        {
            "id": got["note"]["id"],
            "project_id": PROJECT_ID,
            "date": "2024-05-02 10:00:00",
            "description": "async launch",
        }
    ]
    assert got["served"]["async-flag"]["variant_key"] == "on"
    stored = export(server.url, from_date="2024-05-01", to_date="2024-05-03", event='["Batched"]')
    assert len(stored) == 25


def test_errors_are_the_sync_clients(server: ServerProcess) -> None:
    async def scenario() -> list[Exception]:
        errors: list[Exception] = []
        async with AsyncClient(base_url=server.url, credentials=SA) as mp:
            for call in (
                mp.segmentation("X", "2024-05-03", "2024-05-01"),
                mp.track([{"event": "no token", "properties": {"distinct_id": "x"}}]),
            ):
                try:
                    await call
                except Exception as exc:
                    errors.append(exc)
        return errors

    refused, unconfigured = asyncio.run(scenario())
    with Client(base_url=server.url, credentials=SA) as sync, pytest.raises(BadRequest) as same:
        sync.segmentation("X", "2024-05-03", "2024-05-01")
    assert isinstance(refused, BadRequest) and (refused.status, refused.body) == (same.value.status, same.value.body)
    assert isinstance(unconfigured, ConfigurationError) and "token" in str(unconfigured)


def test_retries_honour_retry_after_and_never_import_twice(server: ServerProcess, flaky: Flaky) -> None:
    flaky.script = [("status", 429, {"Retry-After": "1"}), ("status", 503), ("drop",), ("forward",)]
    events = make_events("AsyncRetried", 40, days=1)

    async def scenario() -> tuple[IngestResult, dict[str, Any]]:
        async with AsyncClient(base_url=flaky.url, credentials=SA, retry=FAST) as mp:
            result = await mp.import_events(events)
            seg = await mp.segmentation("AsyncRetried", "2024-05-01", "2024-05-01")
            return result, seg

    result, seg = asyncio.run(scenario())
    assert result.ok and result.accepted == 40
    times = [t for t, path in flaky.seen if path == "/import"]
    assert len(times) == 4 and times[1] - times[0] >= 1.0  # Retry-After honoured
    stored = export(server.url, from_date="2024-05-01", to_date="2024-05-01", event='["AsyncRetried"]')
    assert len(stored) == 80 and len({e["properties"]["$insert_id"] for e in stored}) == 40  # the lost answer landed
    assert seg["data"]["values"]["AsyncRetried"] == {"2024-05-01": 40}  # counted once


def test_an_export_cut_mid_stream_resumes(server: ServerProcess, flaky: Flaky) -> None:
    with Client(base_url=server.url, credentials=SA) as direct:
        direct.import_events(make_events("AsyncStreamed", 400, days=1))
    flaky.script = [("cut",), ("status", 503), ("forward",)]

    async def scenario() -> list[dict[str, Any]]:
        async with AsyncClient(base_url=flaky.url, credentials=SA, retry=FAST) as mp:
            return [e async for e in mp.export("2024-05-01", "2024-05-01", event="AsyncStreamed")]

    got = asyncio.run(scenario())
    assert len(flaky.seen) == 3
    assert got == export(server.url, from_date="2024-05-01", to_date="2024-05-01", event='["AsyncStreamed"]')
    assert len(got) == 400


def test_the_async_client_runs_the_app_in_process(tmp_path: Path) -> None:
    from mixhouse.http.app import create_app

    data_dir = tmp_path / "data"
    seed_catalog(data_dir)
    events = make_events("InProcess", 30)

    async def scenario() -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
        transport = AsyncAppTransport(create_app(data_dir))
        async with AsyncClient(base_url="http://mixhouse.test", credentials=SA, transport=transport) as mp:
            accepted = (await mp.import_events(events)).accepted
            exported = [e async for e in mp.export("2024-05-01", "2024-05-03")]
            seg = await mp.segmentation("InProcess", "2024-05-01", "2024-05-03")
        with pytest.raises(ConfigurationError, match="not running"):  # closed with the client
            await transport.handle_async_request(httpx.Request("GET", "http://mixhouse.test/"))
        return accepted, exported, seg

    accepted, exported, seg = asyncio.run(scenario())
    assert accepted == 30 and len(exported) == 30
    assert sorted(e["properties"]["$insert_id"] for e in exported) == sorted(content_insert_id(e) for e in events)
    assert sum(seg["data"]["values"]["InProcess"].values()) == 30
    # the app wrote to the data folder: a server started on it afterwards sees the same events
    proc = ServerProcess(data_dir).start()
    try:
        assert len(export(proc.url, from_date="2024-05-01", to_date="2024-05-03")) == 30
    finally:
        proc.stop()


def test_both_clients_offer_the_same_calls() -> None:
    def calls(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(getattr(cls, name))
            for name in dir(cls)
            if not name.startswith("_") and callable(getattr(cls, name))
        }

    sync_calls, async_calls = calls(Client), calls(AsyncClient)
    only_sync = {"close", "local_flags"}  # LocalFlags calls the server synchronously for cohort flags
    only_async = {"aclose"}
    assert set(sync_calls) - only_sync == set(async_calls) - only_async
    for name in set(sync_calls) & set(async_calls) - {"export_chunks"}:
        assert sync_calls[name] == async_calls[name], name

    def namespaces(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_") and isinstance(getattr(cls, n), property)}

    assert len(namespaces(Client)) >= 6 and namespaces(Client) == namespaces(AsyncClient)
    for namespace in namespaces(Client):
        sync_ns = type(getattr(Client(base_url="http://x"), namespace))
        async_ns = type(getattr(AsyncClient(base_url="http://x"), namespace))
        assert calls(sync_ns) == calls(async_ns), namespace
    assert inspect.iscoroutinefunction(AsyncClient.segmentation)
    assert str(inspect.signature(Client.segmentation)).startswith("(self, /, event: 'str', from_date")
