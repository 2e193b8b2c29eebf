"""The one response shape, shared by the CLI (``rag ask --json``) and the HTTP API.

``api/schemas.py`` validates this dict into its pydantic model at the HTTP boundary; both the
CLI and the API serialise through that model, so their JSON is the same.
"""

from __future__ import annotations

import math
from typing import Any

from core.types import Answer, Passage, Quote


def speaker_dict(quote: Quote) -> dict[str, Any] | None:
    s = quote.speaker
    if s is None:
        return None
    mention = s.mention
    return {
        "name": s.name,
        "mention": None
        if mention is None
        else {"start": mention.start, "end": mention.end, "text": s.mention_text},
        "reported_by": s.reported_by,
    }


def quote_dict(quote: Quote) -> dict[str, Any]:
    return {
        "start": quote.start,
        "end": quote.end,
        "text": quote.text,
        "score": quote.score,
        "speaker": speaker_dict(quote),
        "voice": quote.voice,
    }


def passage_dict(passage: Passage) -> dict[str, Any]:
    chunk = passage.hit.chunk
    return {
        "doc_id": chunk.doc_id,
        "chunk_id": chunk.id,
        "paragraph": chunk.paragraph,
        "start": chunk.start,
        "end": chunk.end,
        "text": chunk.text,
        "score": round(passage.hit.score, 6),
        "rerank_score": None
        if passage.hit.rerank_score is None
        else round(passage.hit.rerank_score, 6),
        "quotes": [quote_dict(q) for q in passage.quotes],
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    best = answer.answer
    return {
        "question": answer.question,
        "searched_as": answer.searched_as,
        "mode": answer.mode,
        "confidence": round(answer.confidence, 4) if math.isfinite(answer.confidence) else None,
        "answer": None
        if best is None
        else {
            "doc_id": best.doc_id,
            "paragraph": best.paragraph,
            "start": best.start,
            "end": best.end,
            "text": best.text,
            "speaker": speaker_dict(best),
            "voice": best.voice,
        },
        "abstained": answer.abstained,
        "reason": answer.reason,
        "speaker": answer.speaker,
        "passages": [passage_dict(p) for p in answer.passages],
    }
