"""The one error shape, ``{"error": {"code", "message"}}``, and the one place that maps the
pipeline's errors (and the framework's) to HTTP status codes."""

from __future__ import annotations

import errno
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from slowapi.errors import RateLimitExceeded
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from core.errors import (
    DocumentError,
    DocumentNotFound,
    IndexCorrupt,
    IndexMismatch,
    IndexNotFound,
    InvalidDocumentId,
    InvalidParameter,
    InvalidQuestion,
    ModelError,
    NotReady,
    RagError,
    RerankerUnavailable,
    StoreUnavailable,
    UnknownFilter,
)

log = logging.getLogger(__name__)

#: HTTP status of each pipeline error; a subclass takes its nearest listed ancestor's status.
STATUS_BY_ERROR: dict[type[RagError], int] = {
    InvalidQuestion: 422,
    InvalidParameter: 422,
    UnknownFilter: 404,  # a filter naming no document, like GET /documents/{id} (README)
    InvalidDocumentId: 422,
    DocumentError: 422,
    DocumentNotFound: 404,
    NotReady: 503,
    IndexNotFound: 503,
    IndexMismatch: 503,
    IndexCorrupt: 503,
    ModelError: 503,
    RerankerUnavailable: 503,
    StoreUnavailable: 503,
}

#: Error codes for statuses the framework raises (unknown route, wrong method, ...).
CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "not_ready",
    507: "insufficient_storage",
}

#: OS errors that mean the disk is full: the write is refused with 507, nothing else breaks.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

MAX_FIELD_ERRORS = 5


class ApiError(Exception):
    """An error the HTTP layer raises itself (authentication, limits)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit (an HTTPException, so FastAPI passes it through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


def status_of(exc: RagError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=dict(headers or {}))


async def send_error(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str
) -> None:
    """Answer an error from ASGI middleware (before any response has started)."""
    await error_response(status, code, message)(scope, receive, send)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """'body.question: String should have at least 1 character; ...' (no input echoed)."""
    parts = []
    for err in list(errors)[:MAX_FIELD_ERRORS]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid" and loc.isdigit():
            loc, msg = "body", f"{msg} at character {loc}"  # FastAPI puts the position there
        parts.append(f"{loc}: {msg}")
    extra = len(errors) - MAX_FIELD_ERRORS
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts) or "invalid request"


def retry_after_seconds(request: Request) -> int:
    """Seconds until the rate-limit window that refused ``request`` resets (at least 1)."""
    current = getattr(request.state, "view_rate_limit", None)
    limiter = getattr(request.app.state, "limiter", None)
    if current is None or limiter is None:
        return 1
    item, args = current
    try:
        reset = limiter.limiter.get_window_stats(item, *args).reset_time
    except Exception:  # storage trouble: a conservative guess beats a failure
        return int(item.get_expiry())
    return max(1, math.ceil(reset - time.time()))


async def _rag_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RagError)
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, NotReady):
        log.warning("%s: %s", exc.code, exc)
    return error_response(status, exc.code, str(exc) or exc.code)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    """A full disk is the one OS error with its own answer; any other is a 500 (re-raised to
    the request-context middleware, which logs it with its traceback)."""
    assert isinstance(exc, OSError)
    if exc.errno not in NO_SPACE_ERRNOS:
        raise exc
    log.error("a write failed for lack of disk space: %s", exc)
    return error_response(
        507,
        "insufficient_storage",
        "the server has no disk space left to store this change; nothing was changed, and "
        "the previous version is still served",
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", describe_validation_errors(exc.errors()))


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitExceeded)
    seconds = retry_after_seconds(request)
    return error_response(
        429,
        "rate_limited",
        f"too many questions from this client (limit {exc.detail}); retry in {seconds} s",
        {"Retry-After": str(seconds)},
    )


#: FastAPI's answer to a body it cannot decode (e.g. not UTF-8): invalid input like any other.
_UNPARSABLE_BODY = "There was an error parsing the body"


#: The methods ``Allow`` may list, in its order.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """``Allow`` for the request's path: every method some route fully matches it with.
    (Starlette lists only the first matching route's methods, so ``GET`` alone for
    ``/documents/{doc_id}``, whose ``PUT`` and ``DELETE`` are routes of their own; asking each
    route, through the public ``matches``, also sees into included routers.)"""
    routes = request.app.router.routes
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allow = allowed_methods(request)
        return error_response(
            405,
            "method_not_allowed",
            f"method not allowed here; allowed: {allow}",
            {**(exc.headers or {}), "Allow": allow},
        )
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        return error_response(422, "invalid_request", "body: not valid JSON in UTF-8")
    unrouted = exc.status_code == 404 and exc.detail == "Not Found"
    if unrouted and request.url.path.startswith("/documents/"):
        # /documents/{doc_id} matches every id but one with a line break: refuse it the same way
        return error_response(
            422,
            InvalidDocumentId.code,
            "invalid document id: use 1-128 letters, digits, '-' or '_'",
        )
    code = CODE_BY_STATUS.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route: see /docs for the API"
    return error_response(exc.status_code, code, message, exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RateLimitExceeded, _rate_limited)
    app.add_exception_handler(StarletteHTTPException, _http_error)
