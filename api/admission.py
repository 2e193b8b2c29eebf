"""Bounded admission for ``POST /ask``: refuse work the server cannot start soon.

Questions are answered in worker threads, at most ``ask_concurrency`` at once; the others
wait for a free thread. Without a bound that wait grows with the load, and under overload
every client waits for seconds (and then times out) instead of being told to come back.
:class:`AdmissionMiddleware` counts the questions in the process (answered or waiting) and
refuses a new one, before reading its body, with ``503 overloaded`` and ``Retry-After``, when

- ``ask_queue_limit`` questions are already waiting (a hard cap), or
- the questions waiting would take longer than ``ask_max_wait`` seconds to start, estimated
  from the recent answer rate (Little's law: waiting / answers per second). That adapts the
  bound to the mode (a re-ranked answer costs 20 times a fast one) and to the machine. After
  a quiet spell the last rate measured stands in until new answers measure it again (the
  machine has not slowed down: a burst after a pause is served as the load before it was);
  only before the first rate is known (just after start-up) may no more than
  ``ask_concurrency`` wait.

A refusal costs microseconds, and the admitted requests keep their latency.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response

log = logging.getLogger(__name__)

#: Seconds a refused client is asked to wait before it tries again.
RETRY_AFTER_SECONDS = 1
#: The answer rate is measured over the answers of the last this many seconds...
RATE_WINDOW = 5.0
#: ... and only once there are at least this many (before that, only the hard cap applies).
RATE_MIN_SAMPLES = 4


class Admission:
    """The in-process count of admitted questions and the bounds on it. Not thread-safe on
    purpose: only the event loop's thread touches it."""

    def __init__(
        self,
        concurrency: int,
        queue_limit: int,
        max_wait: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.limit = concurrency + queue_limit
        self.max_wait = max_wait
        self.clock = clock
        self.in_flight = 0
        self.refused = 0
        self._answered: deque[float] = deque(maxlen=256)  # when recent answers finished
        self._last_rate: float | None = None  # the last rate measured, kept over quiet spells

    def answer_rate(self, now: float) -> float | None:
        """Answers per second over the last RATE_WINDOW seconds; None with too few."""
        while self._answered and now - self._answered[0] > RATE_WINDOW:
            self._answered.popleft()
        if len(self._answered) < RATE_MIN_SAMPLES:
            return None
        span = max(now - self._answered[0], 1e-3)
        self._last_rate = (len(self._answered) - 1) / span  # n answers: n - 1 intervals
        return self._last_rate

    def estimated_rate(self, now: float) -> float | None:
        """The recent answer rate, else the last one measured; None before the first."""
        return self.answer_rate(now) or self._last_rate

    def expected_wait(self, now: float) -> float:
        """Seconds a question admitted now would wait for a thread (0 if one is free)."""
        waiting = self.in_flight - self.concurrency + 1
        if waiting <= 0:
            return 0.0
        rate = self.estimated_rate(now)
        return waiting / rate if rate else 0.0

    def try_enter(self) -> bool:
        over = self.in_flight >= self.limit
        if not over and self.max_wait > 0:
            now = self.clock()
            if self.estimated_rate(now) is None:
                # No answer rate measured yet (just started): let no more wait than are
                # being answered, until the rate is known.
                over = self.in_flight >= 2 * self.concurrency
            else:
                over = self.expected_wait(now) > self.max_wait
        if over:
            self.refused += 1
            return False
        self.in_flight += 1
        return True

    def leave(self, answered: bool) -> None:
        self.in_flight -= 1
        if answered:
            self._answered.append(self.clock())


class AdmissionMiddleware:
    """Pure ASGI middleware admitting ``POST /ask`` within the bounds of ``admission``."""

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
                "the server is answering as many questions as it can; retry in "
                f"{RETRY_AFTER_SECONDS} s",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            # Only real answers measure the answer rate (a 422 costs nothing).
            self.admission.leave(answered=status == 200)


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
