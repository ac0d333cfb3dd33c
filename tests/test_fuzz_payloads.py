"""Fuzzing the ingestion decoders (`mixhouse.domain.payloads`) and the record checks behind them:
whatever bytes arrive, the only failures are BadRequest/PayloadTooLarge (a 400 or 413), never another
exception, and a valid payload survives every encoding a client may choose."""

from __future__ import annotations

import base64
import gzip
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixhouse.domain import ingestion, payloads
from mixhouse.domain.events import Endpoint, IngestContext
from mixhouse.domain.project import IdMerge, Project
from mixhouse.errors import BadRequest, MixhouseError, PayloadTooLarge
from tests.fuzzing import CASES, examples, report

SUITE = "payloads"
FUZZ = settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.text(alphabet="\x00a'\\", max_size=6)  # NUL bytes, quotes and backslashes, always in the mix
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
events = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.text(max_size=20) | st.just("A\x00B"),
            "properties": st.dictionaries(st.text(max_size=10) | st.just("k\x00"), json_values, max_size=6),
        }
    ),
    min_size=1,
    max_size=5,
)


@pytest.fixture(scope="module", autouse=True)
def _count(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report(request.config, SUITE)


def _only_client_errors(call: Any, *args: Any) -> Any:
    CASES[SUITE] += 1
    try:
        return call(*args)
    except (BadRequest, PayloadTooLarge):
        return None
    except MixhouseError as exc:  # any other MixhouseError would be a 5xx or a wrong status
        raise AssertionError(f"{call.__name__} raised {type(exc).__name__}: {exc}") from exc


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([None, "", "gzip", "deflate", "identity", "br", "GZIP"]))
def test_decompress_takes_any_bytes(body: bytes, encoding: str | None) -> None:
    out = _only_client_errors(payloads.decompress, body, encoding, 4096)
    assert out is None or len(out) <= 4096


@FUZZ
@given(st.binary(max_size=4096))
def test_gzip_bombs_stop_at_the_limit(tail: bytes) -> None:
    bomb = gzip.compress(b"[" + b" " * 200_000 + tail)
    with pytest.raises(PayloadTooLarge):
        CASES[SUITE] += 1
        payloads.decompress(bomb, "gzip", 100_000)


@FUZZ
@given(st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
def test_json_bodies_parse_or_answer_400(body: bytes) -> None:
    _only_client_errors(payloads.parse_json_body, body)
    _only_client_errors(payloads.parse_form, body)


@FUZZ
@given(st.text(max_size=512))
def test_data_parameter_decodes_or_answers_400(value: str) -> None:
    decoded = _only_client_errors(payloads.decode_data, value)
    if decoded is not None:
        _only_client_errors(payloads.as_records, decoded)
        _only_client_errors(ingestion.records_from, decoded)


@FUZZ
@given(events, st.sampled_from(["raw", "base64", "urlsafe", "urlencoded", "gzip", "ndjson"]))
def test_every_encoding_of_a_payload_decodes_to_it(records: list[dict[str, Any]], encoding: str) -> None:
    CASES[SUITE] += 1
    raw = orjson.dumps(records)
    if encoding == "raw":
        assert payloads.decode_data(raw.decode()) == records
    elif encoding == "base64":
        assert payloads.decode_data(base64.b64encode(raw).decode()) == records
    elif encoding == "urlsafe":
        assert payloads.decode_data(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == records
    elif encoding == "urlencoded":
        form = payloads.parse_form(urlencode({"data": raw.decode()}, quote_via=quote).encode())
        assert payloads.decode_data(form["data"]) == records
    elif encoding == "gzip":
        assert payloads.parse_json_body(payloads.decompress(gzip.compress(raw), "gzip")) == records
    else:
        ndjson = b"\n".join(orjson.dumps(r) for r in records)
        parsed = payloads.parse_json_body(ndjson)
        assert parsed == (records if len(records) > 1 else records[0])


@FUZZ
@given(st.binary(min_size=1, max_size=512))
def test_deflate_garbage_answers_400(body: bytes) -> None:
    compressed = zlib.compress(body)[:-1]  # truncated stream
    _only_client_errors(payloads.decompress, compressed, "deflate")


hostile_records = st.lists(
    json_values
    | st.fixed_dictionaries(
        {
            "event": json_values,
            "properties": st.dictionaries(
                st.sampled_from(["time", "distinct_id", "$insert_id", "token", "$device_id", "$user_id", "x"])
                | st.text(max_size=6),
                json_values | st.integers(min_value=-(2**70), max_value=2**70),
                max_size=6,
            )
            | json_values,
        }
    ),
    max_size=6,
)


@FUZZ
@given(hostile_records, st.sampled_from(list(IdMerge)))
def test_import_validation_takes_any_records(records: list[Any], id_merge: IdMerge) -> None:
    """Every record is stored whole or reported as failed: counts add up, nothing raises."""
    project = Project(id=1, name="p", token="tok", secret="sec", api_key="key", id_merge=id_merge)
    ctx = IngestContext(endpoint=Endpoint.IMPORT, received_ms=1_700_000_000_000, api_host="h")
    result = _only_client_errors(ingestion.import_events, project, records, ctx)
    if result is None:
        return
    for event in result.batch.events:
        assert event.project_id == 1 and isinstance(event.event, str) and isinstance(event.distinct_id, str)
        assert isinstance(orjson.loads(event.properties), dict)
    if not result.failed_messages:
        assert len(result.batch.events) + len(result.failed) == len(records)
