"""Drives two unmodified PyPI ingestion clients built on the `mixpanel` SDK against MP_BASE (run with their
venv's python): `mixpanel-py-async` 0.3.0 (AsyncBufferedConsumer: batches flushed from a thread) and
`aiomixpanel` 1.1.0 (AIOConsumer: one aiohttp GET per message, `data` base64, `verbose=1`, `ip=0`).

Redirect: both consumers take the endpoint URLs as constructor arguments. Prints one JSON object."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from aiohttp import ClientSession  # type: ignore[import-not-found]
from aiomixpanel import AIOConsumer  # type: ignore[import-not-found]
from mixpanel import Mixpanel  # type: ignore[import-not-found]
from mixpanel_async import AsyncBufferedConsumer  # type: ignore[import-not-found]

BASE = os.environ["MP_BASE"].rstrip("/")
TOKEN, SECRET = os.environ["MP_TOKEN"], os.environ["MP_SECRET"]
URLS = {"events_url": f"{BASE}/track", "people_url": f"{BASE}/engage", "import_url": f"{BASE}/import"}


def buffered() -> dict[str, Any]:
    consumer = AsyncBufferedConsumer(max_size=3, flush_first=False, groups_url=f"{BASE}/groups", **URLS)
    mp = Mixpanel(TOKEN, consumer=consumer)
    for i in range(5):  # 3 flush from the thread as the buffer fills, 2 wait for the final flush
        mp.track(f"async-{i}", "Async Tracked", {"i": i})
    mp.people_set("async-0", {"plan": "pro"})
    mp.people_track_charge("async-0", 12.5)  # no $time: the server dates it
    mp.group_set("company", "acme", {"seats": 10})
    mp.import_data(None, "async-old", "Async Imported", 1704067200, {"k": 1}, api_secret=SECRET)
    mp.merge(None, "async-0", "async-1", api_secret=SECRET)  # no time: accepted, an identity event
    consumer.flush(async_=False)
    return {"ok": True}


async def aio() -> dict[str, Any]:
    async with ClientSession() as session:
        consumer = AIOConsumer(session, **URLS)
        mp = Mixpanel(TOKEN, consumer=consumer)
        mp.track("aio-1", "AIO Tracked", {"n": 1})
        mp.track("aio-2", "AIO Tracked", {"n": 2})
        mp.people_set("aio-1", {"plan": "team"})
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [repr(r) for r in results if isinstance(r, BaseException)]
        return {"sent": len(results), "errors": errors}


def main() -> None:
    out = {"buffered": buffered(), "aio": asyncio.run(aio())}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
