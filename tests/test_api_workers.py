"""Several workers (``rag serve --workers 2``): a document change made through one worker is
visible through every worker within a few seconds."""

from __future__ import annotations

import time

import httpx
import pytest
from test_api_support import ADMIN_TOKEN, LiveServer, prepare_dirs

WORKERS = 2
VISIBLE_WITHIN = 5.0  # seconds; the workers poll the index every second
PROBES = 24  # requests on fresh connections, spread over the workers by the kernel
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TEXT = (
    "The Hanseatic League was a medieval commercial and defensive network of merchant guilds "
    "and market towns in Central and Northern Europe.\n\nGrowing from a few North German towns "
    "in the late 12th century, the League came to dominate Baltic maritime trade.\n"
)


@pytest.fixture(scope="module")
def multi_server(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("api-workers")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={"RAG_ADMIN_TOKEN": ADMIN_TOKEN, "RAG_ASK_RATE_LIMIT": "10000/minute"},
        workers=WORKERS,
    )
    srv.start()
    # /readyz answered by one worker: wait until every worker answers ready.
    wait_all(srv, lambda r: r.status_code == 200, "/readyz", timeout=180)
    yield srv
    srv.stop()


def probe(srv: LiveServer, path: str) -> list[httpx.Response]:
    """``PROBES`` requests, each on a new connection (so any worker may take it)."""
    responses = []
    for _ in range(PROBES):
        with httpx.Client(base_url=srv.base_url, timeout=10) as client:
            responses.append(client.get(path, headers={"Connection": "close"}))
    return responses


def wait_all(srv: LiveServer, ok, path: str, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``PROBES`` fresh-connection requests in a row all satisfy ``ok``."""
    started = time.monotonic()
    while True:
        if all(ok(r) for r in probe(srv, path)):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{path} not consistent after {timeout} s")
        time.sleep(0.2)


def test_change_through_one_worker_is_seen_by_all(multi_server):  # type: ignore[no-untyped-def]
    url = "/documents/hansa"
    with multi_server.client() as client:
        assert (
            client.put(url, json={"text": TEXT, "title": "Hansa"}, headers=AUTH).status_code == 201
        )
    seen = wait_all(multi_server, lambda r: r.status_code == 200, url, VISIBLE_WITHIN)
    with multi_server.client() as client:
        assert client.delete(url, headers=AUTH).status_code == 204
    gone = wait_all(multi_server, lambda r: r.status_code == 404, url, VISIBLE_WITHIN)
    assert seen <= VISIBLE_WITHIN and gone <= VISIBLE_WITHIN
    # Both workers took part (each access-log line names its process).
    time.sleep(0.3)
    pids = {e["pid"] for e in multi_server.access_log() if e["path"] == url}
    assert len(pids) == WORKERS, pids
