"""POST /ask: a question in, an answer quoted from the articles (or an abstention) out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from slowapi import Limiter

from api.deps import StateDep
from api.openapi import error_responses
from api.schemas import CARD_QUESTION, AskRequest, AskResponse, length_errors
from core.types import Answer
from rag.response import answer_dict

#: Response examples: a real answer (the SQuAD 2.0 "Normans" article, as indexed by the tests)
#: and an abstention.
RESPONSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "answered": {
        "summary": "An answer: an exact quote with its span (top_k 1)",
        "value": {
            "question": "When did Herve serve as a Byzantine general?",
            "searched_as": None,
            "mode": "accurate",
            "confidence": 0.5942,
            "answer": {
                "doc_id": "squad2-Normans",
                "paragraph": 9,
                "start": 6056,
                "end": 6147,
                "text": "One of the first Norman mercenaries to serve as a Byzantine general was "
                "Hervé in the 1050s.",
            },
            "abstained": False,
            "reason": None,
            "passages": [
                {
                    "doc_id": "squad2-Normans",
                    "chunk_id": "bcf42c9319493382bbc8f04a7315c43097084b6d2ba359e4977bfd9b7d7c129e",
                    "paragraph": 9,
                    "start": 6056,
                    "end": 6595,
                    "text": "One of the first Norman mercenaries to serve as a Byzantine general "
                    "was Hervé in the 1050s. By then however, there were already Norman "
                    "mercenaries serving as far away as Trebizond and Georgia. They were based "
                    "at Malatya and Edessa, under the Byzantine duke of Antioch, Isaac "
                    "Komnenos. In the 1060s, Robert Crispin led the Normans of Edessa against "
                    "the Turks. Roussel de Bailleul even tried to carve out an independent "
                    "state in Asia Minor with support from the local population, but he was "
                    "stopped by the Byzantine general Alexius Komnenos.",
                    "score": 1.0,
                    "rerank_score": 8.257362,
                    "quotes": [
                        {
                            "start": 6056,
                            "end": 6147,
                            "text": "One of the first Norman mercenaries to serve as a Byzantine "
                            "general was Hervé in the 1050s.",
                            "score": 0.679363,
                        }
                    ],
                }
            ],
        },
    },
    "abstained": {
        "summary": "An abstention (the nearest passages it returns are left out here)",
        "value": {
            "question": CARD_QUESTION,
            "searched_as": None,
            "mode": "accurate",
            "confidence": 0.0621,
            "answer": None,
            "abstained": True,
            "reason": "The articles do not appear to answer this: the evidence scores 0.06, "
            "below the accurate mode's abstention threshold 0.24.",
            "passages": [],
        },
    },
}


#: What a 404 from POST /ask means (README, "Run the service").
UNKNOWN_FILTER = (
    "A filter selects no document: `doc_ids` names a document that is not in the index (the "
    "message lists which), no document's author contains `author`, or no speaker matches "
    "`speaker` (GET /speakers lists them). Error code "
    "`unknown_filter`. The same status as `GET /documents/{doc_id}` for that id: nothing was "
    "searched, unlike an abstention (200), which means the named articles do not answer."
)


def render(result: Answer) -> bytes:
    """The response body: validated against the schema and serialised (in the worker)."""
    return AskResponse.model_validate(answer_dict(result)).model_dump_json().encode("utf-8")


async def checked_request(body: AskRequest, state: StateDep) -> AskRequest:
    """The request body, refused (422 ``invalid_request``, like any invalid field, and before
    the rate limit counts it) when its question or an earlier one is longer than the
    server's ``RAG_MAX_QUESTION_CHARS`` setting."""
    errors = length_errors(body, state.settings.max_question_chars)
    if errors:
        raise RequestValidationError(errors)
    return body


async def ask(
    request: Request, body: Annotated[AskRequest, Depends(checked_request)], state: StateDep
) -> Response:
    """Answer the question with an exact quote from the indexed articles, with its document,
    paragraph and character span, plus the passages it was chosen from; or abstain with a
    reason when nothing answers it. Every ``text`` equals ``document.text[start:end]`` of
    GET /documents/{doc_id}."""
    # A top_k (or mode) left out stays None: the pipeline applies the server's setting.
    content = await state.ask(
        body.question,
        render,
        top_k=body.top_k,
        doc_ids=body.doc_ids,
        author=body.author,
        history=body.history,
        mode=body.mode,
        speaker=body.speaker,
    )
    return Response(content, media_type="application/json")


def build_router(limiter: Limiter, rate_limit: str) -> APIRouter:
    """The /ask route, rate-limited per client by ``limiter`` ('' for no limit)."""
    router = APIRouter(tags=["questions"])
    endpoint = limiter.limit(rate_limit)(ask) if rate_limit else ask
    router.add_api_route(
        "/ask",
        endpoint,
        methods=["POST"],
        summary="Answer a question with a quote",
        response_model=AskResponse,
        responses={
            200: {"content": {"application/json": {"examples": RESPONSE_EXAMPLES}}},
            **error_responses(404, 413, 422, 429, 503, descriptions={404: UNKNOWN_FILTER}),
        },
    )
    return router
