"""Replicas sharing one PostgreSQL: ``rag index --database-url`` stores data/ in it (and
changes nothing when run again), ``rag serve`` replicas on different ports serve from it, a
write through one is served by the others within a second, and a replica that loses the
database says so on /readyz while it goes on answering, then recovers by itself.

Real processes throughout: the embedded PostgreSQL of the session (``pg_server``), the real
model, and uvicorn subprocesses (tests/test_api_support.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_api_support import ADMIN_TOKEN, REPO_DATA, LiveServer, server_env
from test_pg_support import status as _status
from test_pg_support import wait_until

from rag.load import load_data_dir

REPLICAS = 3
#: Put in the database URL (the test server trusts local connections and ignores it), to
#: show that no log line, message or response ever contains it.
PASSWORD = "s3cret-pw-0d1e"
QUESTION = "What did Merz say about German troops?"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FERRY = {
    "text": "The island ferry now sails at dawn.\n\nThe harbour master said the new timetable "
    "starts in May, when the second boat returns from repairs.",
    "title": "Ferry timetable",
    "author": "Harbour Desk",
}


def rag_index(url: str, cwd: Path) -> str:
    """``rag index --database-url URL`` over the repository's data/, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "cli", "index", "--database-url", url, "--data-dir", str(REPO_DATA)],
        cwd=cwd,
        env=server_env({}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def replicas(pg_server, tmp_path_factory) -> Iterator[list[LiveServer]]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("pg-replicas")
    url = pg_server.create_database("replicas").replace("postgres:@", f"postgres:{PASSWORD}@")
    assert PASSWORD in url
    first = rag_index(url, root)
    seed = load_data_dir(REPO_DATA)
    assert f"generation 1): {len(seed)} documents" in first and f"added {len(seed)}" in first
    again = rag_index(url, root)  # idempotent: nothing embedded, no new generation
    assert "generation 1)" in again and f"unchanged {len(seed)}" in again, again
    assert "embedded 0 chunks" in again
    assert PASSWORD not in first + again

    servers = []
    for n in range(REPLICAS):
        folder = root / f"replica-{n}"
        folder.mkdir()
        servers.append(
            LiveServer(
                root=folder,
                data_dir=folder / "data",  # unused: the database is the source of truth
                index_dir=folder / "index",
                settings={
                    "RAG_DATABASE_URL": url,
                    "RAG_RERANKER": "",  # fast mode: replicas start sooner
                    "RAG_ADMIN_TOKEN": ADMIN_TOKEN,
                    "RAG_ASK_RATE_LIMIT": "",
                    "RAG_ASK_CONCURRENCY": "1",
                },
                keep_port=True,
            )
        )
    try:
        for server in servers:  # load in parallel
            server.start(wait_ready=False)
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            assert PASSWORD not in server.logs()


def test_replicas_serve_the_indexed_article(replicas: list[LiveServer]) -> None:
    generations = set()
    for server in replicas:
        ready = httpx.get(server.base_url + "/readyz", timeout=10).json()
        generations.add(ready["generation"])
        body = httpx.post(server.base_url + "/ask", json={"question": QUESTION}, timeout=60).json()
        assert body["answer"] is not None and "Merz" in body["answer"]["text"]
    assert generations == {1}


def test_a_write_through_one_replica_is_served_by_the_others_within_a_second(
    replicas: list[LiveServer],
) -> None:
    writer, *readers = replicas
    put = httpx.put(writer.base_url + "/documents/ferry", json=FERRY, headers=AUTH, timeout=60)
    assert put.status_code == 201, put.text
    lags = [wait_until(lambda s=s: status(s, "/documents/ferry") == 200, 1.0) for s in readers]
    for reader in readers:
        body = httpx.post(
            reader.base_url + "/ask",
            json={"question": "When does the ferry sail?", "doc_ids": ["ferry"]},
            timeout=60,
        ).json()
        assert body["passages"][0]["doc_id"] == "ferry"
    print(f"PUT seen by the other replicas after {[round(x, 3) for x in lags]} s")

    deleted = httpx.delete(readers[0].base_url + "/documents/ferry", headers=AUTH, timeout=60)
    assert deleted.status_code == 204
    lags = [
        wait_until(lambda s=s: status(s, "/documents/ferry") == 404, 1.0)
        for s in (writer, readers[1])
    ]
    print(f"DELETE seen by the other replicas after {[round(x, 3) for x in lags]} s")


def test_a_replica_that_loses_the_database_keeps_answering_and_recovers(
    pg_server, replicas: list[LiveServer]
) -> None:
    replica, other = replicas[0], replicas[1]
    pg_server.stop()
    try:
        lost = wait_until(lambda: status(replica, "/readyz") == 503, 10.0, step=0.1)
        body = httpx.get(replica.base_url + "/readyz", timeout=10).json()
        assert body["error"]["code"] == "store_unavailable", body
        assert PASSWORD not in body["error"]["message"]
        answer = httpx.post(replica.base_url + "/ask", json={"question": QUESTION}, timeout=60)
        assert answer.status_code == 200 and answer.json()["answer"] is not None
        refused = httpx.put(
            replica.base_url + "/documents/ferry", json=FERRY, headers=AUTH, timeout=60
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "store_unavailable"
    finally:
        pg_server.start()
    back = wait_until(lambda: status(replica, "/readyz") == 200, 15.0, step=0.1)
    print(f"/readyz 503 after {lost:.2f} s without the database; 200 {back:.2f} s after it")
    # The change feed is back too: a write through one replica reaches the other at once.
    put = httpx.put(replica.base_url + "/documents/ferry", json=FERRY, headers=AUTH, timeout=60)
    assert put.status_code in (200, 201), put.text
    wait_until(lambda: status(other, "/documents/ferry") == 200, 1.0)
    wait_until(lambda: status(other, "/readyz") == 200, 5.0)


def status(server: LiveServer, path: str) -> int:
    return _status(server.base_url, path)
