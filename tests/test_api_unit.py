"""In-process tests of the HTTP layer's parts that need no model or index: error mapping,
settings, middleware, the app factory, and the ``serve`` command's argument handling."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import core.errors
from api.app import create_app
from api.config import ApiSettings
from api.errors import STATUS_BY_ERROR, describe_validation_errors, status_of
from api.middleware import BodyLimitMiddleware, request_id_of
from api.schemas import CARD_QUESTION, AskRequest, DocumentIn
from cli.main import build_parser, main
from rag.settings import Settings


def offline_app(tmp_path: Path, **api: Any):  # type: ignore[no-untyped-def]
    settings = Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "index")
    return create_app(settings, ApiSettings(**api))


def call(app, method: str, path: str, **kwargs: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    """One request through the ASGI app (no lifespan: the model and index never load)."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_every_pipeline_error_has_a_status() -> None:
    errors = [
        cls
        for _, cls in inspect.getmembers(core.errors, inspect.isclass)
        if issubclass(cls, core.errors.RagError) and cls is not core.errors.RagError
    ]
    assert set(errors) <= set(STATUS_BY_ERROR)
    assert status_of(core.errors.DocumentNotFound("x")) == 404
    assert status_of(core.errors.IndexMismatch("x")) == 503
    assert status_of(core.errors.UnknownFilter("x")) == 404


def test_validation_messages_name_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        AskRequest.model_validate({"question": " ", "top_k": 0, "doc_ids": ["a/b"]})
    message = describe_validation_errors(info.value.errors())
    assert "question:" in message and "top_k:" in message and "doc_ids.0:" in message
    assert " " not in message.split(":")[0]


def test_api_settings_validate_and_read_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        ApiSettings(ask_rate_limit="lots")
    with pytest.raises(ValidationError):
        ApiSettings(log_level="loud")
    monkeypatch.setenv("RAG_ASK_RATE_LIMIT", "5/second")
    monkeypatch.setenv("RAG_MAX_ASK_BYTES", "1234")
    api = ApiSettings()
    assert api.ask_rate_limit == "5/second" and api.max_ask_bytes == 1234
    assert ApiSettings(ask_rate_limit="").ask_rate_limit == ""


def test_request_ids() -> None:
    def scope(value: str | None) -> dict[str, Any]:
        headers = [] if value is None else [(b"x-request-id", value.encode("latin-1"))]
        return {"type": "http", "headers": headers}

    assert request_id_of(scope("abc-123.X_y:z")) == "abc-123.X_y:z"
    for bad in (None, "", "a b", "x" * 200, "-leading", "é"):
        generated = request_id_of(scope(bad))
        assert generated != bad and len(generated) == 32


def test_app_factory_loads_nothing_and_answers_while_not_ready(tmp_path: Path) -> None:
    app = offline_app(tmp_path)
    assert app.state.service.loaded is None
    assert not (tmp_path / "index").exists()
    assert call(app, "GET", "/healthz").json() == {"status": "ok"}
    for method, path, body in [
        ("GET", "/readyz", None),
        ("POST", "/ask", {"question": CARD_QUESTION}),
        ("GET", "/documents", None),
    ]:
        response = call(app, method, path, json=body)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_ready"
        assert response.headers["x-request-id"]
    schema = app.openapi()
    assert schema["components"]["schemas"]["AskRequest"]["examples"][0]["question"] == CARD_QUESTION


def test_a_wrong_method_is_a_405_that_allows_every_method_of_the_path(tmp_path: Path) -> None:
    """Allow lists every method the path supports, the schema's, though each is a route of its
    own (Starlette named the first matching route's only: Allow: GET for /documents/{id})."""
    app = offline_app(tmp_path)
    paths = app.openapi()["paths"]
    assert set(paths["/documents/{doc_id}"]) == {"get", "put", "delete"}
    for path, operations in paths.items():
        url = path.replace("{doc_id}", "some-doc")
        documented = {m.upper() for m in operations}
        for method in {"OPTIONS", "PATCH", "TRACE", "GET", "POST"} - documented:
            response = call(app, method, url)
            assert response.status_code == 405, (method, url)
            assert set(response.headers["allow"].split(", ")) == documented, (method, url)
            assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_unknown_filter_is_a_documented_404(tmp_path: Path) -> None:
    assert status_of(core.errors.UnknownFilter("unknown document id(s): 'x'")) == 404
    responses = offline_app(tmp_path).openapi()["paths"]["/ask"]["post"]["responses"]
    schema = responses["404"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "unknown_filter" in responses["404"]["description"]


def test_document_fields_refuse_nul_as_the_schema_says() -> None:
    """PostgreSQL stores NUL in neither text nor jsonb: refused (422) in every field, as the
    schema's pattern says, instead of failing in the database."""
    properties = DocumentIn.model_json_schema()["properties"]
    assert {p.get("pattern") for p in properties.values()} == {"^[^\\u0000]*$"}
    for name in properties:
        body = {"text": "Some text.", name: "bad\x00value"}
        with pytest.raises(ValidationError, match="NUL"):
            DocumentIn.model_validate(body)
    assert DocumentIn.model_validate({"text": "Some text.", "title": "Õ"}).title == "Õ"


def test_top_k_is_any_json_integer() -> None:
    """5.0 is an integer to JSON Schema, so it is accepted; 5.5, "5" and true are not."""
    assert AskRequest.model_validate({"question": "q", "top_k": 5.0}).top_k == 5
    assert isinstance(AskRequest.model_validate({"question": "q", "top_k": 5.0}).top_k, int)
    for bad in (5.5, "5", True, None):
        with pytest.raises(ValidationError):
            AskRequest.model_validate({"question": "q", "top_k": bad})


def test_unhandled_error_is_a_500_in_the_error_shape(tmp_path: Path) -> None:
    app = offline_app(tmp_path)

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    response = call(app, "GET", "/boom", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-1"
    error = response.json()["error"]
    assert error["code"] == "internal_error" and "req-1" in error["message"]
    assert "secret" not in response.text and "Traceback" not in response.text


def test_body_limit_counts_streamed_bytes() -> None:
    read: list[int] = []

    async def reader(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        read.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = BodyLimitMiddleware(reader, limit_for=lambda path: 100 if path == "/small" else 10_000)

    async def chunks(n: int):  # type: ignore[no-untyped-def]
        for _ in range(n):
            yield b"x" * 30

    assert call(app, "POST", "/small", content=chunks(3)).status_code == 200
    refused = call(app, "POST", "/small", content=chunks(5))
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert call(app, "POST", "/large", content=chunks(5)).status_code == 200
    assert read == [90, 150]  # the refused body was never read whole


def test_serve_command(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(
        ["serve", "--host", "0.0.0.0", "--port", "9", "--workers", "2"]
    )
    assert (args.host, args.port, args.workers) == ("0.0.0.0", 9, 2)
    monkeypatch.setenv("RAG_ASK_RATE_LIMIT", "very fast")
    assert main(["serve"]) == 2
    assert "invalid setting" in capsys.readouterr().err
