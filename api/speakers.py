"""Who speaks in the articles: the speakers attribution found, with their statement counts."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LoadedDep
from api.schemas import SpeakerList, SpeakerSummary
from rag import speakers

router = APIRouter(tags=["documents"])


@router.get("/speakers", summary="Every speaker the articles quote, and their authors")
async def list_speakers(loaded: LoadedDep) -> SpeakerList:
    """The speakers found at index time: each person or organisation whose statements the
    articles report, with the names a question may use for them and their statement count,
    then each article's author, whose statements are the sentences in the author's own voice.
    Any of these names can go in `/ask`'s `speaker` filter."""
    return SpeakerList(
        speakers=[
            SpeakerSummary(
                name=e.name,
                kind=e.kind,
                aliases=list(e.aliases),
                statements=e.statements,
                documents=list(e.documents),
            )
            for e in speakers.registry(loaded.corpus)
        ]
    )
