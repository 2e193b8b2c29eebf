"""Helpers for the reliability tests (no tests here): real article text to write, a check
that a persisted index agrees with itself and with a running server, and the figures that
``docs/reliability.md`` quotes.

Figures are written only when ``RAG_RELIABILITY_FIGURES`` names a folder (``python -m
bench.reliability`` sets it); each test writes one JSON file there.

The servers these tests start find the model's ONNX export in the per-user default cache
(``rag.embed.default_model_cache``), as the session's encoder and every other test server do:
nothing is exported again for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from eval.squad import DEFAULT_PATH as SQUAD2_PATH
from eval.squad import load_squad2
from index.persist import IndexSnapshot, load_snapshot, writer_lock
from index.store import chunk_key

FIGURES_ENV = "RAG_RELIABILITY_FIGURES"
#: Articles the test servers do not index: their paragraphs are the documents tests write.
WRITE_TITLES = ["Steam_engine", "Warsaw", "Immune_system", "Force", "Yuan_dynasty", "Huguenot"]


def record_figures(name: str, figures: dict[str, Any]) -> None:
    folder = os.environ.get(FIGURES_ENV)
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def real_paragraphs(min_chars: int = 200) -> list[str]:
    """Paragraphs of real SQuAD 2.0 articles that the test corpus does not hold."""
    out: list[str] = []
    for article in load_squad2(SQUAD2_PATH, titles=WRITE_TITLES):
        out.extend(p for p in article.document.text.split("\n\n") if len(p) >= min_chars)
    return out


def leading_sentences(text: str, n: int = 2) -> str:
    """The first ``n`` sentences of ``text`` (short documents embed quickly)."""
    end = -1
    for _ in range(n):
        found = text.find(". ", end + 1)
        if found < 0:
            return text
        end = found
    return text[: end + 1]


def first_sentence(text: str) -> str:
    end = text.find(". ")
    return text[: end + 1] if end > 0 else text[:200]


def check_index(index_dir: Path) -> IndexSnapshot:
    """Load the live generation (its checksums verified) and check, independently of the
    loader's own checks, that the FAISS index, the chunk table and the manifest agree."""
    with writer_lock(index_dir, exclusive=False):
        snapshot = load_snapshot(index_dir)
    m = snapshot.manifest
    chunk_keys = {chunk_key(c.id) for c in snapshot.chunks}
    vector_ids = set(snapshot.index.ids().tolist())
    doc_ids = {d.id for d in snapshot.documents}
    assert len(snapshot.index) == len(snapshot.chunks) == m.counts["vectors"] == m.counts["chunks"]
    assert vector_ids == chunk_keys, "every vector is a chunk's and every chunk has a vector"
    assert {c.doc_id for c in snapshot.chunks} <= doc_ids
    assert set(m.documents) == doc_ids and m.counts["documents"] == len(doc_ids)
    assert all(m.documents[d.id] == d.sha256 for d in snapshot.documents)
    texts = {d.id: d.text for d in snapshot.documents}
    assert all(texts[c.doc_id][c.start : c.end] == c.text for c in snapshot.chunks)
    return snapshot


def check_server_agrees(client: httpx.Client, snapshot: IndexSnapshot) -> dict[str, str]:
    """/readyz and GET /documents describe exactly ``snapshot``; returns id -> sha256."""
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["documents"] == len(snapshot.documents)
    assert body["chunks"] == len(snapshot.chunks)
    assert body["generation"] == snapshot.manifest.generation
    listed = client.get("/documents").json()["documents"]
    served = {d["id"]: d["sha256"] for d in listed}
    assert served == {d.id: d.sha256 for d in snapshot.documents}
    return served
