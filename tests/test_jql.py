"""JQL (`/api/query/jql`, `/api/2.0/jql`) on a small fixture whose every answer is worked out by hand:
Mixpanel's documented example scripts (https://docs.mixpanel.com/docs/reports/apps/jql), one script per
transformation and builtin, identity-merged users grouped once, joins of every type, errors as 400s."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.server import PROJECT_ID, SA_SECRET, SA_USER, ServerProcess, seed_catalog
from tests.test_query_engage import import_events, post_engage_batches

AUTH = (SA_USER, SA_SECRET)


def ms(day: int, hour: int, minute: int = 0, month: int = 1, year: int = 2024) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


# (name, distinct_id, time ms, properties). d1 is u1's device: the login carrying both ids merges it.
EVENTS: list[tuple[str, str, int, dict[str, Any]]] = [
    ("Viewed", "$device:d1", ms(1, 10), {"$device_id": "d1", "page": "/home", "$browser": "Chrome", "load_time_ms": 100, "country": "US"}),
    ("login", "u1", ms(1, 11), {"$device_id": "d1", "$user_id": "u1", "$browser": "Chrome", "load_time_ms": 200, "country": "US"}),
    ("Purchase", "u1", ms(1, 11, 30), {"amount": 10, "$browser": "Chrome", "country": "US"}),
    ("login", "u2", ms(2, 9), {"$browser": "Firefox", "load_time_ms": 300, "country": "CA"}),
    ("Viewed", "u2", ms(2, 9, 5), {"page": "/pricing", "$browser": "Firefox", "load_time_ms": 50, "country": "CA"}),
    ("Purchase", "u2", ms(2, 9, 10), {"amount": 25.5, "$browser": "Firefox", "country": "CA"}),
    ("Viewed", "u3", ms(3, 12), {"page": "/home", "$browser": "Safari", "load_time_ms": "n/a", "country": "US"}),
    ("login", "u1", ms(3, 13), {"$browser": "Safari", "load_time_ms": 150, "country": "US"}),
    ("login", "u1", ms(31, 23, month=12, year=2023), {}),  # the day before the range
    ("login", "u2", ms(4, 0), {}),  # the day after
]  # fmt: skip

PROFILES = {
    "u1": {"age": 34, "plan": "pro", "$campaigns": ["a", "b"]},
    "u2": {"age": 25, "plan": "free", "$campaigns": ["a"]},
    "u4": {"age": 61, "plan": "free", "$campaigns": []},
}

RANGE = 'from_date: "2024-01-01", to_date: "2024-01-03"'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("jql") / "data"
    seed_catalog(data_dir)
    proc = ServerProcess(data_dir, env={"TZ": "UTC"}).start()
    import_events(
        proc.url,
        [
            {"event": n, "properties": {"distinct_id": d, "time": t, "$insert_id": f"i{i}", **p}}
            for i, (n, d, t, p) in enumerate(EVENTS)
        ],
    )
    post_engage_batches(
        proc.url, [{"$token": "TOKEN123", "$distinct_id": did, "$set": props} for did, props in PROFILES.items()]
    )
    yield proc
    proc.stop()


def run(server: ServerProcess, script: str, params: Any = None, *, path: str = "/api/query/jql", **extra: str) -> Any:
    response = post(server, script, params, path=path, **extra)
    assert response.status_code == 200, response.text
    return response.json()


def post(
    server: ServerProcess, script: str, params: Any = None, *, path: str = "/api/query/jql", **extra: str
) -> httpx.Response:
    import orjson

    data = {"project_id": str(PROJECT_ID), "script": script, **extra}
    if params is not None:
        data["params"] = orjson.dumps(params).decode()
    return httpx.post(f"{server.url}{path}", data=data, auth=AUTH, timeout=60)


def events_script(chain: str, source: str = f"Events({{{RANGE}}})") -> str:
    return f"function main() {{ return {source}{chain}; }}"


# -- sources -------------------------------------------------------------------------------------------


def test_count_of_a_date_range_both_days_inclusive(server: ServerProcess) -> None:
    assert run(server, events_script(".reduce(mixpanel.reducer.count())")) == [8]
    one_day = 'Events({from_date: "2024-01-02", to_date: "2024-01-02"})'
    assert run(server, events_script(".reduce(mixpanel.reducer.count())", one_day)) == [3]
    # the old reference's sampling-aware count: accepted, nothing is sampled
    assert run(server, events_script(".reduce(mixpanel.reducer.count({account_for_sampling: true}))")) == [8]


def test_event_objects_as_jql_sees_them(server: ServerProcess) -> None:
    rows = run(server, events_script(".filter(function(e) { return e.name == 'Purchase'; })"))
    assert rows == [
        {
            "name": "Purchase",
            "distinct_id": "u1",
            "time": ms(1, 11, 30),
            "sampling_factor": 1,
            "properties": rows[0]["properties"],
        },
        {
            "name": "Purchase",
            "distinct_id": "u2",
            "time": ms(2, 9, 10),
            "sampling_factor": 1,
            "properties": rows[1]["properties"],
        },
    ]
    assert rows[0]["properties"]["amount"] == 10 and rows[1]["properties"]["amount"] == 25.5


def test_identity_merged_user_grouped_once(server: ServerProcess) -> None:
    # The device's event (sent as $device:d1) counts for u1: one group per person.
    rows = run(server, events_script(".groupByUser(mixpanel.reducer.count())"))
    assert rows == [{"key": ["u1"], "value": 4}, {"key": ["u2"], "value": 3}, {"key": ["u3"], "value": 1}]


def test_both_paths_get_and_json_body(server: ServerProcess) -> None:
    script = events_script(".reduce(mixpanel.reducer.count())")
    assert run(server, script, path="/api/2.0/jql") == [8]
    response = httpx.get(
        f"{server.url}/api/query/jql", params={"project_id": str(PROJECT_ID), "script": script}, auth=AUTH, timeout=60
    )
    assert response.status_code == 200 and response.json() == [8]
    response = httpx.post(
        f"{server.url}/api/query/jql?project_id={PROJECT_ID}", json={"script": script}, auth=AUTH, timeout=60
    )
    assert response.status_code == 200 and response.json() == [8]


def test_project_secret_and_v2_signature(server: ServerProcess) -> None:
    import hashlib

    script = events_script(".reduce(mixpanel.reducer.count())")
    response = httpx.post(f"{server.url}/api/query/jql", data={"script": script}, auth=("SECRET123", ""), timeout=60)
    assert response.status_code == 200 and response.json() == [8]
    args = {"api_key": "APIKEY", "expire": str(2_000_000_000), "script": script}
    text = "".join(f"{k}={args[k]}" for k in sorted(args)) + "SECRET123"
    args["sig"] = hashlib.md5(text.encode()).hexdigest()
    response = httpx.post(f"{server.url}/api/2.0/jql", data=args, timeout=60)
    assert response.status_code == 200 and response.json() == [8], response.text


def test_event_selectors_names_and_expressions(server: ServerProcess) -> None:
    # Mixpanel's example shape: names, and a name with an expression (the store reads the superset,
    # each event is checked against the exact rule).
    source = (
        f"Events({{{RANGE}, event_selectors: ["
        '{event: "login", label: "Login"},'
        '{event: "Purchase", selector: \'properties["amount"] > 20\', label: "Big purchase"}]})'
    )
    assert run(server, events_script(".groupBy(['name'], mixpanel.reducer.count())", source)) == [
        {"key": ["Purchase"], "value": 1},
        {"key": ["login"], "value": 3},
    ]
    only_expr = f'Events({{{RANGE}, event_selectors: [{{selector: \'properties["country"] == "CA"\'}}]}})'
    assert run(server, events_script(".reduce(mixpanel.reducer.count())", only_expr)) == [3]
    names = f'Events({{{RANGE}, event_selectors: [{{event: "Viewed"}}, {{event: "Purchase"}}]}})'
    assert run(server, events_script(".reduce(mixpanel.reducer.count())", names)) == [5]


def test_params_and_underscore(server: ServerProcess) -> None:
    # Both examples of "Passing Parameters to a Query".
    by_filter = """function main() {
      return Events({from_date: params.start_date, to_date: params.end_date})
        .filter(function(event) { return event.name == params.event })
        .reduce(mixpanel.reducer.count());
    }"""
    params = {"start_date": "2024-01-01", "end_date": "2024-01-03", "event": "Viewed"}
    assert run(server, by_filter, params) == [3]
    by_map = """function main() {
      return Events({from_date: params.start_date, to_date: params.end_date,
                     event_selectors: _.map(params.events, event => ({event: event}))})
        .reduce(mixpanel.reducer.count());
    }"""
    params2 = {"start_date": "2024-01-01", "end_date": "2024-01-03", "events": ["Viewed", "login"]}
    assert run(server, by_map, params2) == [6]


def test_people_and_user_selectors(server: ServerProcess) -> None:
    rows = run(server, "function main() { return People().map(function(u) { return u.distinct_id; }); }")
    assert sorted(rows) == ["u1", "u2", "u4"]
    selected = "People({user_selectors: [{selector: 'user[\"age\"] > 30'}]})"
    assert run(server, events_script(".reduce(mixpanel.reducer.count())", selected)) == [2]
    assert run(server, "function main() { return People().reduce(mixpanel.reducer.avg('properties.age')); }") == [40]


@pytest.mark.parametrize(("kind", "expected"), [("full", 9), ("left", 8), ("right", 8), ("inner", 7)])
def test_join_types(server: ServerProcess, kind: str, expected: int) -> None:
    script = f'function main() {{ return join(Events({{{RANGE}}}), People(), {{type: "{kind}"}}).reduce(mixpanel.reducer.count()); }}'
    assert run(server, script) == [expected]


def test_join_documented_example_and_tuples(server: ServerProcess) -> None:
    script = f"""function main() {{
      return join(Events({{{RANGE}}}), People(), {{
        type: "inner",
        selectors: [{{selector: 'properties["country"] == "US" and user["age"] > 30'}}]
      }}).map(function(t) {{ return [t.distinct_id, t.event.name, t.user.properties.plan]; }});
    }}"""
    assert run(server, script) == [
        ["u1", "Viewed", "pro"],
        ["u1", "login", "pro"],
        ["u1", "Purchase", "pro"],
        ["u1", "login", "pro"],
    ]
    full = f"""function main() {{
      return join(Events({{{RANGE}}}), People())
        .filter(function(t) {{ return !t.event || !t.user; }})
        .map(function(t) {{ return [t.distinct_id, t.event ? t.event.name : null, t.user ? t.user.distinct_id : null]; }});
    }}"""
    assert run(server, full) == [["u3", "Viewed", None], ["u4", None, "u4"]]


def test_join_rejects_transformed_inputs(server: ServerProcess) -> None:
    script = f"function main() {{ return join(Events({{{RANGE}}}).map(function(e) {{ return e; }}), People()); }}"
    response = post(server, script)
    assert response.status_code == 400
    assert "join() takes Events(...)" in response.json()["error"]


# -- transformations -------------------------------------------------------------------------------


def test_filter_map_flatten(server: ServerProcess) -> None:
    chain = (
        ".filter(function(e) { return e.properties.page; })"
        ".map(function(e) { return [e.properties.page, e.name]; })"
        ".flatten()"
    )
    assert run(server, events_script(chain)) == ["/home", "Viewed", "/pricing", "Viewed", "/home", "Viewed"]


def test_group_by_with_function_key_and_reducer_list(server: ServerProcess) -> None:
    chain = """.groupBy(["name", function(ev) { return new Date(ev.time).toISOString().slice(0, 10); }],
                        [mixpanel.reducer.count(), mixpanel.reducer.sum("properties.amount")])"""
    rows = run(server, events_script(chain))
    assert rows == [
        {"key": ["Purchase", "2024-01-01"], "value": [1, 10]},
        {"key": ["Purchase", "2024-01-02"], "value": [1, 25.5]},
        {"key": ["Viewed", "2024-01-01"], "value": [1, 0]},
        {"key": ["Viewed", "2024-01-02"], "value": [1, 0]},
        {"key": ["Viewed", "2024-01-03"], "value": [1, 0]},
        {"key": ["login", "2024-01-01"], "value": [1, 0]},
        {"key": ["login", "2024-01-02"], "value": [1, 0]},
        {"key": ["login", "2024-01-03"], "value": [1, 0]},
    ]


def test_group_by_user_time_ordered_state_contract(server: ServerProcess) -> None:
    # "Frequencies of Events Following Login", as documented.
    script = f"""function main() {{
      return Events({{{RANGE}}})
      .groupByUser(function(state, events) {{
        state = state || {{ distribution: {{}} }};
        if (events.length == 0) {{ return state; }}
        for (var i = 0; i < events.length - 1; ++i) {{
          if (events[i].name == "login") {{
            state.distribution[events[i + 1].name] = state.distribution[events[i + 1].name] || 0;
            ++state.distribution[events[i + 1].name];
          }}
        }}
        if (state.last_event_login) {{
          state.distribution[events[0].name] = state.distribution[events[0].name] || 0;
          ++state.distribution[events[0].name];
        }}
        if (events[events.length - 1].name == "login") {{ state.last_event_login = true; }}
        return state;
      }});
    }}"""
    assert run(server, script) == [
        {"key": ["u1"], "value": {"distribution": {"Purchase": 1}, "last_event_login": True}},
        {"key": ["u2"], "value": {"distribution": {"Viewed": 1}}},
        {"key": ["u3"], "value": {"distribution": {}}},
    ]


def test_group_by_user_with_extra_keys(server: ServerProcess) -> None:
    # "Multiple Groups per User": the first hour of each user's day.
    script = f"""function main() {{
      return Events({{{RANGE}}})
      .groupByUser([getDay], function(first_hour, events) {{
        if (first_hour === undefined) {{ first_hour = (new Date(events[0].time)).getHours(); }}
        return first_hour;
      }});
    }}
    function getDay(event) {{ return (new Date(event.time)).toISOString().split('T')[0]; }}"""
    assert run(server, script) == [
        {"key": ["u1", "2024-01-01"], "value": 10},
        {"key": ["u1", "2024-01-03"], "value": 13},
        {"key": ["u2", "2024-01-02"], "value": 9},
        {"key": ["u3", "2024-01-03"], "value": 12},
    ]


def test_group_by_user_only_on_a_source(server: ServerProcess) -> None:
    chain = ".map(function(e) { return e; }).groupByUser(mixpanel.reducer.count())"
    response = post(server, events_script(chain))
    assert response.status_code == 400
    assert "groupByUser() can only be applied" in response.json()["error"]
    ok = ".filter(function(e) { return e.name == 'login'; }).groupByUser(mixpanel.reducer.count())"
    assert run(server, events_script(ok)) == [{"key": ["u1"], "value": 2}, {"key": ["u2"], "value": 1}]


def test_chained_aggregations(server: ServerProcess) -> None:
    unique_by_country = """.groupByUser(["properties.country"], mixpanel.reducer.null())
                           .groupBy([mixpanel.slice("key", 1)], mixpanel.reducer.count())"""
    assert run(server, events_script(unique_by_country)) == [{"key": ["CA"], "value": 1}, {"key": ["US"], "value": 2}]
    median_of_max = """.groupByUser(["properties.country"], mixpanel.reducer.count())
                       .groupBy([mixpanel.slice("key", 1)], mixpanel.reducer.max("value"))
                       .reduce(mixpanel.reducer.numeric_percentiles("value", 50))"""
    # per country the most events one user had: CA 3 (u2), US 4 (u1); median (nearest rank) 3
    assert run(server, events_script(median_of_max)) == [3]


def test_sort_asc_and_desc(server: ServerProcess) -> None:
    by_name = ".groupBy(['name'], mixpanel.reducer.count())"
    assert run(server, events_script(by_name + ".sortAsc('value')")) == [
        {"key": ["Purchase"], "value": 2},
        {"key": ["Viewed"], "value": 3},
        {"key": ["login"], "value": 3},
    ]
    assert run(server, events_script(by_name + ".sortDesc(function(g) { return g.value; })")) == [
        {"key": ["Viewed"], "value": 3},
        {"key": ["login"], "value": 3},
        {"key": ["Purchase"], "value": 2},
    ]


def test_apply_group_limits(server: ServerProcess) -> None:
    chain = ".groupBy(['properties.country', 'name'], mixpanel.reducer.count()).sortDesc('value')"
    assert run(server, events_script(chain + ".applyGroupLimits([2, 1])")) == [
        {"key": ["US", "Viewed"], "value": 2},
        {"key": ["CA", "Purchase"], "value": 1},
    ]
    assert run(server, events_script(chain + ".applyGroupLimits([2, 1], 1)")) == [{"key": ["US", "Viewed"], "value": 2}]
    as_reducer = ".groupBy(['properties.country', 'name'], mixpanel.reducer.count()).reduce(mixpanel.reducer.applyGroupLimits([1, 1]))"
    assert run(server, events_script(as_reducer)) == [[{"key": ["US", "Viewed"], "value": 2}]]


# -- reducers ------------------------------------------------------------------------------------------

LOAD = "'properties.load_time_ms'"
VIEWS_AND_LOGINS = f'Events({{{RANGE}, event_selectors: [{{event: "Viewed"}}, {{event: "login"}}]}})'


def test_numeric_reducers_ignore_non_numbers(server: ServerProcess) -> None:
    # load_time_ms: 100, 200, 300, 50, "n/a" (ignored), 150
    def reduce(builtin: str) -> Any:
        return run(server, events_script(f".reduce(mixpanel.reducer.{builtin})", VIEWS_AND_LOGINS))

    assert reduce(f"sum({LOAD})") == [800]
    assert reduce(f"avg({LOAD})") == [160]
    assert reduce(f"min({LOAD})") == [50]
    assert reduce(f"max({LOAD})") == [300]
    [summary] = reduce(f"numeric_summary({LOAD})")
    assert summary["count"] == 5 and summary["sum"] == 800 and summary["sum_squares"] == 165000
    assert summary["avg"] == 160 and math.isclose(summary["stddev"], math.sqrt(7400))
    assert reduce(f"numeric_percentiles({LOAD}, 50)") == [150]
    assert reduce(f"numeric_percentiles({LOAD}, [10, 90])") == [
        [{"percentile": 10, "value": 50}, {"percentile": 90, "value": 300}]
    ]


def test_min_by_and_max_by_return_the_item(server: ServerProcess) -> None:
    [low] = run(server, events_script(f".reduce(mixpanel.reducer.min_by({LOAD}))", VIEWS_AND_LOGINS))
    assert (low["name"], low["distinct_id"], low["time"]) == ("Viewed", "u2", ms(2, 9, 5))
    [high] = run(server, events_script(f".reduce(mixpanel.reducer.max_by({LOAD}))", VIEWS_AND_LOGINS))
    assert (high["name"], high["distinct_id"], high["properties"]["load_time_ms"]) == ("login", "u2", 300)


def test_top_any_null_object_merge(server: ServerProcess) -> None:
    top = ".groupBy(['name'], mixpanel.reducer.count()).reduce(mixpanel.reducer.top(2))"
    assert run(server, events_script(top)) == [[{"key": ["Viewed"], "value": 3}, {"key": ["login"], "value": 3}]]
    [anything] = run(
        server,
        events_script(".filter(function(e) { return e.properties.country == 'CA'; }).reduce(mixpanel.reducer.any())"),
    )
    assert anything["distinct_id"] == "u2"
    assert run(server, events_script(".groupByUser(mixpanel.reducer.null())")) == [
        {"key": ["u1"], "value": None},
        {"key": ["u2"], "value": None},
        {"key": ["u3"], "value": None},
    ]
    merge = """.filter(function(e) { return e.name == "Purchase"; })
               .map(function(e) { return {count: 1, sum: e.properties.amount, by: {[e.distinct_id]: 1}}; })
               .reduce(mixpanel.reducer.object_merge())"""
    assert run(server, events_script(merge)) == [{"count": 2, "sum": 35.5, "by": {"u1": 1, "u2": 1}}]


def test_custom_reducers_of_the_documentation(server: ServerProcess) -> None:
    counting = """.reduce(function(previous_counts, events) {
        var count = events.length;
        for (var i = 0; i < previous_counts.length; i++) { count += previous_counts[i]; }
        return count;
    })"""
    assert run(server, events_script(counting)) == [8]
    earliest_latest = f"""function main() {{
      return Events({{{RANGE}}}).reduce(function(accumulators, items) {{
        var result = {{earliest: null, latest: null}};
        for (var i = 0; i < accumulators.length; i++) {{
          result.earliest = minimum(result.earliest, accumulators[i].earliest);
          result.latest = Math.max(result.latest, accumulators[i].latest);
        }}
        for (var j = 0; j < items.length; j++) {{
          result.earliest = minimum(result.earliest, items[j].time);
          result.latest = Math.max(result.latest, items[j].time);
        }}
        return result;
      }});
    }}
    function minimum(x, y) {{ if (x === null) return y; if (y === null) return x; return Math.min(x, y); }}"""
    assert run(server, earliest_latest) == [{"earliest": ms(1, 10), "latest": ms(3, 13)}]


def test_reduce_of_nothing(server: ServerProcess) -> None:
    empty = 'Events({from_date: "2020-01-01", to_date: "2020-01-02"})'
    assert run(server, events_script(".reduce(mixpanel.reducer.count())", empty)) == [0]
    assert run(server, events_script(".groupBy(['name'], mixpanel.reducer.count())", empty)) == []


# -- mappers and keys ----------------------------------------------------------------------------------


def test_numeric_bucket_bounds_and_regular(server: ServerProcess) -> None:
    ages = "function main() { return People().groupBy([mixpanel.numeric_bucket('properties.age', [0, 5, 18, 30, 60])], mixpanel.reducer.count()); }"
    assert run(server, ages) == [{"key": [18], "value": 1}, {"key": [30], "value": 1}, {"key": [60], "value": 1}]
    regular = """.groupByUser(mixpanel.reducer.count())
                 .groupBy([mixpanel.numeric_bucket('value', {bucket_size: 2, offset: 1})], mixpanel.reducer.count())"""
    # events per user: u1 4, u2 3, u3 1 -> buckets [3, 5): u1 and u2, [1, 3): u3
    assert run(server, events_script(regular)) == [{"key": [1], "value": 1}, {"key": [3], "value": 2}]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("daily", [[ms(31, 0, month=12, year=2023), 1], [ms(1, 0), 3], [ms(2, 0), 3], [ms(3, 0), 2]]),
        ("weekly", [[ms(25, 0, month=12, year=2023), 1], [ms(1, 0), 8]]),  # weeks start on Monday
        ("monthly", [[ms(1, 0, month=12, year=2023), 1], [ms(1, 0), 8]]),
        ("quarterly", [[ms(1, 0, month=10, year=2023), 1], [ms(1, 0), 8]]),
        ("annual", [[ms(1, 0, year=2023), 1], [ms(1, 0), 8]]),
    ],
)
def test_time_buckets(server: ServerProcess, spec: str, expected: list[list[int]]) -> None:
    source = 'Events({from_date: "2023-12-31", to_date: "2024-01-03"})'
    chain = f".groupBy([mixpanel.numeric_bucket('time', mixpanel.{spec}_time_buckets)], mixpanel.reducer.count())"
    rows = run(server, events_script(chain, source))
    assert [[r["key"][0], r["value"]] for r in rows] == expected


def test_to_number(server: ServerProcess) -> None:
    chain = """.map(function(e) { return {x: e.name == "Viewed" ? "12.5" : "abc", t: "2024-01-01T00:00:00"}; })
               .reduce([mixpanel.reducer.sum(mixpanel.to_number("x")), mixpanel.reducer.max(mixpanel.to_number("t"))])"""
    assert run(server, events_script(chain)) == [[37.5, ms(1, 0) / 1000]]


def test_list_keys_inlined_or_fanned_out(server: ServerProcess) -> None:
    inline = 'function main() { return People().groupBy(["properties.$campaigns"], mixpanel.reducer.count()); }'
    assert run(server, inline) == [
        {"key": [], "value": 1},
        {"key": ["a"], "value": 1},
        {"key": ["a", "b"], "value": 1},
    ]
    fanned = 'function main() { return People().groupBy(mixpanel.multiple_keys(["properties.$campaigns"]), mixpanel.reducer.count()); }'
    assert run(server, fanned) == [{"key": ["a"], "value": 2}, {"key": ["b"], "value": 1}]
    both = 'function main() { return People().groupBy([mixpanel.multiple_keys(["properties.$campaigns"]), "properties.plan"], mixpanel.reducer.count()); }'
    assert run(server, both) == [
        {"key": ["a", "free"], "value": 1},
        {"key": ["a", "pro"], "value": 1},
        {"key": ["b", "pro"], "value": 1},
    ]


def test_dot_paths_and_builtin_aliases(server: ServerProcess) -> None:
    script = f"""function main() {{
      return mixpanel.events({{{RANGE}}})
        .map(function(e) {{ return {{item: e.name, info: {{size: e.properties.$browser}}}}; }})
        .groupBy(["item", "info.size"], mixpanel.reducer.count())
        .filter(function(g) {{ return g.key[0] == "login"; }});
    }}"""
    assert run(server, script) == [
        {"key": ["login", "Chrome"], "value": 1},
        {"key": ["login", "Firefox"], "value": 1},
        {"key": ["login", "Safari"], "value": 1},
    ]
    assert run(server, "function main() { return mixpanel.people().reduce(mixpanel.reducer.count()); }") == [3]


def test_csv_format(server: ServerProcess) -> None:
    response = post(server, events_script(".groupBy(['name'], mixpanel.reducer.count())"), format="csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.text == "key.0,value\nPurchase,2\nViewed,3\nlogin,3\n"
    objects = ".filter(function(e) { return e.name == 'Purchase'; }).map(function(e) { return {who: e.distinct_id, p: {amount: e.properties.amount}, tags: [1, 2]}; })"
    assert (
        post(server, events_script(objects), format="csv").text == 'who,p.amount,tags\nu1,10,"[1,2]"\nu2,25.5,"[1,2]"\n'
    )
    scalars = ".map(function(e) { return e.name; }).filter(function(n) { return n == 'Purchase'; })"
    assert post(server, events_script(scalars), format="csv").text == "value\nPurchase\nPurchase\n"
    failing = post(server, "function main() { throw new Error('x'); }", format="csv")
    assert failing.status_code == 400 and failing.json()["error"].startswith("Error: x")


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "fragments"),
    [
        ("var x = 1;", ["the script must define a function main()"]),
        ("function main() {\n  return Events({\n", ["SyntaxError", "line 3"]),
        ('function main() {\n  var x = 1;\n  throw new Error("boom");\n}', ["Error: boom", "line 3"]),
        (
            "function main() {\n  return undefinedThing.x;\n}",
            ["ReferenceError: undefinedThing is not defined", "line 2"],
        ),
        ("function main() { return 5; }", ["main() must return Events(), People() or join()"]),
        (
            'function main() {\n  return Events({from_date: "2024-01-01"});\n}',
            ["Events() requires from_date and to_date", "line 2"],
        ),
        (
            'function main() {\n  return Events({from_date: "2024-01-01", to_date: "2024-01-02",\n'
            "    event_selectors: [{selector: 'properties[\"x\" =='}]});\n}",
            ["event_selectors"],
        ),
        (
            'function main() { return Events({from_date: "2024-01-05", to_date: "2024-01-01"}); }',
            ["from_date cannot be later"],
        ),
        (
            f"function main() {{\n  return Events({{{RANGE}}})\n    .map(function(e) {{\n      return e.nope.deeper;\n    }});\n}}",
            ["TypeError", "line 4"],
        ),
    ],
)
def test_script_errors_are_400s_with_the_message_and_line(
    server: ServerProcess, script: str, fragments: list[str]
) -> None:
    response = post(server, script)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["request"].startswith("/api/query/jql")
    for fragment in fragments:
        assert fragment in body["error"], body["error"]


def test_missing_script_and_bad_params(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/api/query/jql", data={"project_id": str(PROJECT_ID)}, auth=AUTH, timeout=60)
    assert response.status_code == 400 and response.json()["error"] == "Missing required parameter: script"
    data = {"project_id": str(PROJECT_ID), "script": events_script(""), "params": "{not json"}
    response = httpx.post(f"{server.url}/api/query/jql", data=data, auth=AUTH, timeout=60)
    assert response.status_code == 400 and "params must be JSON" in response.json()["error"]


def test_unauthenticated(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/api/query/jql", data={"script": "function main() {}"}, timeout=60)
    assert response.status_code == 401


# -- many events, another timezone, rate limits ---------------------------------------------------------


def test_partial_accumulators_over_many_events(server: ServerProcess) -> None:
    """12,000 events: a custom reducer is called several times, each call seeing its previous result
    (as JSON) and new items, and the result matches a single pass; builtins agree."""
    from tests.test_query_engage import add_project

    project = 4301
    _token, secret = add_project(server, project)
    base = ms(5, 0) // 1000
    import_events(
        server.url,
        [
            {
                "event": "tick",
                "properties": {"distinct_id": f"u{i % 7}", "time": base + i, "$insert_id": f"t{i}", "n": i},
            }
            for i in range(12_000)
        ],
        secret=secret,
    )
    script = """function main() {
      return Events({from_date: "2024-01-05", to_date: "2024-01-05"}).reduce([
        function(accs, items) {
          var out = {count: items.length, calls: 1, most_accs: accs.length, sum: 0, lost: false};
          for (var i = 0; i < accs.length; i++) {
            out.count += accs[i].count; out.calls += accs[i].calls; out.sum += accs[i].sum;
            out.most_accs = Math.max(out.most_accs, accs[i].most_accs);
            out.lost = out.lost || accs[i].fn !== undefined || typeof accs[i].when !== "string";
          }
          for (var j = 0; j < items.length; j++) out.sum += items[j].properties.n;
          out.fn = function() {};  // functions do not survive between steps
          out.when = new Date(0);  // a Date arrives as its JSON text
          return out;
        },
        mixpanel.reducer.count(),
        mixpanel.reducer.sum("properties.n")
      ]);
    }"""
    data = {"project_id": str(project), "script": script}
    response = httpx.post(f"{server.url}/api/query/jql", data=data, auth=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    [[custom, count, total]] = response.json()
    assert count == 12_000 and total == sum(range(12_000))
    assert custom["count"] == 12_000 and custom["sum"] == total
    assert custom["calls"] >= 2 and custom["most_accs"] == 1 and custom["lost"] is False
    by_user = """function main() {
      return Events({from_date: "2024-01-05", to_date: "2024-01-05"})
        .groupByUser(function(state, events) {
          state = state || {n: 0, calls: 0, ordered: true, last: -1};
          for (var i = 0; i < events.length; i++) {
            if (events[i].time < state.last) state.ordered = false;
            state.last = events[i].time;
          }
          state.n += events.length; state.calls += 1;
          return state;
        })
        .map(function(g) { return [g.key[0], g.value.n, g.value.ordered, g.value.calls > 0]; });
    }"""
    response = httpx.post(
        f"{server.url}/api/query/jql", data={"project_id": str(project), "script": by_user}, auth=AUTH, timeout=60
    )
    rows = response.json()
    assert rows == [[f"u{k}", len(range(k, 12_000, 7)), True, True] for k in range(7)]


def test_time_is_in_the_project_timezone(server: ServerProcess) -> None:
    """JQL's `time` is "in your project's timezone, not UTC", and from_date/to_date are local days."""
    from tests.test_query_engage import add_project

    project = 4302
    _token, secret = add_project(server, project, timezone="America/New_York")
    # 2024-01-02 03:00 UTC is 2024-01-01 22:00 in New York (UTC-5)
    import_events(
        server.url,
        [{"event": "late", "properties": {"distinct_id": "x", "time": ms(2, 3) // 1000, "$insert_id": "z"}}],
        secret=secret,
    )
    script = """function main() {
      return Events({from_date: "2024-01-01", to_date: "2024-01-01"})
        .map(function(e) { return [e.time, new Date(e.time).toISOString()]; });
    }"""
    response = httpx.post(
        f"{server.url}/api/query/jql", data={"project_id": str(project), "script": script}, auth=AUTH, timeout=60
    )
    assert response.json() == [[ms(1, 22), "2024-01-01T22:00:00.000Z"]]


def test_jql_counts_against_the_query_rate_limit(server: ServerProcess) -> None:
    from mixhouse.catalog import Catalog
    from tests.test_query_engage import add_project

    project = 4303
    add_project(server, project)
    Catalog(server.data_dir).set_rate_limits(project, '{"preset": "mixpanel", "jql": {"per_hour": 2}}')
    script = 'function main() { return Events({from_date: "2024-01-01", to_date: "2024-01-01"}); }'
    statuses = []
    for _ in range(3):
        data = {"project_id": str(project), "script": script}
        response = httpx.post(f"{server.url}/api/query/jql", data=data, auth=AUTH, timeout=60)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429]
    assert "Query rate limit exceeded" in response.text or "rate limit" in response.text.lower()
    assert response.headers.get("retry-after")
