"""The client's feature flags against a live server on loopback (the flags of tests/flags/fixtures.py,
created through the App API, with their cohort and its profiles): for a few hundred random contexts the
client's local evaluation (`LocalFlags`, a port of the server's evaluator) equals the server's `/flags`
answer read with plain HTTP and the client's remote call; every credential form; json-logic as an optional
extra; and `flags eval` as `mixhouse flags eval` (beside the server's `flags import`) and
`mixhouse-client flags eval`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mixpanel.flags
import pytest
from mixhouse_client import BadRequest, Client, ConfigurationError, LocalFlags, ProjectSecret, ServiceAccount
from mixhouse_client._flags import datetime_compare, normalized_hash, semver_compare

from mixhouse.flags.evaluate import evaluate_all
from mixhouse.flags.model import compile_flag, validate_ruleset
from tests.flags.fixtures import COHORT_FLAGS, COHORT_MEMBERS, QA_USERS, flag_definitions, random_context
from tests.flags.server import FlagServer, flag_server
from tests.server import PROJECT_ID, SA_SECRET, SA_USER, SECRET, TOKEN

CONTEXTS = 400
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlagServer]:
    with flag_server(tmp_path_factory.mktemp("client-flags"), tls=False) as server:
        yield server


@pytest.fixture(scope="module")
def client(fs: FlagServer) -> Iterator[Client]:
    with Client(base_url=fs.url, token=TOKEN) as c:
        yield c


def _server_flags(fs: FlagServer, context: dict[str, Any], flag_key: str | None = None) -> dict[str, Any]:
    """The server's answer, with plain HTTP and the token as the SDKs send it."""
    params = {"context": json.dumps(context)}
    if flag_key is not None:
        params["flag_key"] = flag_key
    with fs.client() as http:
        r = http.get("/flags", params=params, auth=(TOKEN, ""))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["code"] == 200
    flags: dict[str, Any] = body["flags"]
    return flags


def test_hash_vectors() -> None:
    # mixpanel-python's flags/test_utils.py
    assert normalized_hash("abc", "variant") == 0.72
    assert normalized_hash("def", "variant") == 0.21


VECTORS = Path(mixpanel.flags.__file__).parent / "test-data"


def _vectors(name: str) -> list[list[Any]]:
    return [r for r in json.loads((VECTORS / name).read_text()) if isinstance(r, list)]


@pytest.mark.parametrize("row", _vectors("semver_compare_tests.json"), ids=str)
def test_semver_golden_vectors(row: list[Any]) -> None:
    *args, want = row
    assert semver_compare(*args) is want


@pytest.mark.parametrize("row", _vectors("datetime_compare_tests.json"), ids=str)
def test_datetime_golden_vectors(row: list[Any]) -> None:
    *args, want = row
    assert datetime_compare(*args) is want


def test_port_equals_the_server_evaluator_in_process() -> None:
    """10,000 contexts, no HTTP: the client's port against the server's own evaluator, with context values
    of every JSON type the hash reads with str() (the HTTP test covers what /flags adds)."""
    rng = random.Random(21)
    docs = [
        {**d, "ruleset": validate_ruleset(d["ruleset"])}
        for d in flag_definitions(1)
        if d["status"] == "enabled" and d["key"] not in COHORT_FLAGS
    ]
    server_flags = [compile_flag(d) for d in docs]
    local = LocalFlags(docs)
    odd: list[Any] = [0, 1, -7, 12.5, 1e16, True, False, "", "ü-ñ", "日本", [1], {"a": 1}, None]
    for _ in range(10_000):
        context = random_context(rng)
        if rng.random() < 0.3:
            context["device_id"] = rng.choice(odd)
        assert local.evaluate(context) == evaluate_all(server_flags, context), context


def test_definitions(client: Client) -> None:
    definitions = client.flag_definitions()
    keys = {d["key"] for d in definitions}
    assert "checkout_colors" in keys and "pro_cohort" in keys
    assert "switched_off" not in keys  # disabled: not served
    assert client.local_flags(definitions).cohort_flags == COHORT_FLAGS


