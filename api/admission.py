"""Bounded admission for ``POST /ask``: refuse work the server cannot start soon.

Questions are answered in worker threads, at most ``ask_concurrency`` at once; the others
wait for a free thread. Without a bound that wait grows with the load, and under overload
every client waits for seconds (and then times out) instead of being told to come back.
:class:`AdmissionMiddleware` counts the questions in the process (answered or waiting) and
refuses one more than ``ask_concurrency + ask_queue_limit`` at once, before reading its body,
with ``503 overloaded`` and ``Retry-After``, so a refusal costs microseconds and the
admitted requests keep their latency.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response

log = logging.getLogger(__name__)

#: Seconds a refused client is asked to wait before it tries again.
RETRY_AFTER_SECONDS = 1


class Admission:
    """The in-process count of admitted questions and the bound on it. Not thread-safe on
    purpose: only the event loop's thread touches it."""

    def __init__(self, concurrency: int, queue_limit: int) -> None:
        self.limit = concurrency + queue_limit
        self.in_flight = 0
        self.refused = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


class AdmissionMiddleware:
    """Pure ASGI middleware admitting at most ``admission.limit`` ``POST /ask`` at once."""

    def __init__(self, app: ASGIApp, admission: Admission, path: str = "/ask") -> None:
        self.app = app
        self.admission = admission
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or scope.get("path") != self.path
        ):
            await self.app(scope, receive, send)
            return
        if not self.admission.try_enter():
            response = error_response(
                503,
                "overloaded",
                f"the server is answering as many questions as it can "
                f"({self.admission.limit} at once, with those waiting); retry in "
                f"{RETRY_AFTER_SECONDS} s",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave()


class AdmissionCollector(Collector):
    """``rag_ask_in_flight`` and ``rag_ask_refused_total`` for /metrics."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "rag_ask_in_flight",
            "Questions being answered or waiting for a thread in this process",
            value=self._admission.in_flight,
        )
        yield GaugeMetricFamily(
            "rag_ask_admission_limit",
            "Questions admitted at once before more are refused with 503",
            value=self._admission.limit,
        )
        yield CounterMetricFamily(
            "rag_ask_refused",
            "Questions refused with 503 because too many were in flight",
            value=self._admission.refused,
        )
