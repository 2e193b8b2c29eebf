"""Pure ASGI middleware: request ids and access logs, and request body limits."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLarge, error_response, send_error

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

access_log = logging.getLogger("api.access")
log = logging.getLogger(__name__)


def request_id_of(scope: Scope) -> str:
    """The request's id: a sane incoming ``X-Request-ID``, else a new random one."""
    incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Give every request an id (echoed in ``X-Request-ID``), write one access-log line per
    request, and turn any unhandled exception into a 500 in the error shape (logged here with
    its traceback; the client never sees one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if status is None:
                await send_error(
                    scope,
                    receive,
                    send_with_id,
                    500,
                    "internal_error",
                    f"internal error; quote request id {request_id} when reporting it",
                )
        finally:
            route = scope.get("route")
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope.get("method"),
                        "route": getattr(route, "path_format", None),
                        "path": scope.get("path"),
                        "status": status,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": (scope.get("client") or (None,))[0],
                        "pid": os.getpid(),
                    },
                    ensure_ascii=True,  # one line whatever the path holds (no U+2028 etc.)
                )
            )


class BodyLimitMiddleware:
    """Refuse request bodies over a per-path limit with 413, without reading them whole: a
    declared ``Content-Length`` over the limit is refused before any byte is read, and a
    streamed body is counted as it arrives and refused as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            error = BodyTooLarge(limit)
            await send_error(scope, receive, send, 413, "payload_too_large", error.detail)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:  # normally answered by the app's handler; this is a backstop
            if response_started:
                raise
            await send_error(scope, receive, send, 413, "payload_too_large", exc.detail)


class JsonErrorCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, with a refused preflight in the one error shape and with
    no ``Access-Control-Allow-*`` header at all (Starlette's lists the allowed methods and
    headers even to an origin it refuses)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode("utf-8", errors="replace")
        return error_response(response.status_code, "cors_rejected", reason, {"Vary": "Origin"})
