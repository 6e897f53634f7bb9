"""Property-based run of every operation in the OpenAPI spec (schemathesis): generated
requests, with an admin key, never get a 500 and every answer matches the spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from PIL import Image
from schemathesis.core import NotSet
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from smarttags.api import create_app
from smarttags.service import SmartTags
from smarttags.settings import Settings
from tests.test_api_support import KEYS


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    tmp = tmp_path_factory.mktemp("schema")
    photos = tmp / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    s = Settings(home=tmp / "home", embedder="fake", threads=1, batch_size=4, api_keys=KEYS,
                 api_threads=2, upload_max_bytes=100_000)  # fmt: skip
    with SmartTags(s) as svc:
        svc.ingest([photos], progress=False)
    yield create_app(s)


@pytest.fixture(scope="module")
def client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as c:
        yield c


# The committed spec (test_api_ops checks that it is current) drives the generation.
SPEC = json.loads((Path(__file__).resolve().parent.parent / "openapi.json").read_text())
SCHEMA = schemathesis.openapi.from_dict(SPEC)
OPERATIONS = [(path, method.upper()) for path, ops in SPEC["paths"].items() for method in ops]


OURS = ("x-api-key", "authorization", "content-type")  # headers the client sets


def send(client: TestClient, case: Case) -> httpx.Response:
    """The generated request, through the in-process client, with an admin key."""
    kwargs: dict[str, Any] = {
        "params": case.query,
        "headers": {
            **{k: v for k, v in (case.headers or {}).items() if k.lower() not in OURS},
            "Authorization": "Bearer admin-key",
        },
    }
    body = case.body
    if case.media_type == "multipart/form-data" and isinstance(body, dict):
        raw = body.get("file", b"")
        files = {"file": ("f.jpg", raw if isinstance(raw, bytes) else str(raw).encode())}
        data = {k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in body.items() if k != "file"}  # fmt: skip
        kwargs.update(files=files, data=data)
    elif case.media_type is not None and not isinstance(body, NotSet):
        kwargs["json"] = body
    return client.request(case.method, case.formatted_path, **kwargs)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_server_errors_and_answers_match_the_spec(
    client: TestClient, path: str, method: str
) -> None:
    @given(case=SCHEMA[path][method].as_strategy())
    @settings(
        max_examples=8,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Case) -> None:
        response = send(client, case)
        assert response.status_code < 500, (method, path, response.text[:500])
        # The key is ours, not generated, so "ignores auth" does not apply; and a
        # schema-valid request may still be refused for its meaning (a query of no
        # words is 400, an unknown example folder 422), so "accepts valid data" neither.
        case.validate_response(response, excluded_checks=[ignored_auth, positive_data_acceptance])

    check()


def test_spec_lists_every_route(api_app: FastAPI) -> None:
    paths = api_app.openapi()["paths"]
    assert len(paths) >= 20 and all(p.startswith("/v1/") for p in paths)
