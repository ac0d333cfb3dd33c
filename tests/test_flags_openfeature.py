"""PyPI `mixpanel-openfeature` (pinned) resolves flags through both of PyPI mixpanel's providers against a
real server: the same variants as the server's `/flags`, and the exposure events the providers send land
in the project like any event, where the experiment readout counts them."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mixpanel import Consumer, Mixpanel
from mixpanel.flags.types import LocalFlagsConfig, RemoteFlagsConfig
from mixpanel_openfeature import MixpanelProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason

from tests.flags.fixtures import random_context
from tests.flags.server import SA_AUTH, FlagServer, flag_server, trusting
from tests.server import PROJECT_ID, TOKEN

pytestmark = pytest.mark.clock  # exposures tracked now, read back up to today

BOOLEAN_FLAGS = ("new_app_versions", "us_only", "recent_signups")


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagServer]:
    with flag_server(tmp_path_factory.mktemp("openfeature")) as server:
        yield server


def _mixpanel(fs: FlagServer, **config: Any) -> Mixpanel:
    with trusting(fs.cert):
        consumer = Consumer(events_url=f"{fs.url}/track", request_timeout=30)
        return Mixpanel(TOKEN, consumer=consumer, **config)


def _server_answer(fs: FlagServer, context: dict[str, Any]) -> dict[str, Any]:
    with fs.client() as client:
        r = client.get("/flags", params={"context": json.dumps(context)}, auth=(TOKEN, ""))
    assert r.status_code == 200, r.text
    flags: dict[str, Any] = r.json()["flags"]
    return flags


def _of_context(context: dict[str, Any]) -> EvaluationContext:
    return EvaluationContext(targeting_key=context["distinct_id"], attributes=context)


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_openfeature_resolves_like_the_server(fs: FlagServer, mode: str) -> None:
    if mode == "local":
        mp = _mixpanel(fs, local_flags_config=LocalFlagsConfig(api_host=fs.host, enable_polling=False))
        mp.local_flags.start_polling_for_definitions()
        provider = MixpanelProvider(mp.local_flags, mixpanel_instance=mp)
    else:
        mp = _mixpanel(fs, remote_flags_config=RemoteFlagsConfig(api_host=fs.host))
        provider = MixpanelProvider(mp.remote_flags, mixpanel_instance=mp)
    rng = random.Random(11)
    contexts = [random_context(rng) for _ in range(60)]
    served = 0
    with trusting(fs.cert):
        for context in contexts:
            want = _server_answer(fs, context)
            for key in BOOLEAN_FLAGS:
                details = provider.resolve_boolean_details(key, False, _of_context(context))
                if key in want:
                    served += 1
                    assert (details.value, details.variant, details.reason) == (
                        want[key]["variant_value"], want[key]["variant_key"], Reason.TARGETING_MATCH
                    )  # fmt: skip
                else:
                    assert (details.value, details.variant, details.reason) == (False, None, Reason.DEFAULT)
            colors = provider.resolve_object_details("qa_colors", {}, _of_context(context))
            if "qa_colors" in want and isinstance(want["qa_colors"]["variant_value"], dict):
                assert colors.value == want["qa_colors"]["variant_value"]
            if "qa_colors" in want:
                assert colors.variant == want["qa_colors"]["variant_key"]
    assert served > 20
    provider.shutdown()


def test_exposures_are_events_and_the_readout_counts_them(fs: FlagServer) -> None:
    """Local evaluation with exposure tracking on: one `$experiment_started` per get_variant, sent by the
    SDK to /track; conversions tracked after; the readout per variant from the engine."""
    mp = _mixpanel(fs, local_flags_config=LocalFlagsConfig(api_host=fs.host, enable_polling=False))
    mp.local_flags.start_polling_for_definitions()
    from mixpanel.flags.types import SelectedVariant

    users = [f"reader-{i}" for i in range(120)]
    assigned: dict[str, str] = {}
    with trusting(fs.cert):
        for user in users:
            v = mp.local_flags.get_variant(
                "checkout_colors", SelectedVariant(variant_value=None), {"distinct_id": user}
            )
            if v.variant_key is not None:
                assigned[user] = v.variant_key
                if v.variant_key != "red" or int(user.split("-")[1]) % 2 == 0:
                    mp.track(user, "Purchase", {"amount": 1})
    mp.local_flags.shutdown()
    assert 60 < len(assigned) < 120  # 80 % rollout
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with fs.client() as client:
        r = client.get(
            "/api/2.0/export",
            params={
                "project_id": PROJECT_ID,
                "from_date": "2024-01-01",
                "to_date": today,
                "event": '["$experiment_started"]',
            },
            auth=SA_AUTH,
        )
    assert r.status_code == 200, r.text
    every = [json.loads(line) for line in r.text.splitlines() if line]
    exposures = [e for e in every if e["properties"]["Experiment name"] == "checkout_colors"]
    # The OpenFeature test's evaluations (other flags) are exposures too, when it ran first.
    assert {e["properties"]["Experiment name"] for e in every} <= {"checkout_colors", "qa_colors", *BOOLEAN_FLAGS}
    assert len(exposures) == len(assigned)
    props = exposures[0]["properties"]
    assert props["Experiment name"] == "checkout_colors" and props["$experiment_type"] == "feature_flag"
    assert props["Flag evaluation mode"] == "local" and props["$experiment_id"] == "exp-checkout"
    assert {e["properties"]["distinct_id"]: e["properties"]["Variant name"] for e in exposures} == assigned

    flag_id = next(f["id"] for f in _flags(fs) if f["key"] == "checkout_colors")
    with fs.client() as client:
        r = client.get(
            f"/api/app/projects/{PROJECT_ID}/feature-flags/{flag_id}/readout",
            params={"conversion_event": "Purchase", "from_date": "2024-01-01", "to_date": today},
            auth=SA_AUTH,
        )
    assert r.status_code == 200, r.text
    result = r.json()["results"]
    by_variant = {v["variant"]: v for v in result["variants"]}
    for key, row in by_variant.items():
        members = [u for u, k in assigned.items() if k == key]
        converted = [u for u in members if key != "red" or int(u.split("-")[1]) % 2 == 0]
        assert (row["exposed_users"], row["converted_users"]) == (len(members), len(converted))
    assert result["control"] == "red" and by_variant["red"]["is_control"] and by_variant["red"]["p_value"] is None
    assert by_variant["green"]["conversion_rate"] == 1.0 and by_variant["green"]["z_score"] > 0


def _flags(fs: FlagServer) -> list[dict[str, Any]]:
    with fs.client() as client:
        r = client.get(f"/api/app/projects/{PROJECT_ID}/feature-flags", auth=SA_AUTH)
    assert r.status_code == 200, r.text
    flags: list[dict[str, Any]] = r.json()["results"]
    return flags
