"""API keys with roles: reader < editor < admin, each including the ones below.

A key comes as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Keys are compared
in constant time, against every configured key, and never logged or echoed.
"""

from __future__ import annotations

import enum
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..settings import Settings
from .errors import ApiError


class Role(enum.IntEnum):
    """What a key may do; a higher role includes the lower ones."""

    reader = 1  # search and read
    editor = 2  # moderation and upload
    admin = 3  # training and reindexing


@dataclass(frozen=True)
class Principal:
    """Who is calling: the role, and a short non-secret label of the key for logs."""

    role: Role
    label: str


class KeyRing:
    """The configured keys. ``lookup`` compares against all of them in constant time."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        bad = sorted({r for r in keys.values() if r not in Role.__members__})
        if bad:
            raise ValueError(f"unknown API key role {bad[0]!r}; use reader, editor or admin")
        empty = [k for k in keys if not k.strip()]
        if empty:
            raise ValueError("an API key is empty; every key needs at least one character")
        self._keys = [(k.encode(), Role[r]) for k, r in keys.items()]

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:  # never the keys themselves
        return f"KeyRing({len(self._keys)} keys)"

    def lookup(self, key: str) -> Principal | None:
        given = key.encode()
        found: Principal | None = None
        for i, (known, role) in enumerate(self._keys):  # no early exit: constant time
            if hmac.compare_digest(given, known) and found is None:
                found = Principal(role, f"key#{i + 1}")
        return found


def load_keys(settings: Settings) -> KeyRing:
    """Keys from ``SMARTTAGS_API_KEYS`` and ``SMARTTAGS_API_KEYS_FILE`` (JSON ``{key: role}``)."""
    keys: dict[str, str] = dict(settings.api_keys)
    path: Path | None = settings.api_keys_file
    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read API keys file {path}: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError(f"API keys file {path}: expected a JSON object {{key: role}}")
        keys.update(data)
    return KeyRing(keys)


# Declared for the OpenAPI spec (security schemes); checked in ``require``.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets only keys of ``role`` or higher through (401 / 403)."""

    async def check(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
        header: str | None = Depends(_header),
    ) -> Principal:
        key = header or (bearer.credentials if bearer else None)
        if not key:
            raise ApiError(
                401, "unauthorized", "missing API key; send 'Authorization: Bearer KEY' or "
                "'X-API-Key: KEY'",
            )  # fmt: skip
        ring: KeyRing = request.app.state.keys
        who = ring.lookup(key)
        if who is None:
            raise ApiError(401, "unauthorized", "unknown API key")
        if who.role < role:
            raise ApiError(
                403, "forbidden", f"this needs the {role.name} role; the key has "
                f"{who.role.name}",
            )  # fmt: skip
        request.state.principal = who
        return who

    return check


reader = Depends(require(Role.reader))
editor = Depends(require(Role.editor))
admin = Depends(require(Role.admin))
