"""The document store: list, read, add or replace, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import AdminDep, DocIdDep, LoadedDep, StateDep
from api.errors import ApiError
from api.openapi import error_responses
from api.schemas import (
    DocumentDetail,
    DocumentIn,
    DocumentList,
    DocumentSummary,
    ParagraphOut,
)
from api.state import Loaded
from core.errors import DocumentNotFound
from core.types import Document
from rag.load import make_document, parse_meta

router = APIRouter(prefix="/documents", tags=["documents"])


def summary_of(doc: Document, loaded: Loaded) -> dict[str, Any]:
    return {
        "id": doc.id,
        **vars(doc.meta),
        "sha256": doc.sha256,
        "paragraph_count": len(loaded.paragraphs.get(doc.id, ())),
        "chunk_count": loaded.chunk_counts.get(doc.id, 0),
        "characters": len(doc.text),
    }


def parse_document_body(request: Request, body: bytes) -> DocumentIn:
    """The PUT body, validated like any FastAPI body (422 naming the field)."""
    content_type = request.headers.get("content-type", "application/json")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the document as application/json")
    try:
        return DocumentIn.model_validate_json(body)
    except ValidationError as exc:
        errors = [
            {**err, "loc": ("body", *err.get("loc", ()))}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


@router.get("", summary="Every document with its metadata")
async def list_documents(loaded: LoadedDep) -> DocumentList:
    docs = sorted(loaded.documents.values(), key=lambda d: d.id)
    return DocumentList(documents=[DocumentSummary(**summary_of(d, loaded)) for d in docs])


@router.get(
    "/{doc_id:path}",
    summary="One document with its full text and paragraph spans",
    responses=error_responses(404, 422, 503),
)
async def get_document(doc_id: DocIdDep, loaded: LoadedDep) -> DocumentDetail:
    """The stored text that every span in an answer indexes into, and where each paragraph
    starts and ends in it."""
    doc = loaded.documents.get(doc_id)
    if doc is None:
        raise DocumentNotFound(f"no document with id {doc_id!r}")
    return DocumentDetail(
        **summary_of(doc, loaded),
        text=doc.text,
        paragraphs=[
            ParagraphOut(paragraph=p.paragraph, start=p.start, end=p.end)
            for p in loaded.paragraphs.get(doc_id, ())
        ],
    )


_PUT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": DocumentIn.model_json_schema()}},
}


@router.put(
    "/{doc_id:path}",
    summary="Add or replace a document (admin)",
    status_code=200,
    responses={
        200: {"description": "The document was replaced.", "model": DocumentSummary},
        201: {
            "description": "The document was added.",
            "model": DocumentSummary,
            "headers": {
                "Location": {
                    "description": "Where the new document is.",
                    "schema": {"type": "string"},
                }
            },
        },
        **error_responses(401, 403, 413, 415, 422, 503, 507),
    },
    openapi_extra={"requestBody": _PUT_BODY},
)
async def put_document(
    request: Request, response: Response, doc_id: DocIdDep, _admin: AdminDep, state: StateDep
) -> DocumentSummary:
    """Store the text and metadata under ``doc_id`` and index it. The index and the document
    store are persisted before the response, and the next question sees the change (in every
    worker within a few seconds). The token is checked before the body is read."""
    state.current()  # 503 before reading a body that could not be indexed anyway
    payload = parse_document_body(request, await request.body())
    meta = parse_meta(payload.model_dump(exclude={"text"}), f"document {doc_id!r}")
    document = make_document(doc_id, payload.text, meta)
    created = await state.upsert(document)
    if created:
        response.status_code = 201
        response.headers["Location"] = f"/documents/{doc_id}"
    return DocumentSummary(**summary_of(document, state.current()))


@router.delete(
    "/{doc_id:path}",
    summary="Remove a document (admin)",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422, 503, 507),
)
async def delete_document(doc_id: DocIdDep, _admin: AdminDep, state: StateDep) -> Response:
    """Remove the document from the index and the document store, persisted before the
    response."""
    await state.remove(doc_id)
    return Response(status_code=204)
