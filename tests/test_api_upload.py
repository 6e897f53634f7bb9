"""Uploads: size limit, decoding before storing, folders, replace, tagging on upload."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_api_support)

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from smarttags.api import create_app
from smarttags.settings import Settings
from tests.conftest import jpeg_bytes
from tests.test_api_support import (  # noqa: F401
    api_settings,
    assert_error,
    auth,
    catalog,
    client,
    photos,
)

EDITOR = auth("editor")


def _files(data: bytes, name: str = "new.jpg") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, "image/jpeg")}


def _stored(settings: Settings) -> list[Path]:
    root = settings.uploads_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_stores_ingests_and_is_searchable(client: TestClient, catalog: Settings) -> None:
    r = client.post(
        "/v1/uploads", files=_files(jpeg_bytes()), data={"folder": "/incoming/2024"},
        headers=EDITOR,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["asset"] == "/incoming/2024/new.jpg" and body["ingest"]["added"] == 1
    assert _stored(catalog) == [catalog.uploads_dir / "incoming/2024/new.jpg"]
    detail = client.get("/v1/assets/incoming/2024/new.jpg", headers=auth("reader")).json()
    assert detail["format"] == "JPEG" and detail["width"] == 64
    hits = client.get("/v1/search", params={"q": "new", "path": "/incoming"}, headers=EDITOR)
    assert hits.status_code == 200
    again = client.post("/v1/uploads", files=_files(jpeg_bytes()),
                        data={"folder": "incoming/2024"}, headers=EDITOR)  # fmt: skip
    assert_error(again, 409, "asset_exists")
    replaced = client.post(
        "/v1/uploads", files=_files(jpeg_bytes(color=(1, 2, 3))),
        data={"folder": "incoming/2024", "replace": "true"}, headers=EDITOR,
    )  # fmt: skip
    assert replaced.status_code == 201 and replaced.json()["ingest"]["modified"] == 1


def test_upload_names_and_default_folder(client: TestClient) -> None:
    r = client.post("/v1/uploads", files=_files(jpeg_bytes(), "C:\\tmp\\photo"), headers=EDITOR)
    assert r.status_code == 201 and r.json()["asset"] == "/uploads/photo.jpg"
    assert_error(client.post("/v1/uploads", files=_files(jpeg_bytes(), ".hidden.jpg"),
                             headers=EDITOR), 422, "invalid_file_name")  # fmt: skip
    for folder in ("../etc", "/a/../../b", "a/.git", "/"):
        bad = client.post("/v1/uploads", files=_files(jpeg_bytes()), data={"folder": folder},
                          headers=EDITOR)  # fmt: skip
        assert_error(bad, 422, "invalid_folder")


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"hello, not an image", 415, "unsupported_media_type"),
        (b"", 422, "invalid_image"),
        (jpeg_bytes()[:200], 422, "invalid_image"),
    ],
)
def test_bad_images_are_refused_before_anything_is_stored(
    client: TestClient, catalog: Settings, data: bytes, status: int, code: str
) -> None:
    r = client.post("/v1/uploads", files=_files(data), headers=EDITOR)
    assert_error(r, status, code)
    assert _stored(catalog) == []


@pytest.fixture
def small_client(catalog: Settings) -> Iterator[TestClient]:
    limited = catalog.model_copy(update={"upload_max_bytes": 2000, "max_pixels": 5000})
    with TestClient(create_app(limited)) as c:
        yield c


def test_size_and_pixel_limits(small_client: TestClient, catalog: Settings) -> None:
    big = jpeg_bytes(size=(400, 300))
    assert len(big) > 2000
    r = small_client.post("/v1/uploads", files=_files(big), headers=EDITOR)
    assert_error(r, 413, "payload_too_large")
    buf = io.BytesIO()
    Image.new("RGB", (100, 80), (9, 9, 9)).save(buf, "PNG")
    many_pixels = buf.getvalue()
    assert len(many_pixels) < 2000
    r = small_client.post("/v1/uploads", files=_files(many_pixels), headers=EDITOR)
    assert_error(r, 413, "image_too_large")
    assert _stored(catalog) == []


def test_upload_needs_multipart_and_the_editor_role(client: TestClient) -> None:
    assert_error(client.post("/v1/uploads", content=jpeg_bytes(), headers={
        **EDITOR, "Content-Type": "image/jpeg"}), 415, "unsupported_media_type")  # fmt: skip
    assert_error(client.post("/v1/uploads", data={"folder": "x"}, files={"other": ("a", b"1")},
                             headers=EDITOR), 422)  # fmt: skip
    assert_error(client.post("/v1/uploads", files=_files(jpeg_bytes())), 401)
    assert_error(client.post("/v1/uploads", files=_files(jpeg_bytes()), headers=auth("reader")),
                 403, "forbidden")  # fmt: skip
    ok = client.post("/v1/uploads", files=_files(jpeg_bytes()), headers=auth("admin"))
    assert ok.status_code == 201
    bad_flag = client.post("/v1/uploads", files=_files(jpeg_bytes()), data={"tag": "maybe"},
                           headers=EDITOR)  # fmt: skip
    assert_error(bad_flag, 422, "invalid_request")
