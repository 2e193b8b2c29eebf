"""Settings of the HTTP service only, read from ``RAG_*`` environment variables.

The pipeline's settings (paths, model, retrieval, limits) live in
:class:`rag.settings.Settings`; this holds what only the server needs. Nothing is read at
import time: call :func:`get_api_settings` (cached) or pass an ``ApiSettings`` explicitly.
"""

from __future__ import annotations

import os
from functools import lru_cache

from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # Where `rag serve` listens (its --host/--port/--workers override these).
    host: str = Field("127.0.0.1", description="Address `rag serve` listens on (--host).")
    port: int = Field(8000, ge=0, le=65535, description="Port `rag serve` listens on (--port).")
    workers: int = Field(
        1, ge=1, le=64, description="Worker processes, each with its own models (--workers)."
    )

    # Access.
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for document writes (PUT/DELETE /documents); unset: writes "
        "are disabled. Never has a default.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, as JSON: ["https://..."].',
    )

    # Abuse protection.
    ask_rate_limit: str = Field(
        "60/minute",
        description="Per-client limit on POST /ask, e.g. '60/minute' or '10/second;500/hour'; "
        "empty: no limit. Counted per worker process unless rate_limit_storage is shared.",
    )
    rate_limit_storage: str = Field(
        "memory://", description="Where rate-limit counters live (a `limits` storage URI)."
    )
    max_ask_bytes: int = Field(1_000_000, ge=1, description="Largest accepted /ask body.")
    max_document_bytes: int = Field(
        5_000_000,
        ge=1,
        description="Largest accepted body for the /documents endpoints, in bytes.",
    )

    rebuild_stale_index: bool = Field(
        False,
        description="Rebuild the index from the data folder when it was built by another "
        "model, chunker, attribution or FAISS version, instead of refusing it (`make run` "
        "sets it: there the data folder is the source; never for a database); off: refuse "
        "and say how to rebuild.",
    )

    # Work scheduling.
    ask_concurrency: int = Field(
        default_factory=_cpu_count,
        ge=1,
        le=256,
        description="Questions answered at once per worker (threads); others wait their turn.",
    )
    ask_queue_limit: int = Field(
        64,
        ge=0,
        le=10_000,
        description="Questions that may wait for a free thread per worker, beyond "
        "ask_concurrency; more at once are refused at once with 503 'overloaded' and "
        "Retry-After (docs/reliability.md).",
    )
    ask_max_wait: float = Field(
        1.0,
        ge=0.0,
        description="Refuse a question (503 'overloaded') when those already waiting would "
        "take longer than this many seconds to start, estimated from the recent answer "
        "rate; 0: only ask_queue_limit applies.",
    )
    reload_interval: float = Field(
        1.0,
        ge=0.0,
        description="Seconds between checks for an index changed by another "
        "process (other workers, `rag index`); 0 disables the check.",
    )

    answer_cache_size: int = Field(
        1024, ge=0, description="Rendered answers kept for repeated questions (0: none)."
    )

    log_level: str = Field("info", description="Log level of the server and access log.")

    @field_validator("ask_rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit like '60/minute': {value!r}") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("log level must be critical, error, warning, info or debug")
        return value


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()
