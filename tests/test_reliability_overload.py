"""Overload, through a real ``rag serve``: at three times the load it sustains, the questions it
cannot start soon are refused at once (503 ``overloaded`` with Retry-After, or 429), nothing
else fails, and it answers normally again once the load stops. SIGTERM while questions are in
flight lets them finish, then the process exits with status 0."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from dataclasses import dataclass

import httpx
import pytest
from test_api_support import LiveServer, prepare_dirs
from test_reliability_support import record_figures

from api.admission import RATE_WINDOW, Admission

CONCURRENCY = 2  # questions answered at once
QUEUE = 4  # questions that may wait beyond those
LIMIT = CONCURRENCY + QUEUE
QUICKLY = 1.0  # seconds: a generous bound on a refusal, which takes milliseconds


@pytest.fixture(scope="module")
def server(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):
    root = tmp_path_factory.mktemp("reliability-overload")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={
            "RAG_ASK_RATE_LIMIT": "",
            "RAG_ASK_CONCURRENCY": str(CONCURRENCY),
            "RAG_ASK_QUEUE_LIMIT": str(QUEUE),
            "RAG_ANSWER_CACHE_SIZE": "0",  # every question costs the model, as a new one does
        },
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def questions(squad_articles) -> list[str]:
    return [q.question for a in squad_articles for q in a.questions][:400]


@dataclass
class Outcome:
    status: int  # 0: no HTTP answer (a transport error)
    seconds: float
    code: str = ""


async def one(client: httpx.AsyncClient, question: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post("/ask", json={"question": question, "top_k": 3})
    except httpx.TransportError as exc:
        return Outcome(0, time.perf_counter() - started, type(exc).__name__)
    code = ""
    if response.status_code != 200:
        code = response.json()["error"]["code"]
        assert response.headers.get("retry-after"), response.headers
    return Outcome(response.status_code, time.perf_counter() - started, code)


async def closed_loop(
    base_url: str, questions: list[str], clients: int, seconds: float
) -> list[Outcome]:
    """``clients`` clients asking back to back for ``seconds``."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:

        async def asker(n: int) -> None:
            while time.monotonic() < deadline:
                outcomes.append(await one(client, questions[n % len(questions)]))
                n += clients

        await asyncio.gather(*(asker(i) for i in range(clients)))
    return outcomes


async def open_loop(
    base_url: str, questions: list[str], rate: float, seconds: float
) -> list[Outcome]:
    """Questions arriving at ``rate`` per second for ``seconds``, whatever the answers."""
    limits = httpx.Limits(max_connections=1000)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        tasks = []
        started = time.monotonic()
        for n in range(int(rate * seconds)):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the arrivals, not synchronisation
            tasks.append(asyncio.create_task(one(client, questions[n % len(questions)])))
        return list(await asyncio.gather(*tasks))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


def metric(srv: LiveServer, name: str) -> float:
    text = httpx.get(f"{srv.base_url}/metrics", timeout=10).text
    found = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


def test_three_times_sustainable_load_is_refused_quickly(
    server: LiveServer, questions: list[str]
) -> None:
    # What it sustains: as many clients as it answers at once, asking back to back.
    warm = asyncio.run(closed_loop(server.base_url, questions, CONCURRENCY, 3.0))
    assert all(o.status == 200 for o in warm), {o.code for o in warm}
    sustainable = len(warm) / 3.0
    offered = 3 * sustainable
    outcomes = asyncio.run(open_loop(server.base_url, questions[100:], offered, 6.0))
    answered = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status in (429, 503)]
    others = [o for o in outcomes if o.status not in (200, 429, 503)]
    figures = {
        "sustainable_per_second": round(sustainable, 1),
        "offered_per_second": round(offered, 1),
        "requests": len(outcomes),
        "answered": len(answered),
        "refused": len(refused),
        "other_errors": len(others),
        "share_refused": round(len(refused) / len(outcomes), 3),
        "p99_seconds_to_refuse": round(p99([o.seconds for o in refused]), 4),
        "p99_seconds_answered": round(p99([o.seconds for o in answered]), 3),
    }
    record_figures("overload", figures)
    assert not others, [(o.status, o.code) for o in others]
    assert refused and answered, figures
    assert {o.code for o in refused} <= {"overloaded", "rate_limited"}
    assert figures["p99_seconds_to_refuse"] < QUICKLY, figures
    # Recovery: once the load stops nothing is in flight, and questions are answered again.
    deadline = time.monotonic() + 30
    while metric(server, "rag_ask_in_flight") > 0:
        assert time.monotonic() < deadline, "questions stuck in flight"
        time.sleep(0.05)
    after = asyncio.run(closed_loop(server.base_url, questions, CONCURRENCY, 1.0))
    assert after and all(o.status == 200 for o in after), {o.status for o in after}
    assert metric(server, "rag_ask_refused") == len([o for o in refused if o.status == 503])


