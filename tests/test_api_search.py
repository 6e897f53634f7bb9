"""Search, asset detail and similar images over HTTP."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_api_support)

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from ranking.query import MAX_LIMIT, MAX_QUERY_CHARS, MAX_WINDOW
from smarttags.settings import Settings
from tests.test_api_support import (  # noqa: F401
    api_settings,
    assert_error,
    auth,
    catalog,
    client,
    photos,
)

READER = auth("reader")


def test_search_returns_tiers_hits_and_facets(client: TestClient) -> None:
    r = client.get("/v1/search", params={"q": "red shirt"}, headers=READER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 6 and body["total_relation"] == "eq"
    assert body["tiers"] == {"1": 6}
    assert {h["asset"] for h in body["hits"]} == {f"/photos/red/{i:02d}.jpg" for i in range(6)}
    assert all(h["tier"] == 1 and h["score"] > 0 and h["why"] is None for h in body["hits"])
    assert body["facets"]["manual_tags"] == [{"tag": "colour:red", "count": 1}]
    assert body["offset"] == 0 and body["limit"] == 20


def test_search_explain_paging_and_filters(client: TestClient) -> None:
    r = client.get(
        "/v1/search",
        params={"q": "shirt", "explain": "true", "limit": 5, "offset": 5, "format": "jpeg"},
        headers=READER,
    )
    body = r.json()
    assert r.status_code == 200 and body["total"] == 18 and len(body["hits"]) == 5
    assert body["hits"][0]["why"]["fields"] == {"shirt": ["title", "description"]}
    page = client.get(
        "/v1/search", params={"q": "shirt", "path": "/photos/blue", "limit": 50}, headers=READER
    ).json()
    assert page["total"] == 6 and all(h["asset"].startswith("/photos/blue/") for h in page["hits"])
    tagged = client.get(
        "/v1/search", params={"q": "shirt", "tag": "colour:green"}, headers=READER
    ).json()
    assert [h["asset"] for h in tagged["hits"]] == ["/photos/green/00.jpg"]
    post = client.post("/v1/search", json={"q": "shirt", "tags": ["colour:green"]}, headers=READER)
    assert post.json()["hits"] == tagged["hits"]


def test_search_profiles_by_name_and_inline(client: TestClient, catalog: Settings) -> None:
    folder = catalog.ranking_profiles_dir
    folder.mkdir(parents=True)
    (folder / "titles.json").write_text(json.dumps({"field_weights": {"title": 9}}))
    named = client.get("/v1/search", params={"q": "red", "profile": "titles"}, headers=READER)
    inline = client.post(
        "/v1/search", json={"q": "red", "profile": {"field_weights": {"title": 9}}}, headers=READER
    )
    assert named.status_code == inline.status_code == 200
    assert [h["score"] for h in named.json()["hits"]] == [h["score"] for h in inline.json()["hits"]]
    assert named.json()["hits"][0]["score"] == 3009.0
    assert_error(
        client.get("/v1/search", params={"q": "red", "profile": "nope"}, headers=READER),
        404, "unknown_profile",
    )  # fmt: skip
    bad = client.post("/v1/search", json={"q": "red", "profile": {"confidence_floor": 2}},
                      headers=READER)  # fmt: skip
    assert "confidence_floor" in assert_error(bad, 422, "invalid_profile")["message"]
    lang = client.post("/v1/search", json={"q": "red", "profile": {"languages": ["de"]}},
                       headers=READER)  # fmt: skip
    assert_error(lang, 422, "invalid_profile")
    traversal = client.get("/v1/search", params={"q": "red", "profile": "../x"}, headers=READER)
    assert_error(traversal, 422, "invalid_request")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"q": "x" * (MAX_QUERY_CHARS + 1)}, 422, "invalid_request"),
        ({"q": ""}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ({"q": "!!! ..."}, 400, "invalid_query"),
        ({"q": "red", "limit": MAX_LIMIT + 1}, 422, "invalid_request"),
        ({"q": "red", "limit": 0}, 422, "invalid_request"),
        ({"q": "red", "offset": -1}, 422, "invalid_request"),
        ({"q": "red", "offset": MAX_WINDOW - 10, "limit": 20}, 400, "invalid_query"),
        ({"q": "red", "path": "photos"}, 400, "invalid_query"),
        ({"q": "red", "limit": "many"}, 422, "invalid_request"),
    ],
)
def test_search_bad_input(
    client: TestClient, params: dict[str, object], status: int, code: str
) -> None:
    assert_error(client.get("/v1/search", params=params, headers=READER), status, code)


def test_search_post_bad_bodies(client: TestClient) -> None:
    assert_error(client.post("/v1/search", json={"q": "red", "nope": 1}, headers=READER), 422)
    assert_error(client.post("/v1/search", content=b"{", headers={**READER,
                 "Content-Type": "application/json"}), 422, "invalid_request")  # fmt: skip
    assert_error(client.post("/v1/search", json=[1, 2], headers=READER), 422)


def test_asset_detail_with_manual_and_smart_tags(client: TestClient) -> None:
    r = client.get("/v1/assets/photos/red/00.jpg", headers=READER)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["id"] == "/photos/red/00.jpg" and a["title"] == "Red shirt 0"
    assert a["manual_tags"] == ["colour:red"] and a["smart_tags"] == []
    assert a["format"] == "JPEG" and a["width"] == 48 and len(a["sha256"]) == 64
    assert "source" not in a  # the server's file paths stay private
    assert_error(client.get("/v1/assets/photos/nope.jpg", headers=READER), 404, "unknown_asset")


def test_similar(client: TestClient) -> None:
    r = client.get("/v1/similar", params={"asset": "/photos/red/00.jpg", "k": 3}, headers=READER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["asset"] == "/photos/red/00.jpg" and len(body["hits"]) == 3
    assert "/photos/red/00.jpg" not in [h["asset"] for h in body["hits"]]
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert_error(client.get("/v1/similar", params={"asset": "/x.jpg"}, headers=READER), 404)
    assert_error(
        client.get("/v1/similar", params={"asset": "/photos/red/00.jpg", "k": 101},
                   headers=READER), 422,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "/v1/search?q=red", None),
        ("POST", "/v1/search", {"q": "red"}),
        ("GET", "/v1/assets/photos/red/00.jpg", None),
        ("GET", "/v1/similar?asset=/photos/red/00.jpg", None),
    ],
)
def test_reader_endpoints_need_a_key(
    client: TestClient, method: str, url: str, body: object
) -> None:
    missing = client.request(method, url, json=body)
    assert "missing API key" in assert_error(missing, 401, "unauthorized")["message"]
    unknown = client.request(method, url, json=body, headers={"X-API-Key": "wrong"})
    assert_error(unknown, 401, "unauthorized")
    for header in (auth("reader"), {"X-API-Key": "admin-key"}):
        assert client.request(method, url, json=body, headers=header).status_code == 200
