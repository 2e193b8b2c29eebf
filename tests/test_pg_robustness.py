"""Replicas on PostgreSQL under failure: a replica killed (SIGKILL) in the middle of a write
loses nothing that was acknowledged and leaves nothing half-written, while another replica
goes on serving and writing; and the database restarted under a steady load of questions:
the replicas keep answering through the outage and recover by themselves.

Real processes throughout: the session's embedded PostgreSQL (``pg_server``), two ``rag serve``
replicas with the real model (uvicorn subprocesses, tests/test_api_support.py), and real
signals. The kill is placed exactly: the test holds a row lock on the manifest, so the victim's
write transaction stops at its last statement (the generation bump) with its document, chunks
and sentences already inserted, and the replica is killed there."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from test_api_support import ADMIN_TOKEN, REPO_DATA, LiveServer
from test_pg_support import status as _status
from test_pg_support import wait_until
from test_reliability_support import record_figures

from core.types import sha256_text
from rag.load import load_data_dir

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUESTIONS = [
    {"question": "What did Merz say about German troops?"},
    {"question": "Who would host German troops?", "doc_ids": ["sasse-coalition-of-the-willing"]},
    {"question": "What counts as a violation of the ceasefire?"},
]


def article(n: int, paragraphs: int = 2) -> dict[str, str]:
    """A small article of its own (distinct text, so every write embeds and stores it)."""
    text = "\n\n".join(
        f"Report {n}, part {p}: the harbour board of town {n} met on day {p} and voted "
        f"{n + p} to {p} to extend the quay by {n * 3 + p} metres before the winter storms."
        for p in range(1, paragraphs + 1)
    )
    return {"text": text, "title": f"Harbour report {n}", "author": "Harbour Desk"}


@dataclass
class Cluster:
    url: str
    replicas: list[LiveServer]
    seed_ids: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def cluster(pg_server, tmp_path_factory) -> Iterator[Cluster]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("pg-robust")
    url = pg_server.create_database("robust")
    replicas = []
    for n in range(2):
        folder = root / f"replica-{n}"
        folder.mkdir()
        if n == 0:  # the first imports the seed article into the empty database
            shutil.copytree(REPO_DATA, folder / "data")
        replicas.append(
            LiveServer(
                root=folder,
                data_dir=folder / "data",
                index_dir=folder / "index",
                settings={
                    "RAG_DATABASE_URL": url,
                    "RAG_RERANKER": "",  # fast mode: replicas start sooner
                    "RAG_ADMIN_TOKEN": ADMIN_TOKEN,
                    "RAG_ASK_RATE_LIMIT": "",
                    "RAG_ASK_CONCURRENCY": "1",
                },
                keep_port=True,  # a restarted replica comes back where the balancer expects it
            )
        )
    try:
        replicas[0].start()
        replicas[1].start()
        yield Cluster(url, replicas, {d.id for d in load_data_dir(REPO_DATA)})
    finally:
        for server in replicas:
            server.stop()
        for server in replicas:
            logs = server.logs()
            assert "unhandled error" not in logs and "Traceback" not in logs, server.log_tail()


def served_ids(server: LiveServer) -> set[str]:
    body = httpx.get(server.base_url + "/documents", timeout=10).json()
    return {d["id"] for d in body["documents"]}


def put(server: LiveServer, doc_id: str, body: dict[str, str]) -> httpx.Response:
    return httpx.put(f"{server.base_url}/documents/{doc_id}", json=body, headers=AUTH, timeout=120)


# ------------------------------------------------------------------ the database, read directly


def stored_state(url: str) -> dict[str, Any]:
    """The database's rows, checked for consistency: every document's hash is its text's, its
    chunks are numbered 0..n-1 with spans inside the text, every chunk has its sentences,
    inside its span, and no row is newer than the manifest's generation."""
    import psycopg

    with psycopg.connect(url) as conn:
        (generation,) = conn.execute("SELECT generation FROM rag_manifest").fetchone()  # type: ignore[misc]
        docs = {
            doc_id: (text, sha, gen)
            for doc_id, text, sha, gen in conn.execute(
                "SELECT doc_id, text, sha256, generation FROM rag_documents"
            )
        }
        chunks: dict[str, list[tuple[int, int, int]]] = {}
        for doc_id, ord_, start, end in conn.execute(
            "SELECT doc_id, ord, start_char, end_char FROM rag_chunks ORDER BY doc_id, ord"
        ):
            chunks.setdefault(doc_id, []).append((ord_, start, end))
        sentences: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for doc_id, chunk_ord, start, end in conn.execute(
            "SELECT doc_id, chunk_ord, start_char, end_char FROM rag_sentences"
            " ORDER BY doc_id, chunk_ord, ord"
        ):
            sentences.setdefault((doc_id, chunk_ord), []).append((start, end))
    assert set(chunks) == set(docs), "a document without chunks, or chunks without a document"
    for doc_id, (text, sha, gen) in docs.items():
        assert sha == sha256_text(text), doc_id
        assert gen <= generation, (doc_id, gen, generation)
        assert [c[0] for c in chunks[doc_id]] == list(range(len(chunks[doc_id]))), doc_id
        for ord_, start, end in chunks[doc_id]:
            assert 0 <= start < end <= len(text), (doc_id, ord_)
            spans = sentences.get((doc_id, ord_))
            assert spans, f"chunk {ord_} of {doc_id} has no sentences"
            assert all(start <= s < e <= end for s, e in spans), (doc_id, ord_)
    assert {d for d, _ in sentences} <= set(docs)
    return {"generation": generation, "texts": {d: v[0] for d, v in docs.items()}}


