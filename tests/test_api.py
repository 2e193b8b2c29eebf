"""The HTTP API through a real ``rag serve`` process on 127.0.0.1, over the three real SQuAD 2.0
Wikipedia articles of the conftest (and, for the card's question, the seed article when it is
in ``data/``).

Questions are real SQuAD questions whose gold paragraph is known; the seed article the product
ships is not in this checkout, so the card's own question has its own test that runs only when
that article is there.
"""

from __future__ import annotations

import gc
import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_support import (
    ADMIN_TOKEN,
    REPO_DATA,
    LiveServer,
    assert_error_shape,
    find_question,
    prepare_dirs,
    start_ask_load,
)

from api.schemas import CARD_QUESTION
from eval.squad import DEFAULT_PATH as SQUAD2_PATH
from eval.squad import SquadArticle, load_squad2
from index.persist import load_snapshot

#: Real SQuAD 2.0 questions the pipeline answers from the gold paragraph (checked by running).
NORMANS_QUESTION = "When did Herve serve as a Byzantine general?"
PARLIAMENT_QUESTION = "Where has the official home of the Scottish Parliament been since 2004?"
#: A fourth article, added and removed through the API, and one of its questions.
NEW_TITLE = "Huguenot"
NEW_QUESTION = "What Swiss city was the center of the Calvinist movement?"
OFF_TOPIC = "How do I change a flat tyre on a bicycle?"
WIDGET_ORIGIN = "http://widget.test"
MAX_DOCUMENT_BYTES = 2_000_000
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):  # type: ignore[no-untyped-def]
    """One server for the module: admin token set, a widget origin allowed, generous limits."""
    root = tmp_path_factory.mktemp("api-main")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={
            "RAG_ADMIN_TOKEN": ADMIN_TOKEN,
            "RAG_ASK_RATE_LIMIT": "10000/minute",
            "RAG_CORS_ORIGINS": json.dumps([WIDGET_ORIGIN]),
            "RAG_MAX_DOCUMENT_BYTES": str(MAX_DOCUMENT_BYTES),
        },
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def new_article() -> SquadArticle:
    if not SQUAD2_PATH.is_file():
        pytest.skip(f"external benchmark not found at {SQUAD2_PATH} (../shared missing)")
    return load_squad2(SQUAD2_PATH, titles=[NEW_TITLE])[0]


def check_spans(client: httpx.Client, body: dict[str, Any]) -> int:
    """Every span in an /ask response against GET /documents/{id}; returns how many."""
    docs: dict[str, dict[str, Any]] = {}

    def doc(doc_id: str) -> dict[str, Any]:
        if doc_id not in docs:
            response = client.get(f"/documents/{doc_id}")
            assert response.status_code == 200, response.text
            docs[doc_id] = response.json()
        return docs[doc_id]

    def check(doc_id: str, span: dict[str, Any], paragraph: int | None) -> None:
        d = doc(doc_id)
        assert 0 <= span["start"] < span["end"] <= len(d["text"])
        assert d["text"][span["start"] : span["end"]] == span["text"]
        if paragraph is not None:
            para = d["paragraphs"][paragraph - 1]
            assert para["paragraph"] == paragraph
            assert para["start"] <= span["start"] and span["end"] <= para["end"]

    checked = 0
    if body["answer"] is not None:
        ans = body["answer"]
        check(ans["doc_id"], ans, ans["paragraph"])
        checked += 1
    for passage in body["passages"]:
        check(passage["doc_id"], passage, passage["paragraph"])
        checked += 1
        for quote in passage["quotes"]:
            check(passage["doc_id"], quote, passage["paragraph"])
            checked += 1
    return checked


