"""OpenAPI details: documented error responses and headers common to every operation, and
the request limits and defaults the server's settings give."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api import schemas as api_schemas
from api.middleware import REQUEST_ID_HEADER
from api.schemas import ErrorResponse
from rag.settings import Settings

ResponseExamples = dict[tuple[str, str, int], dict[str, Any]]

_ERRORS: dict[int, str] = {
    401: "No admin token was sent.",
    403: "Wrong admin token, or document writes are disabled (no RAG_ADMIN_TOKEN).",
    404: "No such document.",
    413: "The request body is over the size limit.",
    415: "The request body is not JSON.",
    422: "Invalid input; the message names the field.",
    429: "Too many questions from this client; retry after Retry-After seconds.",
    503: "The model or index is not loaded (yet), or the index cannot be used; or (POST /ask) "
    "too many questions are in flight: retry after Retry-After seconds.",
    507: "No disk space left to store the change; nothing was changed.",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme to use: Bearer.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before asking again.",
            "schema": {"type": "integer"},
        }
    },
}


def error_responses(
    *statuses: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for a route that can fail with ``statuses`` (``descriptions``:
    the route's own wording for some of them)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = (descriptions or {}).get(status, _ERRORS[status])
        entry: dict[str, Any] = {"model": ErrorResponse, "description": description}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def _restore_examples(schema: dict[str, Any], examples: ResponseExamples) -> None:
    """Put back example values FastAPI drops (it omits every null from the schema, so an
    example ``"answer": null`` would lose a required field)."""
    for (path, method, status), value in examples.items():
        response = schema["paths"][path][method]["responses"][str(status)]
        response["content"]["application/json"]["examples"] = value
    components = schema.get("components", {}).get("schemas", {})
    for name, component in components.items():
        model = getattr(api_schemas, name, None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            original = model.model_json_schema().get("examples")
            if original is not None:
                component["examples"] = original


def _apply_settings(schema: dict[str, Any], settings: Settings | None) -> None:
    """Show the running server's own limits and defaults, which come from its settings, where
    the request models can only give the settings' defaults."""
    if settings is None:
        return
    components = schema.get("components", {}).get("schemas", {})
    properties = components.get("AskRequest", {}).get("properties", {})
    if "question" in properties:
        properties["question"]["maxLength"] = settings.max_question_chars
    if "top_k" in properties:
        properties["top_k"]["default"] = settings.top_k


def install_openapi(app: FastAPI, examples: ResponseExamples | None = None) -> None:
    """Generate the schema once, documenting the request-id header on every response;
    ``examples`` are response examples by (path, method, status)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        _restore_examples(schema, examples or {})
        _apply_settings(schema, getattr(app.state, "settings", None))
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    response.setdefault("headers", {})[REQUEST_ID_HEADER] = {
                        "description": "The request's id (echoed if the client sent a sane "
                        "one); quote it when reporting a problem.",
                        "schema": {"type": "string"},
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