# ------------------------------------------------------------------------------ kill -9


def test_a_replica_killed_in_the_middle_of_a_write_loses_nothing_acknowledged(
    cluster: Cluster,
) -> None:
    import psycopg

    victim, survivor = cluster.replicas
    acknowledged: dict[str, str] = {}
    for n in range(4):  # writes through both replicas, each answered before the next
        doc_id, body = f"ack-{n}", article(n)
        response = put(victim if n % 2 == 0 else survivor, doc_id, body)
        assert response.status_code == 201, response.text
        acknowledged[doc_id] = body["text"]

    # Freeze the next write at its last statement: the test holds the manifest's row lock.
    blocker = psycopg.connect(cluster.url)
    blocker.execute("SELECT generation FROM rag_manifest FOR UPDATE")
    outcome: dict[str, Any] = {}
    later = ("after-kill", article(7))  # through the other replica, while the victim is frozen
    queued_write: list[httpx.Response] = []

    def doomed_write() -> None:
        try:
            outcome["response"] = put(victim, "doomed", article(99, paragraphs=6))
        except httpx.TransportError as exc:
            outcome["error"] = exc

    writer = threading.Thread(target=doomed_write)
    writer.start()
    watcher = psycopg.connect(cluster.url, autocommit=True)
    try:
        backend: list[int] = []

        def waiting_at_the_bump() -> bool:
            rows = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'UPDATE rag_manifest%'"
            ).fetchall()
            backend[:] = [r[0] for r in rows]
            return len(backend) == 1

        wait_until(waiting_at_the_bump, 60.0)
        # Half-written, inside its transaction: it has inserted chunks and sentences.
        touched = {
            rel
            for (rel,) in watcher.execute(
                "SELECT relation::regclass::text FROM pg_locks WHERE pid = %s"
                " AND mode = 'RowExclusiveLock' AND granted",
                (backend[0],),
            )
        }
        assert {"rag_documents", "rag_chunks", "rag_sentences"} <= touched, touched
        # Meanwhile the other replica answers, and its own write waits for the writers' lock.
        answer = httpx.post(survivor.base_url + "/ask", json=QUESTIONS[0], timeout=60)
        assert answer.status_code == 200 and answer.json()["answer"] is not None
        queued = threading.Thread(target=lambda: queued_write.append(put(survivor, *later)))
        queued.start()
        wait_until(
            lambda: bool(
                watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'SELECT pg_advisory_xact_lock%'"
                ).fetchall()
            ),
            60.0,
        )
        assert victim.proc is not None
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=30)
    finally:
        blocker.rollback()  # the frozen transaction may go on: its client is gone
        blocker.close()
    writer.join(timeout=60)
    assert "response" not in outcome, outcome  # never acknowledged
    # The backend of the killed replica finds its client gone and rolls back.
    gone = "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
    wait_until(lambda: not watcher.execute(gone, (backend[0],)).fetchall(), 30.0)
    watcher.close()
    # The other replica's write went through once the killed one's transaction was gone.
    queued.join(timeout=60)
    assert [r.status_code for r in queued_write] == [201], [r.text for r in queued_write]
    acknowledged[later[0]] = later[1]["text"]
    answer = httpx.post(survivor.base_url + "/ask", json=QUESTIONS[1], timeout=60)
    assert answer.status_code == 200 and answer.json()["answer"] is not None

    state = stored_state(cluster.url)
    expected = cluster.seed_ids | set(acknowledged)
    assert set(state["texts"]) == expected  # nothing acknowledged lost; "doomed" not there
    for doc_id, text in acknowledged.items():
        assert state["texts"][doc_id] == text, doc_id
    wait_until(lambda: served_ids(survivor) == expected, 5.0)

    # The killed replica, started again, serves the same documents.
    victim.start()
    assert served_ids(victim) == expected
    ready = httpx.get(victim.base_url + "/readyz", timeout=10).json()
    assert ready["generation"] == state["generation"]
    record_figures(
        "pg_kill_during_write",
        {"acknowledged_writes": len(acknowledged), "documents_after": len(expected)},
    )


