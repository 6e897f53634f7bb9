"""Health, metrics, reindex jobs, keys, the one error shape, and the committed spec."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_api_support)

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from smarttags.api import create_app
from smarttags.api.auth import KeyRing
from smarttags.cli import cli
from smarttags.serve_command import openapi_text
from smarttags.service import SmartTags
from smarttags.settings import Settings
from tests.test_api_support import (  # noqa: F401
    KEYS,
    api_settings,
    assert_error,
    auth,
    catalog,
    client,
    empty_client,
    photos,
)

REPO = Path(__file__).resolve().parent.parent
READER, ADMIN = auth("reader"), auth("admin")


def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["checks"] == {"catalog": "ok", "search_backend": "ok"}


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_prometheus_text(client: TestClient) -> None:
    for _ in range(3):
        client.get("/v1/search", params={"q": "red"}, headers=READER)
    client.get("/v1/assets/photos/nope.jpg", headers=READER)
    client.get("/v1/no/such/route")
    r = client.get("/v1/metrics", headers=READER)
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    text = r.text
    for line in text.splitlines():  # every line: a comment or `name{labels} value`
        assert line.startswith("# ") or re.fullmatch(r"[a-z_]+(\{.*\})? [-+0-9.eInf]+", line), line
    s = _samples(text)
    search = 'method="GET",route="/v1/search",status="200"'
    assert s[f"smarttags_http_requests_total{{{search}}}"] == 3
    assert s[f'smarttags_http_request_duration_seconds_bucket{{{search},le="+Inf"}}'] == 3
    assert s[f"smarttags_http_request_duration_seconds_count{{{search}}}"] == 3
    assert s['smarttags_http_requests_total{method="GET",route="/v1/assets/{asset_id}",'
             'status="404"}'] == 1  # fmt: skip
    assert s['smarttags_http_requests_total{method="GET",route="unmatched",status="404"}'] == 1
    assert s["smarttags_assets"] == 18 and s["smarttags_search_documents"] == 18
    assert s['smarttags_embeddings{embedder="fake"}'] == 18
    assert s['smarttags_search_outbox{state="queued"}'] == 0
    assert_error(client.get("/v1/metrics"), 401)


def test_reindex_job(client: TestClient) -> None:
    assert client.get("/v1/reindex", headers=READER).json() is None
    assert_error(client.post("/v1/reindex", headers=auth("editor")), 403)
    r = client.post("/v1/reindex", json={"full": True}, headers=ADMIN)
    assert r.status_code == 202
    for _ in range(400):
        job = client.get("/v1/reindex", headers=READER).json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.025)
    assert job["status"] == "succeeded", job
    assert job["result"]["sent"] == 18 and job["result"]["full"] is True
    assert client.get("/v1/jobs", params={"kind": "reindex"}, headers=READER).json()[0] == job
    incremental = client.post("/v1/reindex", json={"full": False}, headers=ADMIN)
    assert incremental.status_code == 202
    assert_error(client.post("/v1/reindex", json={"full": "x"}, headers=ADMIN), 422)


def test_keys_from_a_file_and_bad_keys(api_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"file-key": "editor"}))
    app = create_app(api_settings.model_copy(update={"api_keys_file": path}))
    with TestClient(app) as c:
        assert c.get("/v1/models", headers={"X-API-Key": "file-key"}).status_code == 200
        assert c.get("/v1/models", headers={"X-API-Key": "reader-key"}).status_code == 200
    path.write_text(json.dumps({"k": "owner"}))
    with pytest.raises(ValueError, match="unknown API key role 'owner'"):
        create_app(api_settings.model_copy(update={"api_keys_file": path}))
    path.write_text("not json")
    with pytest.raises(ValueError, match="cannot read API keys file"):
        create_app(api_settings.model_copy(update={"api_keys_file": path}))


def test_keys_never_show(api_settings: Settings) -> None:
    ring = KeyRing(KEYS)
    assert "reader-key" not in repr(ring) and "reader-key" not in repr(api_settings)
    assert ring.lookup("admin-key") is not None and ring.lookup("admin-ke") is None
    assert ring.lookup("reader-key").role.name == "reader"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="empty"):
        KeyRing({" ": "admin"})


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMARTTAGS_API_KEYS", '{"k1": "admin"}')
    monkeypatch.setenv("SMARTTAGS_UPLOAD_MAX_BYTES", "1000")
    s = Settings(home=tmp_path)
    assert s.api_keys == {"k1": "admin"} and s.upload_max_bytes == 1000
    assert s.uploads_dir == tmp_path / "uploads"
    monkeypatch.setenv("SMARTTAGS_API_KEYS", '{"k1": "root"}')
    with pytest.raises(ValueError, match="api_keys"):
        Settings(home=tmp_path)


def test_serve_refuses_to_start_without_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "serve"], env={
        "SMARTTAGS_API_KEYS": "{}", "SMARTTAGS_EMBEDDER": "fake"})  # fmt: skip
    assert result.exit_code == 1 and "no API keys are configured" in result.output


ERROR_CASES: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/v1/nowhere", {}, 404),
    ("DELETE", "/v1/health", {}, 405),
    ("GET", "/v1/search", {"headers": READER}, 422),
    ("GET", "/v1/search?q=%21%21", {"headers": READER}, 400),
    ("GET", "/v1/search?q=red", {}, 401),
    ("GET", "/v1/search?q=red", {"headers": {"Authorization": "Bearer nope"}}, 401),
    ("POST", "/v1/reindex", {"headers": READER}, 403),
    ("GET", "/v1/assets/none.jpg", {"headers": READER}, 404),
    ("GET", "/v1/similar?asset=/none.jpg", {"headers": READER}, 404),
    ("POST", "/v1/uploads", {"headers": auth("editor"), "content": b"x"}, 415),
    ("POST", "/v1/models", {"headers": ADMIN, "json": {"title": "t", "tags": {"x:y": ["/z"]}}},
     201),
    ("POST", "/v1/models", {"headers": ADMIN, "json": {"title": "t"}}, 409),
    ("POST", "/v1/models/t/versions/9/activate", {"headers": ADMIN}, 404),
    ("POST", "/v1/moderation/remove", {"headers": ADMIN, "json": {"asset": "/a", "tag": "b"}}, 404),
    ("GET", "/v1/jobs/x", {"headers": READER}, 404),
]  # fmt: skip


def test_every_error_has_the_one_shape(client: TestClient) -> None:
    for method, url, kwargs, status in ERROR_CASES:
        r = client.request(method, url, **kwargs)
        if status < 400:
            assert r.status_code == status, r.text
        else:
            assert_error(r, status)


def test_unexpected_errors_are_500_in_the_one_shape(
    catalog: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: SmartTags, *a: object, **k: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(SmartTags, "search", boom)
    with TestClient(create_app(catalog), raise_server_exceptions=False) as c:
        err = assert_error(c.get("/v1/search?q=red", headers=READER), 500, "internal_error")
        assert "secret" not in err["message"]


def test_committed_openapi_spec_is_current(api_settings: Settings) -> None:
    current = openapi_text(create_app(api_settings).openapi())
    committed = (REPO / "openapi.json").read_text(encoding="utf-8")
    assert committed == current, (
        "openapi.json is stale; regenerate it with `smarttags openapi --out openapi.json` "
        "and commit it"
    )


def test_docs_are_served(empty_client: TestClient) -> None:
    assert empty_client.get("/openapi.json").json()["info"]["title"] == "smarttags"
    assert empty_client.get("/docs").status_code == 200


def test_jobs_keep_the_newest_finished_and_every_active_one(api_settings: Settings) -> None:
    from smarttags.api.runtime import Jobs

    jobs = Jobs(api_settings, keep=2)
    try:
        done = [jobs.start("k", str(i), lambda svc, i=i: i)[0] for i in range(4)]
        for _ in range(400):
            if not any(j.active for j in done):
                break
            time.sleep(0.01)
        jobs.start("k", "last", lambda svc: None)
        kept = [j.target for j in jobs.list()]
        assert "last" in kept and "0" not in kept and len(kept) == 2
    finally:
        jobs.close()
