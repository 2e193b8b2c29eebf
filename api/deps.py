"""Dependencies shared by the routes: the service state, the live index, the admin check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.config import ApiSettings
from api.errors import ApiError
from api.schemas import DOC_ID_REGEX
from api.state import Loaded, ServiceState
from rag.load import validate_doc_id


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_loaded(state: StateDep) -> Loaded:
    """The live index for this request (503 while the service is loading)."""
    return state.current()


LoadedDep = Annotated[Loaded, Depends(get_loaded)]


def valid_doc_id(
    doc_id: Annotated[
        str,
        Path(
            description="Document id: 1-128 letters, digits, '-' or '_'.",
            examples=["squad2-Normans"],
            json_schema_extra={"pattern": DOC_ID_REGEX},
        ),
    ],
) -> str:
    return validate_doc_id(doc_id)


DocIdDep = Annotated[str, Depends(valid_doc_id)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The token set in RAG_ADMIN_TOKEN; document writes are off without it.",
)


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with ``Authorization: Bearer <RAG_ADMIN_TOKEN>``."""
    api_settings: ApiSettings = request.app.state.api_settings
    configured = api_settings.admin_token
    expected = configured.get_secret_value() if configured is not None else ""
    if not expected:
        raise ApiError(
            403,
            "writes_disabled",
            "document writes are disabled: set RAG_ADMIN_TOKEN to enable document writes",
        )
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401,
            "unauthorized",
            "an admin token is required: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(
        credentials.credentials.encode("utf-8"), expected.encode("utf-8")
    ):
        raise ApiError(403, "forbidden", "the admin token is not valid")


AdminDep = Annotated[None, Depends(require_admin)]
