"""The HTTP API's per-request defaults and limits come from the settings, through a real
``rag serve``: ``RAG_TOP_K`` is the number of passages a question without ``top_k`` gets, and
``RAG_MAX_QUESTION_CHARS`` is the longest question (and earlier question) accepted.

One server has both set to non-default values; each is compared with an explicit request on
the same server (``top_k`` 3, the value the default would give) and, in process, with the
defaults the settings classes give when nothing is set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_api_support import LiveServer, assert_error_shape, prepare_dirs

from api.schemas import DEFAULT_MAX_QUESTION_CHARS, DEFAULT_TOP_K
from rag.pipeline import prepare
from rag.retrieve import Corpus
from rag.settings import Settings

TOP_K = 1
MAX_CHARS = 40
#: 41 characters: one over the server's limit; without its question mark, exactly at it.
TOO_LONG = "Where did the Normans come from and when?"
AT_LIMIT = TOO_LONG[:-1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, squad_data_dir, squad_settings, squad_corpus):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("api-settings")
    data, index = prepare_dirs(root, squad_data_dir, squad_settings.index_dir)
    srv = LiveServer(
        root,
        data,
        index,
        settings={
            "RAG_TOP_K": str(TOP_K),
            "RAG_MAX_QUESTION_CHARS": str(MAX_CHARS),
            "RAG_ASK_RATE_LIMIT": "10000/minute",
        },
    )
    srv.start()
    yield srv
    srv.stop()


def test_the_settings_defaults_are_what_the_server_overrides() -> None:
    """Without RAG_TOP_K and RAG_MAX_QUESTION_CHARS the defaults are 3 and 1000: the values
    below differ from them, so the server shows the settings at work."""
    assert (DEFAULT_TOP_K, DEFAULT_MAX_QUESTION_CHARS) == (3, 1000)
    assert TOP_K != DEFAULT_TOP_K and MAX_CHARS != DEFAULT_MAX_QUESTION_CHARS
    assert (len(TOO_LONG), len(AT_LIMIT)) == (MAX_CHARS + 1, MAX_CHARS)


def test_a_question_without_top_k_gets_the_default_setting_of_3(
    monkeypatch: pytest.MonkeyPatch, squad_settings: Settings, squad_corpus: Corpus
) -> None:
    """The request path with nothing set: no top_k means RAG_TOP_K's default, 3."""
    monkeypatch.delenv("RAG_TOP_K", raising=False)
    settings = Settings(data_dir=squad_settings.data_dir, index_dir=squad_settings.index_dir)
    assert prepare(squad_corpus, AT_LIMIT, settings).top_k == 3
    assert prepare(squad_corpus, AT_LIMIT, settings, top_k=2).top_k == 2


def test_rag_top_k_is_the_http_default(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        default = client.post("/ask", json={"question": AT_LIMIT})
        explicit = client.post("/ask", json={"question": AT_LIMIT, "top_k": DEFAULT_TOP_K})
        null = client.post("/ask", json={"question": AT_LIMIT, "top_k": None})
    assert default.status_code == 200, default.text
    assert explicit.status_code == 200, explicit.text
    assert len(default.json()["passages"]) == TOP_K
    # The corpus has more to give: an explicit top_k still gets what it asks for.
    assert len(explicit.json()["passages"]) == DEFAULT_TOP_K
    top = explicit.json()["passages"][0]
    assert default.json()["passages"][0]["chunk_id"] == top["chunk_id"]
    # An explicit null is not a way to ask for the default (the schema says integer).
    assert "top_k" in assert_error_shape(null, 422, "invalid_request")


def test_rag_max_question_chars_is_the_http_limit(server) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        refused = client.post("/ask", json={"question": TOO_LONG})
        message = assert_error_shape(refused, 422, "invalid_request")
        assert message.startswith("question:"), message
        assert f"question is {MAX_CHARS + 1} characters long; the limit is {MAX_CHARS}" in message

        accepted = client.post("/ask", json={"question": AT_LIMIT})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["question"] == AT_LIMIT
        # The limit counts the question once trimmed, as the pipeline does.
        padded = client.post("/ask", json={"question": f"  {AT_LIMIT}\n"})
        assert padded.status_code == 200, padded.text

        # An earlier question of the conversation has the same limit.
        history = client.post("/ask", json={"question": AT_LIMIT, "history": [TOO_LONG]})
        message = assert_error_shape(history, 422, "invalid_request")
        assert message.startswith("history:") and f"at most {MAX_CHARS}" in message, message
        fine = client.post("/ask", json={"question": AT_LIMIT, "history": [AT_LIMIT]})
        assert fine.status_code == 200, fine.text


def test_openapi_shows_the_servers_own_limits(server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with server.client() as client:
        schema = client.get("/openapi.json").json()
    properties = schema["components"]["schemas"]["AskRequest"]["properties"]
    assert properties["question"]["maxLength"] == MAX_CHARS
    assert properties["top_k"]["default"] == TOP_K
    assert properties["top_k"]["type"] == "integer"
    assert "RAG_TOP_K" in properties["top_k"]["description"]
    assert "RAG_MAX_QUESTION_CHARS" in properties["question"]["description"]

    # A server with nothing set documents the settings' defaults.
    from api.app import create_app
    from api.config import ApiSettings

    monkeypatch.delenv("RAG_TOP_K", raising=False)
    monkeypatch.delenv("RAG_MAX_QUESTION_CHARS", raising=False)
    settings = Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "index")
    offline = create_app(settings, ApiSettings()).openapi()
    properties = offline["components"]["schemas"]["AskRequest"]["properties"]
    assert properties["question"]["maxLength"] == DEFAULT_MAX_QUESTION_CHARS
    assert properties["top_k"]["default"] == DEFAULT_TOP_K
