"""Tag models over HTTP (create, examples, train as a job, versions, diff, reports) and
moderation (remove, promote, bulk removal, tagging on upload)."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_api_support)

from __future__ import annotations

import io
import threading
import time
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook

from smarttags.service import SmartTags
from smarttags.settings import Settings
from tests.conftest import jpeg_bytes
from tests.test_api_support import (  # noqa: F401
    COLOURS,
    api_settings,
    assert_error,
    auth,
    catalog,
    client,
    photos,
)

ADMIN, READER, EDITOR = auth("admin"), auth("reader"), auth("editor")
SPEC = {
    "title": "Shirt colour",
    "tags": {f"colour:{c}": [f"/photos/{c}/"] for c in COLOURS},
}


def _wait(client: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    for _ in range(400):
        job = client.get(f"/v1/jobs/{job['id']}", headers=READER).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.025)
    raise AssertionError(f"job {job} did not finish")


def _train(client: TestClient, name: str = "shirt-colour", **body: Any) -> dict[str, Any]:
    r = client.post(f"/v1/models/{name}/train", json=body, headers=ADMIN)
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/v1/jobs/{r.json()['id']}"
    return _wait(client, r.json())


def test_model_lifecycle(client: TestClient) -> None:
    r = client.post("/v1/models", json=SPEC, headers=ADMIN)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["model"] == "shirt-colour" and created["tags"] == dict.fromkeys(
        (f"colour:{c}" for c in COLOURS), 6
    )
    assert {f["level"] for f in created["findings"]} == {"warning"}  # fewer than 10 examples
    assert_error(client.post("/v1/models", json=SPEC, headers=ADMIN), 409, "model_exists")
    assert client.get("/v1/models", headers=READER).json()[0]["examples"] == 18
    check = client.get("/v1/models/shirt-colour/check", headers=READER).json()
    assert all(f["level"] == "warning" for f in check)

    job = _train(client)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"model": "shirt-colour", "version": 1, "activated": True}
    job2 = _train(client, activate=False)
    assert job2["result"]["version"] == 2 and job2["result"]["activated"] is False
    versions = client.get("/v1/models/shirt-colour/versions", headers=READER).json()
    assert [(v["version"], v["status"], v["active"]) for v in versions] == [
        (1, "trained", True), (2, "trained", False)
    ]  # fmt: skip
    diff = client.get("/v1/models/shirt-colour/versions/2/diff", headers=READER)
    assert diff.status_code == 200 and diff.json()["against"] == 1
    act = client.post("/v1/models/shirt-colour/versions/2/activate", headers=ADMIN)
    assert act.status_code == 200 and act.json()["active_version"] == 2
    back = client.post("/v1/models/shirt-colour/versions/1/activate", headers=ADMIN)
    assert back.json()["active_version"] == 1  # rollback

    report = client.get("/v1/models/shirt-colour/report", headers=READER).json()
    assert report["version"] == 1 and len(report["tags"]) == 3
    xlsx = client.get("/v1/models/shirt-colour/report.xlsx?version=2", headers=READER)
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="shirt-colour-v2.xlsx"' in xlsx.headers["content-disposition"]
    assert "Tags" in load_workbook(io.BytesIO(xlsx.content)).sheetnames

    removed = client.request("DELETE", "/v1/models/shirt-colour/examples",
                             params={"tag": "colour:red", "asset": "/photos/red/00.jpg"},
                             headers=ADMIN)  # fmt: skip
    assert removed.json() == {"count": 1}
    added = client.post("/v1/models/shirt-colour/examples", headers=ADMIN,
                        json={"tag": "colour:red", "assets": ["/photos/red/00.jpg"]})  # fmt: skip
    assert added.json() == {"count": 1}
    assert_error(client.delete("/v1/models/shirt-colour/examples?tag=colour:red", headers=ADMIN),
                 422)  # fmt: skip
    detail = client.get("/v1/models/shirt-colour", headers=READER).json()
    assert len(detail["versions"]) == 2 and len(detail["tags"]["colour:red"]) == 6
    assert client.delete("/v1/models/shirt-colour", headers=ADMIN).status_code == 204
    assert_error(client.get("/v1/models/shirt-colour", headers=READER), 404, "unknown_model")


def test_model_errors(client: TestClient) -> None:
    assert_error(client.post("/v1/models", json={"title": ""}, headers=ADMIN), 422)
    assert_error(client.post("/v1/models", json={**SPEC, "name": "Bad Name"}, headers=ADMIN), 422)
    assert_error(client.post("/v1/models", json={**SPEC, "colour": 1}, headers=ADMIN), 422)
    bad_folder = {"title": "X", "tags": {"colour:red": ["/nowhere/"]}}
    assert_error(client.post("/v1/models", json=bad_folder, headers=ADMIN), 422, "invalid_model")
    one_tag = {"title": "One", "tags": {"colour:red": ["/photos/red/"]}}
    assert client.post("/v1/models", json=one_tag, headers=ADMIN).status_code == 201
    job = _train(client, "one")
    assert job["status"] == "failed" and job["error"]["code"] == "guideline_violation"
    assert job["error"]["details"]["findings"][0]["level"] == "error"
    assert_error(client.post("/v1/models/nope/train", headers=ADMIN), 404, "unknown_model")
    assert_error(client.get("/v1/models/one/report", headers=READER), 404, "unknown_model")
    assert_error(client.get("/v1/models/one/report.xlsx", headers=READER), 404)
    assert_error(client.post("/v1/models/one/versions/1/activate", headers=ADMIN), 404)
    assert_error(client.get("/v1/models/one/versions/0/diff", headers=READER), 422)
    assert_error(client.get("/v1/jobs/nope", headers=READER), 404, "unknown_job")


def test_model_roles(client: TestClient) -> None:
    for method, url in [("POST", "/v1/models"), ("POST", "/v1/models/x/train"),
                        ("POST", "/v1/models/x/versions/1/activate"),
                        ("DELETE", "/v1/models/x"), ("POST", "/v1/models/x/examples")]:  # fmt: skip
        assert_error(client.request(method, url, json={}, headers=EDITOR), 403, "forbidden")
        assert_error(client.request(method, url, json={}), 401, "unauthorized")
    for url in ["/v1/models", "/v1/models/x", "/v1/models/x/versions", "/v1/models/x/report",
                "/v1/models/x/check", "/v1/jobs"]:  # fmt: skip
        assert_error(client.get(url), 401)
        assert client.get(url, headers=READER).status_code in (200, 404)


def _smart_tags(settings: Settings, tags: dict[str, list[tuple[str, float]]]) -> None:
    with SmartTags(settings) as svc:
        for asset, pairs in tags.items():
            key = svc.catalog.get_asset(asset).key
            svc.catalog.put_smart_tags(key, [(t, c, "m@1") for t, c in pairs])
        svc.sync_search()


def test_moderation(client: TestClient, catalog: Settings) -> None:
    _smart_tags(catalog, {f"/photos/blue/{i:02d}.jpg": [("colour:green", 0.8)] for i in range(3)})
    hits = client.get("/v1/search", params={"q": "green"}, headers=READER).json()
    assert hits["tiers"] == {"1": 6, "2": 3}
    asset = "/photos/blue/01.jpg"
    r = client.post("/v1/moderation/promote", json={"asset": asset, "tag": "colour:green"},
                    headers=EDITOR)  # fmt: skip
    assert r.status_code == 200 and r.json()["smart_tag"]["promoted"] is True
    r = client.post("/v1/moderation/remove", json={"asset": "/photos/blue/00.jpg",
                    "tag": "colour:green"}, headers=EDITOR)  # fmt: skip
    assert r.status_code == 200, r.text
    detail = client.get("/v1/assets/photos/blue/00.jpg", headers=READER).json()
    assert detail["smart_tags"] == [] and detail["removed_smart_tags"][0]["tag"] == "colour:green"
    assert_error(client.post("/v1/moderation/remove", json={"asset": "/photos/blue/00.jpg",
                 "tag": "colour:green"}, headers=EDITOR), 404, "unknown_smart_tag")  # fmt: skip
    assert_error(client.post("/v1/moderation/remove", json={"asset": "/nope.jpg",
                 "tag": "colour:green"}, headers=EDITOR), 404, "unknown_asset")  # fmt: skip
    bulk = {"tag": "colour:green", "q": "blue"}
    dry = client.post("/v1/moderation/bulk-remove", json=bulk, headers=EDITOR).json()
    assert dry["dry_run"] is True and dry["with_tag"] == 2 and dry["removed"] == 0
    done = client.post("/v1/moderation/bulk-remove", json={**bulk, "dry_run": False},
                       headers=EDITOR).json()  # fmt: skip
    assert done["removed"] == 2
    for url in ("/v1/moderation/remove", "/v1/moderation/promote", "/v1/moderation/bulk-remove"):
        assert_error(client.post(url, json=bulk, headers=READER), 403)
        assert_error(client.post(url, json={}, headers=EDITOR), 422, "invalid_request")


def test_tagging_on_upload(client: TestClient) -> None:
    client.post("/v1/models", json=SPEC, headers=ADMIN)
    assert _train(client)["status"] == "succeeded"
    r = client.post("/v1/uploads", files={"file": ("t.jpg", jpeg_bytes(), "image/jpeg")},
                    data={"tag": "true"}, headers=EDITOR)  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["tagging"] is not None
    plain = client.post("/v1/uploads", files={"file": ("u.jpg", jpeg_bytes(), "image/jpeg")},
                        headers=EDITOR)  # fmt: skip
    assert plain.json()["tagging"] is None


def test_training_job_conflict(client: TestClient) -> None:
    client.post("/v1/models", json=SPEC, headers=ADMIN)
    release = threading.Event()
    jobs = client.app.state.runtime.jobs  # type: ignore[attr-defined]
    blocker, started = jobs.start("train", "shirt-colour", lambda svc: release.wait(10))
    assert started
    try:
        second = client.post("/v1/models/shirt-colour/train", headers=ADMIN)
        assert assert_error(second, 409, "job_running")["details"]["job"] == blocker.id
        reindex = client.post("/v1/reindex", headers=ADMIN)  # another kind: queued after it
        assert reindex.status_code == 202 and reindex.json()["status"] == "queued"
    finally:
        release.set()
    assert _wait(client, blocker.as_dict())["status"] == "succeeded"
    assert _wait(client, reindex.json())["status"] == "succeeded"