# ------------------------------------------------------------------------- database restart


@dataclass
class Load:
    """Steady questions (and document listings) against each replica, one client per
    replica, every response recorded with when it came."""

    replicas: list[LiveServer]
    stop: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[float, int, str, int | str]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for n, server in enumerate(self.replicas):
            thread = threading.Thread(target=self._run, args=(n, server), daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, n: int, server: LiveServer) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                route = "/documents" if i % 5 == 0 else "/ask"
                try:
                    if route == "/ask":
                        r = client.post("/ask", json=QUESTIONS[i % len(QUESTIONS)])
                    else:
                        r = client.get("/documents")
                    result: int | str = r.status_code
                except httpx.TransportError as exc:
                    result = type(exc).__name__
                self.seen.append((time.perf_counter(), n, route, result))
                time.sleep(0.02)

    def between(self, start: float, end: float) -> list[tuple[float, int, str, int | str]]:
        return [s for s in self.seen if start <= s[0] <= end]


def seconds_until_ready(replicas: list[LiveServer], since: float, timeout: float) -> list[float]:
    """For each replica, seconds from ``since`` until its /readyz says 200 (polled together)."""
    ready: dict[int, float] = {}
    while len(ready) < len(replicas):
        for n, server in enumerate(replicas):
            if n not in ready and status(server, "/readyz") == 200:
                ready[n] = time.perf_counter() - since
        if time.perf_counter() - since > timeout:
            raise AssertionError(f"not ready within {timeout} s: {ready}")
        time.sleep(0.05)
    return [ready[n] for n in range(len(replicas))]


def test_the_replicas_ride_out_a_database_restart_under_load(pg_server, cluster: Cluster) -> None:  # type: ignore[no-untyped-def]
    replicas = cluster.replicas
    for server in replicas:
        assert status(server, "/readyz") == 200
    with Load(replicas) as load:
        time.sleep(1.0)  # the load is steady before the outage
        began = time.perf_counter()
        pg_server.stop()
        try:
            lost = [
                wait_until(lambda s=s: status(s, "/readyz") == 503, 15.0, step=0.05)
                for s in replicas
            ]
            for server in replicas:
                body = httpx.get(server.base_url + "/readyz", timeout=10).json()
                assert body["error"]["code"] == "store_unavailable", body
            refused = put(replicas[0], "during-outage", article(50))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "store_unavailable"
            time.sleep(2.0)  # questions go on being asked without a database
        finally:
            restarted = time.perf_counter()
            pg_server.start()
        back = seconds_until_ready(replicas, restarted, 30.0)
        ended = time.perf_counter()
        # Writes work again, and reach the other replica (the change feed is back too).
        written = put(replicas[0], "after-restart", article(51))
        assert written.status_code == 201, written.text
        followed = wait_until(lambda: status(replicas[1], "/documents/after-restart") == 200, 5.0)
        time.sleep(0.5)

    outage = load.between(began, ended)
    everything = load.seen
    by_replica = [sum(1 for s in outage if s[1] == n) for n in range(len(replicas))]
    record_figures(
        "pg_database_restart",
        {
            "requests_during_outage": len(outage),
            "requests_in_all": len(everything),
            "readyz_503_after_s": [round(x, 3) for x in lost],
            "readyz_200_after_restart_s": [round(x, 3) for x in back],
            "outage_s": round(restarted - began, 2),
            "write_followed_after_s": round(followed, 3),
        },
    )
    print(
        f"{len(outage)} requests during the outage ({by_replica} per replica), "
        f"{len(everything)} in all; /readyz 503 after {[round(x, 2) for x in lost]} s, "
        f"200 again {[round(x, 2) for x in back]} s after the restart; a write followed in "
        f"{followed:.3f} s"
    )
    failed = [s for s in everything if s[3] != 200]
    assert failed == [], failed[:10]  # /ask and GET /documents never failed
    assert all(n >= 20 for n in by_replica), by_replica  # they were under load throughout
    assert "after-restart" in stored_state(cluster.url)["texts"]


def status(server: LiveServer, path: str) -> int:
    return _status(server.base_url, path)