def test_sigterm_finishes_requests_in_flight_and_exits_0(
    server: LiveServer, questions: list[str]
) -> None:
    assert server.proc is not None
    results: list[Outcome] = []

    def ask(question: str) -> None:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            started = time.perf_counter()
            try:
                response = client.post("/ask", json={"question": question, "top_k": 20})
            except httpx.TransportError as exc:  # sent after the server stopped listening
                results.append(Outcome(0, time.perf_counter() - started, type(exc).__name__))
                return
            results.append(Outcome(response.status_code, time.perf_counter() - started))

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions[200 : 200 + LIMIT]]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while (in_flight := metric(server, "rag_ask_in_flight")) < CONCURRENCY:
        assert time.monotonic() < deadline and len(results) < LIMIT, results
        time.sleep(0.002)
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=60)
    statuses = [o.status for o in results]
    # Every question the server had taken was answered; the others never reached it.
    assert statuses.count(200) >= in_flight, (in_flight, results)
    assert set(statuses) <= {200, 503, 0}, results  # 503: refused before the SIGTERM
    assert server.proc.wait(timeout=30) == 0
    logs = server.logs()
    assert "Application shutdown complete" in logs
    assert "Traceback" not in logs and "unhandled error" not in logs
    record_figures(
        "sigterm",
        {"in_flight_at_sigterm": int(in_flight), "answered": statuses.count(200), "exit": 0},
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_admission_bounds_the_count_and_the_expected_wait() -> None:
    clock = FakeClock()
    admission = Admission(concurrency=2, queue_limit=10, max_wait=1.0, clock=clock)
    # No answer rate known yet: as many may wait as are answered (2 + 2).
    assert all(admission.try_enter() for _ in range(4))
    assert not admission.try_enter() and admission.refused == 1
    for _ in range(4):
        clock.now += 0.25
        admission.leave(answered=True)  # 4 answers a second
    # 2 answered at once, 3 waiting: a newcomer waits ~4/4 = 1 s: admitted; the next not.
    assert all(admission.try_enter() for _ in range(5))
    assert admission.expected_wait(clock.now) == pytest.approx(1.0, rel=0.1)
    assert admission.try_enter()
    assert not admission.try_enter()
    # The hard cap applies whatever the rate.
    fast = Admission(concurrency=2, queue_limit=1, max_wait=60.0, clock=clock)
    for _ in range(4):
        assert fast.try_enter()
        fast.leave(answered=True)
    assert fast.try_enter() and fast.try_enter() and fast.try_enter()
    assert not fast.try_enter()
    # Failed requests do not count as answers; old answers age out of the recent rate, and
    # after a quiet spell the last rate measured (4/s) stands in: a burst is admitted as
    # the load before it was, not refused for want of a fresh measurement.
    admission.leave(answered=False)
    clock.now += RATE_WINDOW + 1
    assert admission.answer_rate(clock.now) is None
    assert admission.estimated_rate(clock.now) == pytest.approx(4.0, rel=0.1)
    assert admission.expected_wait(clock.now) == pytest.approx(1.0, rel=0.1)
    assert admission.try_enter()  # 5 in flight: a newcomer waits 4/4 s, admitted
    assert not admission.try_enter()  # 6 in flight: the next would wait 5/4 s > 1 s
    # Just after start-up no rate is known: no more wait than are answered (2 + 2).
    fresh = Admission(concurrency=2, queue_limit=10, max_wait=1.0, clock=clock)
    assert all(fresh.try_enter() for _ in range(4))
    assert fresh.estimated_rate(clock.now) is None and not fresh.try_enter()
