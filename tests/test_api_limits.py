"""Start-up and limits, through a real ``rag serve``: readiness while the index is built from the
data folder, the per-client rate limit on /ask, and writes disabled without an admin token."""

from __future__ import annotations

import httpx
import pytest
from test_api_support import LiveServer, assert_error_shape

from core.types import Document
from rag.load import write_article

RATE_LIMIT = 3  # per minute
QUESTION = "When did Herve serve as a Byzantine general?"


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory, squad_articles):  # type: ignore[no-untyped-def]
    """No index yet (built at start-up), a tight rate limit, no admin token. The data folder
    holds the three SQuAD articles' first four paragraphs each: a build at start-up that the
    tests can watch, without embedding all of their 120 paragraphs."""
    root = tmp_path_factory.mktemp("api-limits")
    data, index = root / "data", root / "index"
    for article in squad_articles:
        doc = article.document
        end = article.paragraph_spans[3].end
        write_article(data, Document(id=doc.id, text=doc.text[:end] + "\n", meta=doc.meta))
    srv = LiveServer(root, data, index, settings={"RAG_ASK_RATE_LIMIT": f"{RATE_LIMIT}/minute"})
    srv.start()
    yield srv
    srv.stop()


def test_readyz_is_503_until_model_and_index_are_loaded(fresh_server):  # type: ignore[no-untyped-def]
    first_status, first_body = fresh_server.readyz_seen[0]
    assert first_status == 503, fresh_server.readyz_seen[:3]
    assert first_body["error"]["code"] == "not_ready"
    assert "loading" in first_body["error"]["message"]
    last_status, last_body = fresh_server.readyz_seen[-1]
    assert last_status == 200
    assert last_body["documents"] == 3 and last_body["chunks"] > 3
    assert (fresh_server.index_dir / "CURRENT").is_file()  # built from the data folder


def test_healthz_answers_while_loading(fresh_server):  # type: ignore[no-untyped-def]
    lines = fresh_server.access_log()
    early = [e for e in lines if e["route"] == "/readyz" and e["status"] == 503]
    assert early, "the server answered /readyz while it was still loading"
    with fresh_server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def test_rate_limit_per_client(fresh_server):  # type: ignore[no-untyped-def]
    with fresh_server.client() as client:
        for _ in range(RATE_LIMIT):
            assert client.post("/ask", json={"question": QUESTION}).status_code == 200
        refused = client.post("/ask", json={"question": QUESTION})
        message = assert_error_shape(refused, 429, "rate_limited")
        assert "retry" in message
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Other routes are not limited.
        assert client.get("/documents").status_code == 200
    # Another client (another loopback address) has its own allowance.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with fresh_server.client(transport=transport) as other:
        assert other.post("/ask", json={"question": QUESTION}).status_code == 200


def test_writes_disabled_without_admin_token(fresh_server):  # type: ignore[no-untyped-def]
    with fresh_server.client() as client:
        for response in (
            client.put("/documents/x", json={"text": "Some text."}),
            client.put("/documents/x", json={"text": "t"}, headers={"Authorization": "Bearer a"}),
            client.delete("/documents/squad2-Normans", headers={"Authorization": "Bearer a"}),
        ):
            message = assert_error_shape(response, 403, "writes_disabled")
            assert "set RAG_ADMIN_TOKEN to enable document writes" in message
        assert client.get("/documents/squad2-Normans").status_code == 200
