"""The FastAPI application: ``create_app()`` builds it; uvicorn runs it as a factory
(``uvicorn --factory api.app:create_app``, or ``rag serve``).

Nothing happens at import time. The lifespan starts loading the model and the index in a
worker thread and returns at once, so the server answers ``/healthz`` (200) and ``/readyz``
(503) while it loads; then it watches the index for changes made by other processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio
from fastapi import FastAPI
from slowapi import Limiter
from slowapi.util import get_remote_address

from api import ask, documents, health, speakers, web
from api.admission import Admission, AdmissionCollector, AdmissionMiddleware
from api.config import ApiSettings, get_api_settings
from api.errors import install_error_handlers
from api.metrics import install_metrics
from api.middleware import (
    REQUEST_ID_HEADER,
    BodyLimitMiddleware,
    JsonErrorCORSMiddleware,
    RequestContextMiddleware,
)
from api.openapi import install_openapi
from api.schemas import CARD_QUESTION
from api.state import ServiceState
from rag.settings import Settings, get_settings

DESCRIPTION = f"""
Ask questions about commentary articles. Every answer is an **exact quote** from an article,
with its document, paragraph and character span (`text == document.text[start:end]`, see
`GET /documents/{{doc_id}}`), or an abstention with a reason when no passage answers it.

Try `POST /ask` with `{{"question": "{CARD_QUESTION}"}}`.

Errors always have the shape `{{"error": {{"code": ..., "message": ...}}}}`, and every response
carries an `{REQUEST_ID_HEADER}` header. Document writes need
`Authorization: Bearer <RAG_ADMIN_TOKEN>`.
"""

TAGS = [
    {"name": "questions", "description": "Answers quoted from the articles."},
    {"name": "documents", "description": "The articles: metadata, text, and (admin) changes."},
    {"name": "operations", "description": "Health, readiness and metrics."},
]


def _version() -> str:
    try:
        return version("commentary-rag")
    except PackageNotFoundError:
        return "0"


def create_app(
    settings: Settings | None = None,
    api_settings: ApiSettings | None = None,
    *,
    state: ServiceState | None = None,
) -> FastAPI:
    """The application; settings default to the ``RAG_*`` environment."""
    settings = settings or get_settings()
    api_settings = api_settings or get_api_settings()
    service = state or ServiceState(
        settings,
        ask_concurrency=api_settings.ask_concurrency,
        reload_interval=api_settings.reload_interval,
        answer_cache_size=api_settings.answer_cache_size,
        writes=api_settings.admin_token is not None,
        rebuild_stale=api_settings.rebuild_stale_index,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.run)
            yield
            tasks.cancel_scope.cancel()

    app = FastAPI(
        title="Commentary RAG",
        summary="Questions answered with exact, verifiable quotes from commentary articles.",
        description=DESCRIPTION,
        version=_version(),
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.api_settings = api_settings
    app.state.limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=api_settings.rate_limit_storage,
        enabled=bool(api_settings.ask_rate_limit),
    )

    install_error_handlers(app)
    app.include_router(ask.build_router(app.state.limiter, api_settings.ask_rate_limit))
    app.include_router(documents.router)
    app.include_router(speakers.router)
    app.include_router(health.router)
    app.include_router(web.router)
    install_openapi(app, {("/ask", "post", 200): ask.RESPONSE_EXAMPLES})

    # Middleware, innermost first (each add wraps what is there).
    def body_limit(path: str) -> int:
        if path == "/documents" or path.startswith("/documents/"):
            return api_settings.max_document_bytes
        return api_settings.max_ask_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    # Outside the body limit (a refusal reads no body), inside the metrics (refusals count).
    admission = Admission(
        api_settings.ask_concurrency, api_settings.ask_queue_limit, api_settings.ask_max_wait
    )
    app.state.admission = admission
    app.add_middleware(AdmissionMiddleware, admission=admission)
    instrumentator = install_metrics(app, service)
    instrumentator.registry.register(AdmissionCollector(admission))
    if api_settings.cors_origins:
        app.add_middleware(
            JsonErrorCORSMiddleware,
            allow_origins=api_settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    return app