def ask(client: httpx.Client, question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    assert response.headers.get("x-request-id")
    body: dict[str, Any] = response.json()
    return body


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize("question", [NORMANS_QUESTION, PARLIAMENT_QUESTION])
def test_answer_is_gold_paragraph_and_every_span_checks(server, squad_articles, question):  # type: ignore[no-untyped-def]
    gold = find_question(squad_articles, question)
    with server.client() as client:
        body = ask(client, question, top_k=5)
        assert body["abstained"] is False and body["reason"] is None
        answer = body["answer"]
        assert answer["doc_id"] == gold.doc_id
        assert answer["paragraph"] == gold.paragraph
        assert any(answer["start"] <= g.start and g.end <= answer["end"] for g in gold.answers)
        assert len(body["passages"]) == 5
        assert check_spans(client, body) >= 6


def test_modes_fast_and_accurate(server, squad_articles):  # type: ignore[no-untyped-def]
    gold = find_question(squad_articles, NORMANS_QUESTION)
    with server.client() as client:
        default = ask(client, NORMANS_QUESTION)
        assert default["mode"] == "accurate"  # the reranker is installed
        assert all(p["rerank_score"] is not None for p in default["passages"])
        fast = ask(client, NORMANS_QUESTION, mode="fast")
        assert fast["mode"] == "fast"
        assert all(p["rerank_score"] is None for p in fast["passages"])
        for body in (default, fast):
            assert body["answer"]["doc_id"] == gold.doc_id
            assert 0.0 <= body["confidence"] <= 1.0  # the learned model's probability
            check_spans(client, body)


def test_off_topic_question_abstains(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        body = ask(client, OFF_TOPIC)
        assert body["abstained"] is True
        assert body["answer"] is None
        assert body["reason"]
        check_spans(client, body)


def test_filters_and_trimming(server, squad_articles):  # type: ignore[no-untyped-def]
    gold = find_question(squad_articles, NORMANS_QUESTION)
    with server.client() as client:
        body = ask(client, f"  \n{NORMANS_QUESTION}\t ", doc_ids=[gold.doc_id], top_k=2)
        assert body["question"] == NORMANS_QUESTION
        assert {p["doc_id"] for p in body["passages"]} == {gold.doc_id}
        other = ask(client, NORMANS_QUESTION, doc_ids=["squad2-Islamism"])
        assert {p["doc_id"] for p in other["passages"]} == {"squad2-Islamism"}
        response = client.post("/ask", json={"question": NORMANS_QUESTION, "author": "Nobody"})
        assert "Nobody" in assert_error_shape(response, 404, "unknown_filter")


def test_follow_up_question_uses_the_history(server):  # type: ignore[no-untyped-def]
    first = "Who is the current Presiding Officer of the Scottish Parliament?"
    follow_up = "And what is she responsible for?"
    with server.client() as client:
        body = ask(client, follow_up, history=[first], mode="fast")
        assert body["answer"]["doc_id"] == "squad2-Scottish_Parliament"
        assert "the Presiding Officer is responsible for ensuring" in body["answer"]["text"]
        check_spans(client, body)
        # Accurate mode reads the follow-up with its context and as asked, so the passage
        # answering the earlier question does not win.
        accurate = ask(client, follow_up, history=[first], mode="accurate")
        assert accurate["answer"]["doc_id"] == "squad2-Scottish_Parliament"
        assert "the Presiding Officer is responsible for ensuring" in accurate["answer"]["text"]
        check_spans(client, accurate)


def test_card_question_quotes_merz(tmp_path):  # type: ignore[no-untyped-def]
    """The card's question over the shipped data folder (index built at start-up)."""
    srv = LiveServer(tmp_path, REPO_DATA, tmp_path / "index").start()
    try:
        with srv.client() as client:
            body = ask(client, CARD_QUESTION)
            assert body["abstained"] is False
            assert body["answer"]["paragraph"] == 5
            assert "Nato countries bordering Ukraine" in body["answer"]["text"]
            assert "The German chancellor, Friedrich Merz" in body["answer"]["text"]
            check_spans(client, body)
            # who says it (issue 18): Merz, named at an exact span, reported by the author
            assert body["speaker"] == "Friedrich Merz"
            speaker = body["answer"]["speaker"]
            assert body["answer"]["voice"] == "reported"
            assert speaker["name"] == "Friedrich Merz"
            assert speaker["reported_by"] == "Gwendolyn Sasse"
            doc = client.get(f"/documents/{body['answer']['doc_id']}").json()
            mention = speaker["mention"]
            assert doc["text"][mention["start"] : mention["end"]] == mention["text"]
            listed = {s["name"]: s for s in client.get("/speakers").json()["speakers"]}
            assert listed["Friedrich Merz"]["statements"] == 2
            assert "German chancellor" in listed["Friedrich Merz"]["aliases"]
            assert listed["Gwendolyn Sasse"]["kind"] == "author"
            only = ask(client, "Where could troops be stationed?", speaker="the German chancellor")
            assert only["answer"]["speaker"]["name"] == "Friedrich Merz"
            refused = client.post("/ask", json={"question": "Troops?", "speaker": "Macron"})
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "unknown_filter"
            never = ask(client, "What did Macron say about German troops?")
            assert never["abstained"] is True
            assert never["reason"] == "The articles don't report Macron saying anything about this."
    finally:
        srv.stop()


# --------------------------------------------------------------------------- documents


def test_documents_list_and_detail(server, squad_articles):  # type: ignore[no-untyped-def]
    with server.client() as client:
        listing = client.get("/documents").json()["documents"]
        assert [d["id"] for d in listing] == sorted(a.document.id for a in squad_articles)
        for entry, article in zip(
            listing, sorted(squad_articles, key=lambda a: a.document.id), strict=True
        ):
            doc = article.document
            assert entry["title"] == doc.meta.title
            assert entry["publisher"] == doc.meta.publisher
            assert entry["sha256"] == doc.sha256
            assert entry["paragraph_count"] == len(article.paragraph_spans)
            assert {"author", "published", "url"} <= set(entry)
            detail = client.get(f"/documents/{doc.id}").json()
            assert detail["text"] == doc.text
            assert [(p["start"], p["end"]) for p in detail["paragraphs"]] == [
                (s.start, s.end) for s in article.paragraph_spans
            ]
        assert_error_shape(client.get("/documents/no-such-doc"), 404, "document_not_found")


def test_put_ask_delete_and_restart(server, new_article):  # type: ignore[no-untyped-def]
    """Writes are persisted before the answer and seen by the next question; one restart
    shows both an addition and a removal survived."""
    doc = new_article.document
    gold = find_question([new_article], NEW_QUESTION)
    meta = {k: v for k, v in vars(doc.meta).items() if v}
    url = f"/documents/{doc.id}"
    with server.client() as client:
        assert client.get(url).status_code == 404
        created = client.put(url, json={"text": doc.text, **meta}, headers=AUTH)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == url
        assert created.json()["sha256"] == doc.sha256
        assert created.json()["paragraph_count"] == len(new_article.paragraph_spans)
        assert load_snapshot(server.index_dir).manifest.documents[doc.id] == doc.sha256  # on disk
        body = ask(client, NEW_QUESTION)
        assert (body["answer"]["doc_id"], body["answer"]["paragraph"]) == (doc.id, gold.paragraph)
        check_spans(client, body)
        assert client.get("/readyz").json()["documents"] == 4

        changed = {"text": doc.text, **meta, "author": "Someone"}
        replaced = client.put(url, json=changed, headers=AUTH)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["author"] == "Someone"

        extra = {"text": "A short article that is removed again.\n", "title": "Extra"}
        assert client.put("/documents/extra", json=extra, headers=AUTH).status_code == 201
        assert client.delete("/documents/extra", headers=AUTH).status_code == 204
        assert_error_shape(client.get("/documents/extra"), 404, "document_not_found")
        assert_error_shape(
            client.delete("/documents/extra", headers=AUTH), 404, "document_not_found"
        )

    # The data folder follows the writes, so `rag index` agrees with the service.
    from rag.load import load_data_dir

    on_disk = {d.id: d for d in load_data_dir(server.data_dir)}
    assert on_disk[doc.id].text == doc.text and on_disk[doc.id].meta.author == "Someone"
    assert "extra" not in on_disk

    server.restart()
    with server.client() as client:
        assert client.get(url).json()["text"] == doc.text
        listing = {d["id"]: d for d in client.get("/documents").json()["documents"]}
        assert listing[doc.id]["author"] == "Someone"
        assert "extra" not in listing
        assert ask(client, NEW_QUESTION)["answer"]["doc_id"] == doc.id

        assert client.delete(url, headers=AUTH).status_code == 204
        assert doc.id not in load_snapshot(server.index_dir).manifest.documents  # on disk
        assert not list(server.data_dir.glob(f"{doc.id}.*"))
        assert_error_shape(client.get(url), 404, "document_not_found")
        after = ask(client, NEW_QUESTION)
        assert all(p["doc_id"] != doc.id for p in after["passages"])
        assert client.get("/readyz").json()["documents"] == 3


def test_write_auth(server):  # type: ignore[no-untyped-def]
    url = "/documents/auth-test"
    body = {"text": "Short article.\n"}
    with server.client() as client:
        missing = client.put(url, json=body)
        assert_error_shape(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error_shape(
            client.put(url, json=body, headers={"Authorization": "Basic eDp5"}), 401, "unauthorized"
        )
        assert_error_shape(client.delete(url), 401, "unauthorized")
        wrong = {"Authorization": f"Bearer {ADMIN_TOKEN}x"}
        assert_error_shape(client.put(url, json=body, headers=wrong), 403, "forbidden")
        assert_error_shape(client.delete(url, headers=wrong), 403, "forbidden")
        # The token is checked before the body is read: no token, bad body -> still 401.
        assert_error_shape(client.put(url, content=b"{not json"), 401, "unauthorized")
        assert client.get(url).status_code == 404
    logs = server.logs()
    assert ADMIN_TOKEN not in logs
    assert "Bearer" not in logs and "authorization" not in logs.lower()


# --------------------------------------------------------------------------- input errors


BAD_ASK_BODIES: list[tuple[Any, str]] = [
    ({"question": ""}, "question"),
    ({"question": " \n\t "}, "question"),
    ({"question": "x" * 1001}, "question"),
    ({"question": None}, "question"),
    ({"question": 42}, "question"),
    ({}, "question"),
    ({"question": "q", "top_k": 0}, "top_k"),
    ({"question": "q", "top_k": 21}, "top_k"),
    ({"question": "q", "top_k": "3"}, "top_k"),
    ({"question": "q", "top_k": 2.5}, "top_k"),
    ({"question": "q", "top_k": True}, "top_k"),
    ({"question": "q", "doc_ids": []}, "doc_ids"),
    ({"question": "q", "doc_ids": ["../x"]}, "doc_ids"),
    ({"question": "q", "doc_ids": "squad2-Normans"}, "doc_ids"),
    ({"question": "q", "author": ""}, "author"),
    ({"question": "q", "mode": "dense"}, "mode"),
    ({"question": "q", "history": "earlier"}, "history"),
    ({"question": "q", "history": ["x" * 1001]}, "history"),
    ({"question": "q", "history": [3]}, "history"),
    (["question"], "body"),
    ("question", "body"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_ASK_BODIES)
def test_ask_rejects_bad_input_naming_the_field(server, payload, field):  # type: ignore[no-untyped-def]
    with server.client() as client:
        message = assert_error_shape(client.post("/ask", json=payload), 422)
        assert field in message


def test_ask_accepts_question_of_1000_chars_after_trimming(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        body = ask(client, "  " + ("Normans " * 125)[:999] + "?  ")
        assert len(body["question"]) == 1000


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b'{"question": "\\ud800 lone surrogate"}', b"\xff\xfe", b"null"],
)
def test_ask_rejects_malformed_bodies(server, raw):  # type: ignore[no-untyped-def]
    with server.client() as client:
        response = client.post("/ask", content=raw, headers={"content-type": "application/json"})
        assert_error_shape(response, 422)


def raw_request(
    port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A request whose target is sent exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "target",
    [
        "/documents/..%2Fx",
        "/documents/%2e%2e",
        "/documents/a%00b",
        "/documents/a.b",
        "/documents/",
        "/documents/" + "a" * 129,
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_bad_document_ids_are_422(server, target, method):  # type: ignore[no-untyped-def]
    headers = {**AUTH, "Content-Type": "application/json"}
    status, head, body = raw_request(server.port, method, target, b'{"text": "x"}', headers)
    assert status == 422, body
    assert json.loads(body)["error"]["code"] in {"invalid_document_id", "invalid_request"}
    assert head.get("x-request-id")


def test_put_rejects_bad_documents(server):  # type: ignore[no-untyped-def]
    url = "/documents/bad-doc"
    with server.client() as client:
        cases = [
            ({"title": "no text"}, "text"),
            ({"text": ""}, "text"),
            ({"text": "   \n "}, "empty"),
            ({"text": "a\u0000b"}, "NUL"),
            ({"text": "ok", "title": 3}, "title"),
            ({"text": "ok", "id": "other"}, "id"),
            ({"text": "ok", "url": "u" * 3000}, "url"),
        ]
        for payload, words in cases:
            response = client.put(url, json=payload, headers=AUTH)
            assert words in assert_error_shape(response, 422), payload
        response = client.put(url, content=b"text", headers={**AUTH, "Content-Type": "text/plain"})
        assert_error_shape(response, 415, "unsupported_media_type")
        assert client.get(url).status_code == 404


# --------------------------------------------------------------------------- limits


def test_ask_body_over_limit_is_413_without_being_read(server):  # type: ignore[no-untyped-def]
    # Declared too large: the answer comes before a byte of the body is sent.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /ask HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its answer
            received += chunk
        head = received.decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    assert "x-request-id" in head.lower() and '"payload_too_large"' in head

    with server.client() as client:
        big = json.dumps({"question": "x" * 1_000_001}).encode()
        assert_error_shape(client.post("/ask", content=big), 413, "payload_too_large")

        def chunks():  # streamed, no Content-Length: counted as it arrives
            for _ in range(40):
                yield b" " * 65536

        streamed = client.post(
            "/ask", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_error_shape(streamed, 413, "payload_too_large")


def test_document_body_limit_is_larger(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        # Over the /ask limit but under the document limit: read, then refused for its content.
        medium = json.dumps({"text": "a\u0000" * 200_000}).encode()
        assert 1_000_000 < len(medium) < MAX_DOCUMENT_BYTES
        response = client.put(
            "/documents/medium",
            content=medium,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert "NUL" in assert_error_shape(response, 422)
        large = json.dumps({"text": "a" * (MAX_DOCUMENT_BYTES + 1)}).encode()
        response = client.put(
            "/documents/large", content=large, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert_error_shape(response, 413, "payload_too_large")


def test_healthz_stays_fast_while_asks_run(server, squad_articles):  # type: ignore[no-untyped-def]
    """/healthz never waits for an answer to be computed: 8 /ask requests are kept in flight
    (by another process) while /healthz is timed from this one. Not a benchmark, so the bound
    is relative to the same run: every probe takes under half the time of the fastest
    answered ask, which a probe queued behind an answer (a blocked event loop) could not."""
    questions = [q.question for a in squad_articles for q in a.questions[:30]]
    load = start_ask_load(server.base_url, seconds=3.0, concurrency=8, questions=questions)
    timings = []
    # This process holds a loaded model too: keep its own GC pauses out of the measurement.
    gc.disable()
    try:
        with server.client() as probe:
            assert probe.get("/healthz").status_code == 200  # connection warmed up
            for _ in range(20):
                started = time.perf_counter()
                response = probe.get("/healthz")
                timings.append(time.perf_counter() - started)
                assert response.status_code == 200
                time.sleep(0.05)
        assert load.poll() is None, "the asks were still running during every probe"
    finally:
        gc.enable()
        out, _ = load.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failed"] == 0 and summary["answered"] >= 8, summary
    probes_ms = sorted(round(t * 1000, 1) for t in timings)
    assert probes_ms[-1] < summary["fastest_answer_ms"] / 2, (probes_ms, summary)


# --------------------------------------------------------------------------- the rest


def test_request_id_is_echoed_or_generated(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        assert (
            client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
            == "abc-123"
        )
        generated = client.get("/healthz", headers={"X-Request-ID": "bad id; <script>"})
        assert generated.headers["x-request-id"] != "bad id; <script>"
        assert len(generated.headers["x-request-id"]) == 32
    time.sleep(0.2)
    line = next(e for e in reversed(server.access_log()) if e["request_id"] == "abc-123")
    assert line["route"] == "/healthz" and line["status"] == 200 and line["latency_ms"] >= 0


def test_errors_have_one_shape(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        assert_error_shape(client.get("/nowhere"), 404, "not_found")
        assert_error_shape(client.delete("/ask"), 405, "method_not_allowed")
        assert_error_shape(client.get("/ask"), 405, "method_not_allowed")


def test_cors_allow_list(server):  # type: ignore[no-untyped-def]
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with server.client() as client:
        ok = client.options("/ask", headers={"Origin": WIDGET_ORIGIN, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == WIDGET_ORIGIN
        refused = client.options("/ask", headers={"Origin": "http://evil.test", **preflight})
        assert_error_shape(refused, 400, "cors_rejected")
        assert "access-control-allow-origin" not in refused.headers
        simple = client.post(
            "/ask", json={"question": NORMANS_QUESTION}, headers={"Origin": WIDGET_ORIGIN}
        )
        assert simple.headers["access-control-allow-origin"] == WIDGET_ORIGIN
        other = client.post(
            "/ask", json={"question": NORMANS_QUESTION}, headers={"Origin": "http://evil.test"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_metrics(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        ask(client, NORMANS_QUESTION)
        text = client.get("/metrics").text
    assert 'http_requests_total{handler="/ask",method="POST",status="200"}' in text
    assert "http_request_duration_seconds_bucket{" in text
    assert "rag_index_documents 3.0" in text
    assert "rag_index_chunks " in text


def test_openapi_and_docs(server):  # type: ignore[no-untyped-def]
    with server.client() as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert set(schema["paths"]) >= {
        "/ask",
        "/documents",
        "/documents/{doc_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    ask_request = schema["components"]["schemas"]["AskRequest"]
    assert ask_request["examples"][0] == {"question": CARD_QUESTION}
    ask_op = schema["paths"]["/ask"]["post"]
    assert {"200", "413", "422", "429", "503"} <= set(ask_op["responses"])
    examples = ask_op["responses"]["200"]["content"]["application/json"]["examples"]
    assert examples["abstained"]["value"]["answer"] is None
    assert examples["answered"]["value"]["answer"]["paragraph"] == 9
    put_op = schema["paths"]["/documents/{doc_id}"]["put"]
    assert {"200", "201", "401", "403", "413", "422"} <= set(put_op["responses"])
    assert schema["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"


def test_run_command_uses_rag_serve() -> None:
    """The README's run command, `make run`, starts the service with `rag serve`."""
    makefile = Path(__file__).resolve().parent.parent / "Makefile"
    if not makefile.is_file():
        pytest.skip("no Makefile in this checkout")
    run_target = makefile.read_text("utf-8").split("\nrun:", 1)[-1].split("\n\n", 1)[0]
    assert "rag serve" in run_target
