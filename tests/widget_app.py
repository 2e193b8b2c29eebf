"""The service with the widget's routes, for the widget tests: ``uvicorn --factory
widget_app:create_app`` (with ``tests/`` on the path) serves the real app from
``api.app.create_app`` plus ``api.web.router``, unless the app already includes it."""

from __future__ import annotations

from fastapi import FastAPI

from api import web
from api.app import create_app as create_service


def create_app() -> FastAPI:
    app = create_service()
    paths = {getattr(route, "path", None) for route in app.router.routes}
    if "/widget.js" not in paths:
        app.include_router(web.router)
    return app
