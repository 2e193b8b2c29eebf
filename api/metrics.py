"""Prometheus metrics: per-route request counts and latencies (prometheus-fastapi-instrumentator)
and the size of the live index, in a registry of the app's own."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_fastapi_instrumentator import Instrumentator

from api.state import ServiceState


class IndexCollector(Collector):
    """Reads the live index's size at scrape time."""

    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        loaded = self._state.loaded
        yield GaugeMetricFamily(
            "rag_ready", "1 when the model and index are loaded", value=float(loaded is not None)
        )
        if loaded is None:
            return
        yield GaugeMetricFamily(
            "rag_index_documents",
            "Documents in the live index",
            value=len(loaded.corpus.documents),
        )
        yield GaugeMetricFamily(
            "rag_index_chunks", "Chunks in the live index", value=len(loaded.corpus.chunks)
        )
        yield GaugeMetricFamily(
            "rag_index_generation", "Generation of the live index", value=loaded.generation
        )


def install_metrics(app: FastAPI, state: ServiceState) -> Instrumentator:
    """Instrument ``app`` and serve GET /metrics (call before the outer middleware is added,
    so that requests refused by it are counted too)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(IndexCollector(state))
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        # (no in-progress gauge: the library registers it globally, not in ``registry``)
        excluded_handlers=["^/metrics$"],
        registry=registry,
    )
    instrumentator.instrument(app).expose(
        app,
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Metrics in the Prometheus text format."}},
    )
    return instrumentator
