"""Fixtures and helpers for the HTTP API tests (imported by tests/test_api_*.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from smarttags.api import create_app
from smarttags.service import SmartTags
from smarttags.settings import Settings

KEYS = {"reader-key": "reader", "editor-key": "editor", "admin-key": "admin"}
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def auth(role: str) -> dict[str, str]:
    """Headers with the test key of ``role``."""
    return {"Authorization": f"Bearer {role}-key"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is ``status`` in the one error shape; returns its ``error``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return dict(err)


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"api_keys": KEYS, "api_threads": 2, "upload_root": tmp_path / "uploads"}
    )


@pytest.fixture
def photos(make_image: Callable[..., Path], tmp_path: Path) -> Path:
    """6 photos per colour (a little different each), a taxonomy and a sidecar."""
    rng = np.random.default_rng(0)
    rows = ["path,title,description,keywords,manual_tags"]
    for name, rgb in COLOURS.items():
        for i in range(6):
            jitter = tuple(int(np.clip(c + rng.integers(-25, 25), 0, 255)) for c in rgb)
            make_image(f"{name}/{i:02d}.jpg", size=(48 + i, 40), color=jitter)
            manual = f"colour:{name}" if i == 0 else ""
            title = f"{name.title()} shirt {i}"
            rows.append(f"{name}/{i:02d}.jpg,{title},A {name} shirt,cotton,{manual}")
    (tmp_path / "taxonomy.csv").write_text(
        "id,title\n" + "".join(f"colour:{c},{c.title()}\n" for c in COLOURS)
    )
    (tmp_path / "sidecar.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "photos"


@pytest.fixture
def catalog(api_settings: Settings, photos: Path, tmp_path: Path) -> Settings:
    """The settings of a catalog holding the photos (ids /photos/<colour>/<nn>.jpg)."""
    with SmartTags(api_settings) as svc:
        svc.import_taxonomy(tmp_path / "taxonomy.csv")
        svc.ingest([photos], sidecar=tmp_path / "sidecar.csv", progress=False)
    return api_settings


@pytest.fixture
def client(catalog: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(catalog)) as c:
        yield c


@pytest.fixture
def empty_client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c
