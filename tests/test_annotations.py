"""Annotations and annotation tags over real HTTP (docs/annotations.md): the App API shape and the legacy
`/api/2.0/annotations` shape, date filters on fixed historical days, validation errors in each family's
envelope, project isolation and roles."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mixhouse.annotations.model import MAX_DESCRIPTION, MAX_TAG_NAME, MAX_TAGS
from mixhouse.catalog import Catalog
from mixhouse.domain.project import Role
from tests.server import API_KEY, PROJECT_ID, SA_SECRET, SA_USER, SECRET, ServerProcess, seed_catalog

OTHER = 5151
OTHER_USER, OTHER_SECRET = "sa.other", "other-secret"
APP = f"/api/app/projects/{PROJECT_ID}/annotations"
ROLE_SECRET = "role-secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("annotations") / "data"
    seed_catalog(data_dir)
    seed_catalog(
        data_dir,
        project_id=OTHER,
        token="OTHER-TOKEN",
        secret="OTHER-SECRET",
        api_key="OTHER-APIKEY",
        sa_user=OTHER_USER,
        sa_secret=OTHER_SECRET,
    )
    catalog = Catalog(data_dir)
    for role in Role:
        catalog.create_service_account(
            username=f"ann.{role.value}", secret=ROLE_SECRET, project_id=PROJECT_ID, role=role
        )
    proc = ServerProcess(data_dir).start()
    yield proc
    proc.stop()


def app(server: ServerProcess, method: str, path: str = "", **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("auth", (SA_USER, SA_SECRET))
    return httpx.request(method, f"{server.url}{APP}{path}", timeout=30, **kwargs)


def legacy(server: ServerProcess, op: str, params: dict[str, str], **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("auth", (SA_USER, SA_SECRET))
    url = f"{server.url}/api/2.0/annotations{op}"
    return httpx.get(url, params={"project_id": str(PROJECT_ID), **params}, timeout=30, **kwargs)


def test_app_crud_with_tags(server: ServerProcess) -> None:
    tag = app(server, "POST", "/tags", json={"name": "release"})
    assert tag.status_code == 201, tag.text
    tag_id = tag.json()["results"]["id"]
    assert tag.json() == {
        "status": "ok",
        "results": {"id": tag_id, "name": "release", "project_id": PROJECT_ID, "has_annotations": False},
    }
    made = app(server, "POST", json={"date": "2021-03-04 05:06:07", "description": "Launch", "tags": [tag_id]})
    assert made.status_code == 201, made.text
    created = made.json()["results"]
    assert made.json()["status"] == "ok"
    assert created["date"] == "2021-03-04 05:06:07" and created["description"] == "Launch"
    assert created["tags"] == [{"id": tag_id, "name": "release"}]
    assert created["user"] == {"id": created["user"]["id"], "first_name": SA_USER, "last_name": ""}
    assert isinstance(created["user"]["id"], int)
    item = f"/{created['id']}"
    assert app(server, "GET", item).json() == {"status": "ok", "results": created}

    tags = app(server, "GET", "/tags").json()
    assert tags["status"] == "ok"
    assert {"id": tag_id, "name": "release", "project_id": PROJECT_ID, "has_annotations": True} in tags["results"]

    patched = app(server, "PATCH", item, json={"description": "Launch v2", "tags": []})
    assert patched.status_code == 200, patched.text
    assert patched.json()["results"]["description"] == "Launch v2"
    assert patched.json()["results"]["tags"] == []
    assert patched.json()["results"]["date"] == "2021-03-04 05:06:07"
    assert app(server, "GET", item).json()["results"]["description"] == "Launch v2"

    deleted = app(server, "DELETE", item)
    assert deleted.json() == {"status": "ok", "results": {"id": created["id"]}}
    gone = app(server, "GET", item)
    assert gone.status_code == 404 and gone.json()["status"] == "error"
    assert app(server, "DELETE", item).status_code == 404


def test_app_date_filters_are_whole_inclusive_days(server: ServerProcess) -> None:
    days = ["2019-06-01 00:00:00", "2019-06-02 23:59:59", "2019-06-03 12:00:00", "2019-06-04 00:00:00"]
    ids = [app(server, "POST", json={"date": d, "description": f"f {d}"}).json()["results"]["id"] for d in days]
    listed = app(server, "GET", params={"fromDate": "2019-06-02", "toDate": "2019-06-03"}).json()["results"]
    assert [a["id"] for a in listed] == ids[1:3]
    since = app(server, "GET", params={"fromDate": "2019-06-03"}).json()["results"]
    assert ids[2] in [a["id"] for a in since] and ids[1] not in [a["id"] for a in since]
    until = app(server, "GET", params={"toDate": "2019-06-01"}).json()["results"]
    assert ids[0] in [a["id"] for a in until] and ids[1] not in [a["id"] for a in until]
    everything = [a["id"] for a in app(server, "GET").json()["results"]]
    assert set(ids) <= set(everything)


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "message"),
    [
        ("POST", "", {"description": "x"}, {}, "Missing required parameter: date"),
        ("POST", "", {"date": "2021-01-01"}, {}, "Missing required parameter: description"),
        ("POST", "", {"date": "yesterday", "description": "x"}, {}, "date must be a date"),
        ("POST", "", {"date": "2021-02-30 00:00:00", "description": "x"}, {}, "date must be a date"),
        ("POST", "", {"date": "2021-01-01", "description": "  "}, {}, "description must be a non-empty string"),
        ("POST", "", {"date": "2021-01-01", "description": "x", "tags": ["a"]}, {}, "tags must be a list"),
        ("POST", "", {"date": "2021-01-01", "description": "x", "tags": [987654]}, {}, "no annotation tag"),
        ("POST", "", {"date": "2021-01-01", "description": "x", "color": "red"}, {}, "unknown field 'color'"),
        ("POST", "", [1, 2], {}, "must be a JSON object"),
        ("POST", "", {"date": "2021-01-01", "description": "x" * (MAX_DESCRIPTION + 1)}, {}, "longer than"),
        ("POST", "/tags", {}, {}, "Missing required parameter: name"),
        ("POST", "/tags", {"name": 5}, {}, "name must be a non-empty string"),
        ("GET", "", None, {"fromDate": "2021-13-01"}, "fromDate must be a date"),
        ("GET", "", None, {"fromDate": "2021-02-02", "toDate": "2021-02-01"}, "is after toDate"),
    ],
)
def test_app_validation_is_a_clear_400(
    server: ServerProcess, method: str, path: str, body: Any, params: dict[str, str], message: str
) -> None:
    before = len(app(server, "GET").json()["results"])
    kwargs: dict[str, Any] = {"params": params}
    if body is not None:
        kwargs["json"] = body
    response = app(server, method, path, **kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert message in response.json()["error"]
    assert len(app(server, "GET").json()["results"]) == before


def test_description_at_its_limit_is_accepted(server: ServerProcess) -> None:
    made = app(server, "POST", json={"date": "2018-01-01", "description": "y" * MAX_DESCRIPTION})
    assert made.status_code == 201 and made.json()["results"]["date"] == "2018-01-01 00:00:00"


def test_a_duplicate_tag_name_is_refused(server: ServerProcess) -> None:
    assert app(server, "POST", "/tags", json={"name": "incident"}).status_code == 201
    again = app(server, "POST", "/tags", json={"name": "incident"})
    assert again.status_code == 400 and "already exists" in again.json()["error"]


def test_legacy_crud_and_date_filters(server: ServerProcess) -> None:
    made = legacy(server, "/create", {"date": "2017-05-06 07:08:09", "description": "legacy one"})
    assert made.status_code == 200, made.text
    created = made.json()["annotation"]
    assert created == {
        "id": created["id"],
        "project_id": PROJECT_ID,
        "date": "2017-05-06 07:08:09",
        "description": "legacy one",
    }
    listed = legacy(server, "", {"from_date": "2017-05-06", "to_date": "2017-05-06"})
    assert listed.json() == {"annotations": [created], "error": False}
    assert legacy(server, "", {"from_date": "2017-05-07", "to_date": "2017-05-08"}).json()["annotations"] == []

    updated = legacy(server, "/update", {"id": str(created["id"]), "description": "renamed"})
    assert updated.json()["annotation"]["description"] == "renamed"
    assert updated.json()["annotation"]["date"] == "2017-05-06 07:08:09"
    # The same annotation through the App API.
    assert app(server, "GET", f"/{created['id']}").json()["results"]["description"] == "renamed"

    posted = httpx.post(
        f"{server.url}/api/2.0/annotations/delete",
        data={"project_id": str(PROJECT_ID), "id": str(created["id"])},
        auth=(SA_USER, SA_SECRET),
        timeout=30,
    )
    assert posted.json() == {"error": False}
    assert legacy(server, "", {"from_date": "2017-05-06", "to_date": "2017-05-06"}).json()["annotations"] == []
    again = legacy(server, "/delete", {"id": str(created["id"])})
    assert again.status_code == 404 and "error" in again.json()


@pytest.mark.parametrize(
    ("op", "params", "message"),
    [
        ("/create", {"description": "x"}, "Missing required parameter: date"),
        ("/create", {"date": "2017-01-01"}, "Missing required parameter: description"),
        ("/create", {"date": "01/02/2017", "description": "x"}, "date must be a date"),
        ("/update", {"description": "x"}, "Missing required parameter: id"),
        ("/update", {"id": "abc", "description": "x"}, "id must be an integer"),
        ("/delete", {}, "Missing required parameter: id"),
        ("", {"from_date": "2017-1-1x", "to_date": "2017-01-02"}, "from_date must be a date"),
        ("", {"from_date": "2017-01-03", "to_date": "2017-01-02"}, "is after to_date"),
    ],
)
def test_legacy_validation_is_a_clear_400(server: ServerProcess, op: str, params: dict[str, str], message: str) -> None:
    response = legacy(server, op, params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"request", "error"} and message in body["error"]


def sign(params: dict[str, str], secret: str) -> str:
    concat = "".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sig", "callback"))
    return hashlib.md5((concat + secret).encode()).hexdigest()


def test_legacy_auth_forms(server: ServerProcess) -> None:
    legacy(server, "/create", {"date": "2016-02-02 10:00:00", "description": "auth forms"})
    window = {"from_date": "2016-02-02", "to_date": "2016-02-02"}
    by_secret = httpx.get(f"{server.url}/api/2.0/annotations", params=window, auth=(SECRET, ""), timeout=30)
    assert [a["description"] for a in by_secret.json()["annotations"]] == ["auth forms"]
    signed = {**window, "api_key": API_KEY, "expire": str(int(time.time()) + 600)}
    signed["sig"] = sign(signed, SECRET)
    by_sig = httpx.get(f"{server.url}/api/2.0/annotations", params=signed, timeout=30)
    assert by_sig.status_code == 200, by_sig.text
    assert by_sig.json() == by_secret.json()
    assert httpx.get(f"{server.url}/api/2.0/annotations", params=window, timeout=30).status_code == 401


def test_projects_are_isolated(server: ServerProcess) -> None:
    mine = app(server, "POST", json={"date": "2015-01-01", "description": "only in A"}).json()["results"]
    other_auth = (OTHER_USER, OTHER_SECRET)
    other_app = f"{server.url}/api/app/projects/{OTHER}/annotations"
    theirs = httpx.post(other_app, json={"date": "2015-01-01", "description": "only in B"}, auth=other_auth)
    assert theirs.status_code == 201
    b_listed = httpx.get(other_app, auth=other_auth).json()["results"]
    assert [a["description"] for a in b_listed] == ["only in B"]
    # B's credentials cannot reach A's annotation by id, through either shape.
    assert httpx.get(f"{other_app}/{mine['id']}", auth=other_auth).status_code == 404
    assert httpx.delete(f"{other_app}/{mine['id']}", auth=other_auth).status_code == 404
    legacy_b = httpx.get(
        f"{server.url}/api/2.0/annotations/delete",
        params={"project_id": str(OTHER), "id": str(mine["id"])},
        auth=other_auth,
    )
    assert legacy_b.status_code == 404
    listed_b = httpx.get(
        f"{server.url}/api/2.0/annotations",
        params={"project_id": str(OTHER), "from_date": "2015-01-01", "to_date": "2015-01-01"},
        auth=other_auth,
    ).json()["annotations"]
    assert [a["description"] for a in listed_b] == ["only in B"]
    # A's account pointed at B is refused.
    assert httpx.get(other_app, auth=(SA_USER, SA_SECRET)).status_code in (401, 403)
    # B's tags are B's: a tag of A cannot be attached in B.
    a_tag = app(server, "POST", "/tags", json={"name": "a-only"}).json()["results"]["id"]
    refused = httpx.post(other_app, json={"date": "2015-01-01", "description": "x", "tags": [a_tag]}, auth=other_auth)
    assert refused.status_code == 400
    assert app(server, "GET", f"/{mine['id']}").json()["results"]["description"] == "only in A"


def role_auth(role: Role) -> tuple[str, str]:
    return (f"ann.{role.value}", ROLE_SECRET)


def test_a_consumer_reads_but_cannot_write(server: ServerProcess) -> None:
    made = app(server, "POST", json={"date": "2014-04-04", "description": "kept"}).json()["results"]
    consumer = role_auth(Role.CONSUMER)
    assert app(server, "GET", auth=consumer).status_code == 200
    assert app(server, "GET", f"/{made['id']}", auth=consumer).status_code == 200
    assert app(server, "GET", "/tags", auth=consumer).status_code == 200
    refused = [
        app(server, "POST", json={"date": "2014-04-04", "description": "no"}, auth=consumer),
        app(server, "PATCH", f"/{made['id']}", json={"description": "no"}, auth=consumer),
        app(server, "DELETE", f"/{made['id']}", auth=consumer),
        app(server, "POST", "/tags", json={"name": "no"}, auth=consumer),
        legacy(server, "/create", {"date": "2014-04-04", "description": "no"}, auth=consumer),
        legacy(server, "/update", {"id": str(made["id"]), "description": "no"}, auth=consumer),
        legacy(server, "/delete", {"id": str(made["id"])}, auth=consumer),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert "with the consumer role may not" in refused[0].json()["error"]
    assert legacy(server, "", {"from_date": "2014-04-04", "to_date": "2014-04-04"}, auth=consumer).status_code == 200
    assert app(server, "GET", f"/{made['id']}").json()["results"]["description"] == "kept"
    assert [
        a["description"]
        for a in legacy(server, "", {"from_date": "2014-04-04", "to_date": "2014-04-04"}).json()["annotations"]
    ] == ["kept"]


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN, Role.OWNER])
def test_analysts_and_above_write(server: ServerProcess, role: Role) -> None:
    made = app(server, "POST", json={"date": "2013-03-03", "description": role.value}, auth=role_auth(role))
    assert made.status_code == 201
    item = f"/{made.json()['results']['id']}"
    assert app(server, "PATCH", item, json={"description": "x"}, auth=role_auth(role)).status_code == 200
    assert app(server, "DELETE", item, auth=role_auth(role)).status_code == 200
    assert app(server, "POST", "/tags", json={"name": f"t-{role.value}"}, auth=role_auth(role)).status_code == 201
    created = legacy(server, "/create", {"date": "2013-03-03", "description": "l"}, auth=role_auth(role))
    assert created.status_code == 200
    deleted = legacy(server, "/delete", {"id": str(created.json()["annotation"]["id"])}, auth=role_auth(role))
    assert deleted.json() == {"error": False}


def test_list_filters_by_tags_and_a_secret_made_annotation_has_no_user(server: ServerProcess) -> None:
    ops = app(server, "POST", "/tags", json={"name": "ops"}).json()["results"]["id"]
    web = app(server, "POST", "/tags", json={"name": "web"}).json()["results"]["id"]
    day = {"fromDate": "2012-02-02", "toDate": "2012-02-02"}
    a = app(server, "POST", json={"date": "2012-02-02 01:00:00", "description": "a", "tags": [ops]}).json()["results"]
    b = app(server, "POST", json={"date": "2012-02-02 02:00:00", "description": "b", "tags": [web, ops]}).json()
    c = app(server, "POST", json={"date": "2012-02-02 03:00:00", "description": "c"}, auth=(SECRET, "")).json()
    assert c["results"]["user"] is None
    assert [x["id"] for x in app(server, "GET", params={**day, "tags": str(web)}).json()["results"]] == [
        b["results"]["id"]
    ]
    both = app(server, "GET", params={**day, "tags": f"{web},{ops}"}).json()["results"]
    assert [x["id"] for x in both] == [a["id"], b["results"]["id"]]
    assert len(app(server, "GET", params=day).json()["results"]) == 3
    bad = app(server, "GET", params={"tags": "x"})
    assert bad.status_code == 400 and "tags must be" in bad.json()["error"]


def test_tag_name_and_tag_count_at_their_limits(server: ServerProcess) -> None:
    assert app(server, "POST", "/tags", json={"name": "n" * MAX_TAG_NAME}).status_code == 201
    over = app(server, "POST", "/tags", json={"name": "m" * (MAX_TAG_NAME + 1)})
    assert over.status_code == 400 and "longer than" in over.json()["error"]
    ids = [
        app(server, "POST", "/tags", json={"name": f"bulk-{i}"}).json()["results"]["id"] for i in range(MAX_TAGS + 1)
    ]
    at = app(server, "POST", json={"date": "2011-01-01", "description": "many", "tags": ids[:MAX_TAGS]})
    assert at.status_code == 201 and len(at.json()["results"]["tags"]) == MAX_TAGS
    beyond = app(server, "POST", json={"date": "2011-01-01", "description": "too many", "tags": ids})
    assert beyond.status_code == 400 and f"at most {MAX_TAGS} tags" in beyond.json()["error"]