def test_local_equals_server_and_remote(fs: FlagServer, client: Client) -> None:
    rng = random.Random(2121)
    definitions = client.flag_definitions()
    local = client.local_flags(definitions)
    # Without a remote: the flags the client evaluates wholly in process.
    offline = LocalFlags([d for d in definitions if d["key"] not in COHORT_FLAGS])
    seen: Counter[tuple[str, str]] = Counter()
    qa = 0
    for _ in range(CONTEXTS):
        context = random_context(rng)
        server = _server_flags(fs, context)
        assert client.flags(context) == server, context
        assert local.evaluate(context) == server, context
        assert offline.evaluate(context) == {k: v for k, v in server.items() if k not in COHORT_FLAGS}, context
        if "pro_cohort" in server:
            assert context["distinct_id"] in COHORT_MEMBERS
        for key, selected in server.items():
            seen[key, selected["variant_key"]] += 1
            qa += selected["is_qa_tester"] is True
    # The contexts reached every kind of flag and variant, not only the empty answer.
    served = {key for key, _ in seen}
    assert served >= {
        "checkout_colors", "legacy_three_way", "pro_adults", "new_app_versions", "recent_signups",
        "us_only", "qa_colors", "device_bucketed", "pro_cohort",
    }  # fmt: skip
    assert {v for k, v in seen if k == "checkout_colors"} == {"red", "green", "blue"}
    assert qa > 0


def test_one_flag_and_every_credential_form(fs: FlagServer) -> None:
    context = {"distinct_id": "qa-anna", "custom_properties": {"plan": "Pro", "age": 30}}
    expected = _server_flags(fs, context)
    assert expected["qa_colors"]["variant_key"] == "blue" and expected["qa_colors"]["is_qa_tester"] is True
    forms = [
        Client(base_url=fs.url, token=TOKEN),
        Client(base_url=fs.url, credentials=ServiceAccount(SA_USER, SA_SECRET, PROJECT_ID)),
        Client(base_url=fs.url, credentials=ProjectSecret(SECRET)),
    ]
    for c in forms:
        with c:
            assert c.flags(context) == expected
            assert c.flags(context, "qa_colors") == {"qa_colors": expected["qa_colors"]}
            assert c.flags(context, "no_such_flag") == {}
            local = c.local_flags()
            assert local.evaluate(context) == expected
            assert local.evaluate(context, "qa_colors") == {"qa_colors": expected["qa_colors"]}
            assert local.evaluate(context, "pro_cohort") == _server_flags(fs, context, "pro_cohort")


def test_python_values_are_read_as_the_server_reads_them(fs: FlagServer, client: Client) -> None:
    """A context is JSON on its way to the server: a tuple arrives as a list, so it is hashed as one."""
    local = client.local_flags()
    for value in [("a", 1), (1.5,), ["x"], 10**20, 1e16, 0.1]:
        context = {"distinct_id": "u1", "device_id": value, "custom_properties": {"country": ("US",)}}
        assert (
            local.evaluate(context)
            == client.flags(context)
            == _server_flags(fs, {**context, "device_id": list(value) if isinstance(value, tuple) else value})
        ), value
    with pytest.raises(TypeError):
        local.evaluate({"distinct_id": "u1", "device_id": object()})


def test_errors(fs: FlagServer, client: Client) -> None:
    with pytest.raises(BadRequest) as caught:
        client.flags({"device_id": "d1"})
    assert caught.value.status == 400
    assert caught.value.message == "distinct_id must be provided in evalContext as a string"
    with pytest.raises(ValueError, match="distinct_id"):
        client.local_flags().evaluate({"device_id": "d1"})
    with pytest.raises(ConfigurationError, match="targets a cohort"):
        LocalFlags(client.flag_definitions()).evaluate({"distinct_id": "u3"}, "pro_cohort")
    with Client(base_url=fs.url) as anonymous, pytest.raises(ConfigurationError):
        anonymous.flags({"distinct_id": "u1"})


