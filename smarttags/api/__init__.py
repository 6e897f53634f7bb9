"""The HTTP API: a FastAPI app over the :class:`~smarttags.service.SmartTags` service."""

from .app import create_app

__all__ = ["create_app"]
