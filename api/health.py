"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LoadedDep, StateDep
from api.openapi import error_responses
from api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> HealthResponse:
    """Always 200 while the process serves requests (even while it is still loading)."""
    return HealthResponse()


@router.get("/readyz", summary="The model and index are loaded", responses=error_responses(503))
async def readyz(state: StateDep, loaded: LoadedDep) -> ReadyResponse:
    """200 with the index's size once questions can be answered; 503 before (or if loading
    failed, with the reason), and while the index's database cannot be reached (questions
    are still answered from the version loaded before)."""
    state.check_store()
    return ReadyResponse(
        documents=len(loaded.corpus.documents),
        chunks=len(loaded.corpus.chunks),
        generation=loaded.generation,
        model=state.encoder.name,
    )