_WITHOUT_JSON_LOGIC = """
import json, sys
sys.modules["json_logic"] = None  # as if the [flags] extra were not installed: import raises ImportError
from mixhouse_client import ConfigurationError, LocalFlags
local = LocalFlags(json.load(sys.stdin))
print(json.dumps(local.evaluate({"distinct_id": "abc", "device_id": "d"}, "legacy_three_way")))
try:
    local.evaluate({"distinct_id": "abc", "custom_properties": {"plan": "pro", "age": 30}}, "pro_adults")
except ConfigurationError as exc:
    print(exc)
"""


def test_rules_need_the_flags_extra(fs: FlagServer, client: Client) -> None:
    definitions = [d for d in client.flag_definitions() if d["key"] not in COHORT_FLAGS]
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_JSON_LOGIC], input=json.dumps(definitions), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    plain, error = result.stdout.splitlines()
    assert json.loads(plain) == _server_flags(fs, {"distinct_id": "abc", "device_id": "d"}, "legacy_three_way")
    assert "pro_adults" in error and "pip install 'mixhouse-client[flags]'" in error


def _cli(fs: FlagServer, program: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MIXHOUSE_", "MP_"))}
    clean.update(MIXHOUSE_CONFIG=os.devnull + "-none", MIXHOUSE_BASE_URL=fs.url, **env)
    result = subprocess.run([str(BIN / program), *args], capture_output=True, text=True, timeout=120, env=clean)
    assert "Traceback" not in result.stderr
    return result


def test_cli_flags_eval(fs: FlagServer) -> None:
    # `mixhouse flags eval`, in the server's flags group, remote and --local, with the token.
    for local in ([], ["--local"]):
        r = _cli(
            fs,
            "mixhouse",
            "flags",
            "eval",
            "--distinct-id",
            "qa-anna",
            "--flag",
            "qa_colors",
            *local,
            MIXHOUSE_TOKEN=TOKEN,
        )
        assert (r.returncode, r.stdout) == (0, QA_USERS["qa-anna"].lower() + "\n"), r.stderr
    # Every flag, with a context, through a service account; lines `flag<TAB>variant` equal to /flags.
    context = {"device_id": "dev-7", "custom_properties": {"Plan": "pro", "age": 40, "country": "US"}}
    expected = _server_flags(fs, {**context, "distinct_id": "u3"})
    sa = {"MIXHOUSE_USERNAME": SA_USER, "MIXHOUSE_SECRET": SA_SECRET, "MIXHOUSE_PROJECT_ID": str(PROJECT_ID)}
    r = _cli(fs, "mixhouse-client", "flags", "eval", "--distinct-id", "u3", "--context", json.dumps(context), **sa)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "".join(f"{k}\t{expected[k]['variant_key']}\n" for k in sorted(expected))
    r = _cli(
        fs,
        "mixhouse-client",
        "flags",
        "eval",
        "--distinct-id",
        "u3",
        "--context",
        json.dumps(context),
        "--local",
        "--json",
        **sa,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == expected
    # Errors: one line, no traceback.
    r = _cli(fs, "mixhouse-client", "flags", "eval", "--distinct-id", "u3", "--context", "[1]", MIXHOUSE_TOKEN=TOKEN)
    assert r.returncode == 2 and "--context" in r.stderr
    r = _cli(fs, "mixhouse-client", "flags", "eval", "--distinct-id", "u3", MIXHOUSE_TOKEN="not-a-token")
    assert r.returncode == 1 and r.stderr.startswith("error: 401")
    # The server's own `mixhouse flags import` is still there, beside eval.
    r = _cli(fs, "mixhouse", "flags", "--help")
    assert r.returncode == 0 and "import" in r.stdout and "eval" in r.stdout
    r = _cli(
        fs,
        "mixhouse",
        "flags",
        "import",
        "--data-dir",
        str(Path(os.devnull).parent / "nowhere"),
        "--project",
        "1",
        os.devnull,
    )
    assert r.returncode == 1 and "no mixhouse data dir" in r.stdout
