"""Bit-exact assignment: for 10,000 random contexts across multivariate, runtime-rule (JsonLogic, custom
operators, legacy definitions), QA-tester, device-scoped and cohort-targeted flags, the server's `/flags`
answer (read through PyPI mixpanel's remote provider) equals PyPI mixpanel's local evaluation of the
definitions it fetched from the server's `/flags/definitions`.

Cohort-targeted rollouts are the one documented difference: the SDKs ignore `cohort_hash` when evaluating
locally (Mixpanel: cohort targeting needs remote evaluation), so for those flags the server's answer is the
local one for members of the cohort and nothing for everyone else.

One server; the contexts go one after the other over the remote provider's keep-alive connection
(~1.5 ms each on loopback TLS)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mixpanel import Mixpanel, ServiceAccountCredentials
from mixpanel.flags.types import LocalFlagsConfig, RemoteFlagsConfig, SelectedVariant

from tests.flags.fixtures import COHORT_FLAGS, COHORT_MEMBERS, flag_definitions, random_context
from tests.flags.server import FlagServer, definitions, flag_server, trusting
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN

CONTEXTS = 10_000


def _tracked(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("no exposure event expected from get_all_variants")


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagServer]:
    with flag_server(tmp_path_factory.mktemp("flags")) as server:
        yield server


def _as_tuple(v: SelectedVariant) -> tuple[Any, ...]:
    return (v.variant_key, v.variant_value, v.experiment_id, v.is_experiment_active, v.is_qa_tester)


def _expected(local: dict[str, SelectedVariant], context: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    member = context["distinct_id"] in COHORT_MEMBERS
    return {k: _as_tuple(v) for k, v in local.items() if k not in COHORT_FLAGS or member}


def _sdk(fs: FlagServer, **kwargs: Any) -> Mixpanel:
    with trusting(fs.cert):
        return Mixpanel(TOKEN, **kwargs)


def test_definitions_shape(fs: FlagServer) -> None:
    body = definitions(fs)
    assert set(body) == {"flags"}
    keys = [f["key"] for f in body["flags"]]
    assert "switched_off" not in keys  # disabled flags are not served
    assert len(keys) == len(flag_definitions(fs.cohort_id)) - 1
    sent = {f["key"]: f for f in flag_definitions(fs.cohort_id)}
    for flag in body["flags"]:
        assert set(flag) == {"id", "name", "key", "status", "project_id", "workspace_id", "context",
                             "experiment_id", "is_experiment_active", "hash_salt", "ruleset"}  # fmt: skip
        want = sent[flag["key"]]
        assert (flag["id"], flag["hash_salt"], flag["ruleset"]) == (want["id"], want["hash_salt"], want["ruleset"])
        assert (flag["project_id"], flag["status"]) == (PROJECT_ID, "enabled")


def test_ten_thousand_contexts_local_equals_server(fs: FlagServer) -> None:
    rng = random.Random(20240101)
    contexts = [random_context(rng) for _ in range(CONTEXTS)]
    mp = _sdk(
        fs,
        local_flags_config=LocalFlagsConfig(api_host=fs.host, enable_polling=False),
        remote_flags_config=RemoteFlagsConfig(api_host=fs.host, request_timeout_in_seconds=60),
    )
    mp.local_flags._tracker = _tracked  # get_all_variants reports no exposure; make sure
    mp.local_flags.start_polling_for_definitions()
    assert mp.local_flags.are_flags_ready()
    local = [mp.local_flags.get_all_variants(c) for c in contexts]
    remote = [mp.remote_flags.get_all_variants(c) for c in contexts]  # one keep-alive connection
    mismatches = []
    for context, loc, rem in zip(contexts, local, remote, strict=True):
        assert rem is not None, "the remote provider failed (see log)"
        got = {k: _as_tuple(v) for k, v in rem.items()}
        if got != _expected(loc, context):
            mismatches.append((context, _expected(loc, context), got))
    assert mismatches == [], f"{len(mismatches)} of {CONTEXTS} differ; first: {mismatches[:3]}"
    # Every kind of flag was exercised both ways: served to some contexts, withheld from others.
    served = {k for answer in remote if answer for k in answer}
    assert served == {f["key"] for f in flag_definitions(fs.cohort_id)} - {"switched_off"}
    assert all(sum(k in (a or {}) for a in remote) < CONTEXTS for k in served)
    qa = [a["qa_colors"] for c, a in zip(contexts, remote, strict=True) if a and c["distinct_id"] == "qa-ben"]
    assert qa and all((v.variant_key, v.is_qa_tester) == ("red", True) for v in qa)
    mp.local_flags.shutdown()
    mp.remote_flags.shutdown()


def test_single_flag_and_every_credential_form(fs: FlagServer) -> None:
    """`flag_key` narrows the answer; token, secret and service-account credentials give the same one."""
    rng = random.Random(7)
    contexts = [random_context(rng) for _ in range(200)]
    with trusting(fs.cert):
        by_token = Mixpanel(TOKEN, remote_flags_config=RemoteFlagsConfig(api_host=fs.host))
        by_account = Mixpanel(
            TOKEN,
            remote_flags_config=RemoteFlagsConfig(api_host=fs.host),
            credentials=ServiceAccountCredentials(SA_USER, SA_SECRET, str(PROJECT_ID)),
        )
    fallback = SelectedVariant(variant_value="fallback")
    with fs.client() as client:
        for context in contexts:
            want = by_token.remote_flags.get_all_variants(context)
            assert want is not None
            got = by_account.remote_flags.get_variant("checkout_colors", fallback, context, reportExposure=False)
            if "checkout_colors" in want:
                assert _as_tuple(got) == _as_tuple(want["checkout_colors"])
            else:
                assert got.variant_value == "fallback" and got.variant_source == "fallback"
            r = client.get("/flags", params={"context": _json(context), "flag_key": "qa_colors"}, auth=(SECRET, ""))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["code"] == 200
            expected = {"qa_colors": _plain(want["qa_colors"])} if "qa_colors" in want else {}
            assert body["flags"] == expected
    by_token.remote_flags.shutdown()
    by_account.remote_flags.shutdown()


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _plain(v: SelectedVariant) -> dict[str, Any]:
    return {
        "variant_key": v.variant_key,
        "variant_value": v.variant_value,
        "experiment_id": v.experiment_id,
        "is_experiment_active": v.is_experiment_active,
        "is_qa_tester": v.is_qa_tester,
    }


@pytest.mark.parametrize(
    ("params", "auth", "status", "error"),
    [
        ({}, (TOKEN, ""), 400, "Missing required parameter: context"),
        ({"context": "not json"}, (TOKEN, ""), 400, "context must be a JSON object"),
        ({"context": "[1]"}, (TOKEN, ""), 400, "context must be a JSON object"),
        (
            {"context": '{"device_id": "d"}'},
            (TOKEN, ""),
            400,
            "distinct_id must be provided in evalContext as a string",
        ),
        (
            {"context": '{"distinct_id": 5}'},
            (TOKEN, ""),
            400,
            "distinct_id must be provided in evalContext as a string",
        ),
        ({"context": '{"distinct_id": "a"}'}, ("nope", ""), 401, None),
        ({"context": '{"distinct_id": "a"}'}, None, 400, "Missing required parameter: token"),
        ({"context": '{"distinct_id": "a"}', "token": "other"}, (SECRET, ""), 403, None),
        ({"context": '{"distinct_id": "a"}'}, (SA_USER, SA_SECRET), 400, None),  # service account without project_id
    ],
)
def test_errors(
    fs: FlagServer, params: dict[str, str], auth: tuple[str, str] | None, status: int, error: str | None
) -> None:
    with fs.client() as client:
        r = client.get("/flags", params=params, auth=auth)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and isinstance(body["error"], str)
    if error is not None:
        assert body["error"] == error


def test_context_size_limit(fs: FlagServer) -> None:
    from mixhouse.flags.service import MAX_CONTEXT_BYTES

    base = '{"distinct_id": "a", "custom_properties": {"x": "'
    fits = base + "y" * (MAX_CONTEXT_BYTES - len(base) - 3) + '"}}'
    assert len(fits) == MAX_CONTEXT_BYTES
    with fs.client() as client:
        assert client.get("/flags", params={"context": fits}, auth=(TOKEN, "")).status_code == 200
        r = client.get("/flags", params={"context": fits[:-2] + 'y"}}'}, auth=(TOKEN, ""))
    assert r.status_code == 400 and "at most" in r.json()["error"]


def test_token_parameter_alone(fs: FlagServer) -> None:
    with httpx.Client(base_url=fs.url, verify=fs.server.ssl_context) as client:
        r = client.get("/flags/definitions", params={"token": TOKEN})
    assert r.status_code == 200 and len(r.json()["flags"]) == len(flag_definitions(fs.cohort_id)) - 1


def test_service_account_definitions(fs: FlagServer, tmp_path: Path) -> None:
    mp = _sdk(
        fs,
        local_flags_config=LocalFlagsConfig(api_host=fs.host, enable_polling=False),
        credentials=ServiceAccountCredentials(SA_USER, SA_SECRET, str(PROJECT_ID)),
    )
    mp.local_flags.start_polling_for_definitions()
    assert mp.local_flags.are_flags_ready()
    assert mp.local_flags.get_variant_value("device_bucketed", "x", {"distinct_id": "a"}) == "x"  # no device_id
    mp.local_flags.shutdown()
