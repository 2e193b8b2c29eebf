"""Building, updating and reloading the index with the real model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import IndexCorrupt, IndexMismatch
from core.types import Document
from index.persist import read_manifest
from rag.build import build_index, load_corpus
from rag.chunk import chunk_document
from rag.embed import Kind, SentenceTransformerEncoder
from rag.pipeline import answer
from rag.settings import Settings


class CountingEncoder:
    """The real encoder, counting what it is asked to embed (and optionally renamed)."""

    def __init__(self, inner: SentenceTransformerEncoder, name: str | None = None) -> None:
        self.inner = inner
        self.texts: list[str] = []
        self._name = name or inner.name

    @property
    def name(self) -> str:
        return self._name

    @property
    def query_name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        if kind == "passage":
            self.texts.extend(texts)
        return self.inner.encode(texts, kind=kind, progress=progress)


@pytest.fixture(scope="module")
def small_docs(squad_articles) -> list[Document]:  # type: ignore[no-untyped-def]
    """The first four paragraphs of each article: real text, quick to embed."""
    docs = []
    for article in squad_articles:
        doc = article.document
        end = article.paragraph_spans[3].end
        docs.append(Document(id=doc.id, text=doc.text[:end] + "\n", meta=doc.meta))
    return docs


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", index_dir=tmp_path / "index")


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoder, small_docs) -> Settings:  # type: ignore[no-untyped-def]
    """An index of ``small_docs`` built from scratch, once for the tests that only read it;
    a test that changes an index works on its own copy (:func:`copy_of`)."""
    settings = _settings(tmp_path_factory.mktemp("pipeline-built"))
    build_index(settings, encoder, documents=small_docs)
    return settings


def copy_of(built: Settings, tmp_path: Path) -> Settings:
    settings = _settings(tmp_path)
    shutil.copytree(built.index_dir, settings.index_dir)
    return settings


def test_update_reembeds_only_the_changed_document(tmp_path, encoder, small_docs) -> None:
    settings = _settings(tmp_path)
    counting = CountingEncoder(encoder)
    first = build_index(settings, counting, documents=small_docs)
    assert sorted(first.added) == sorted(d.id for d in small_docs)
    assert len(counting.texts) == first.chunks_embedded + first.sentences_embedded

    changed = dataclasses.replace(
        small_docs[1],
        text=small_docs[1].text + "\nA new closing paragraph. It is short.\n",
        sha256="",
    )
    counting.texts.clear()
    second = build_index(settings, counting, documents=[small_docs[0], changed, small_docs[2]])
    assert second.updated == (changed.id,)
    assert sorted(second.unchanged) == sorted([small_docs[0].id, small_docs[2].id])
    expected = chunk_document(
        changed, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens
    )
    expected_texts = [c.text for c in expected] + [
        changed.text[s.start : s.end] for c in expected for s in c.sentences
    ]
    assert counting.texts == expected_texts, "only the changed document was embedded"

    counting.texts.clear()
    third = build_index(settings, counting, documents=[small_docs[0], changed])
    assert third.removed == (small_docs[2].id,)
    assert counting.texts == []
    corpus = load_corpus(settings, encoder)
    assert set(corpus.documents) == {small_docs[0].id, changed.id}
    assert len(corpus.index) == len(corpus.chunks) == third.manifest.counts["chunks"]


def test_updated_index_equals_a_fresh_build(tmp_path, encoder, small_docs, built) -> None:
    incremental, fresh = _settings(tmp_path / "a"), built
    build_index(incremental, encoder, documents=small_docs[:2])
    build_index(incremental, encoder, documents=small_docs)
    a, b = load_corpus(incremental, encoder), load_corpus(fresh, encoder)
    assert a.chunks == b.chunks
    np.testing.assert_allclose(a.sentence_vectors, b.sentence_vectors, atol=1e-5)
    question = "What is the Scottish Parliament?"
    ra = answer(a, encoder, question, settings=incremental)
    rb = answer(b, encoder, question, settings=fresh)
    assert [p.hit.chunk.id for p in ra.passages] == [p.hit.chunk.id for p in rb.passages]


def test_save_load_round_trip_keeps_text_and_spans(encoder, small_docs, built) -> None:
    corpus = load_corpus(built, encoder)
    for doc in small_docs:
        assert corpus.documents[doc.id].text == doc.text
        assert corpus.documents[doc.id].meta == doc.meta
        chunks = [c for c in corpus.chunks if c.doc_id == doc.id]
        # the chunker's chunks, each with the voice of every sentence (attribution)
        assert [replace(c, voices=()) for c in chunks] == chunk_document(
            doc, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens
        )
        assert all(len(c.voices) == len(c.sentences) for c in chunks)


def test_index_of_another_model_is_refused_with_how_to_rebuild(
    tmp_path, encoder, small_docs, built
) -> None:
    settings = copy_of(built, tmp_path)
    other = CountingEncoder(encoder, name="sentence-transformers/some-other-model")
    with pytest.raises(IndexMismatch, match="rag index --rebuild"):
        load_corpus(settings, other)
    with pytest.raises(IndexMismatch):
        build_index(settings, other, documents=small_docs)  # never silently replaced
    assert read_manifest(settings.index_dir).model == encoder.name
    report = build_index(settings, other, documents=small_docs, rebuild=True)
    assert report.manifest.model == other.name


def test_corrupt_index_is_refused(tmp_path, encoder, built) -> None:
    settings = copy_of(built, tmp_path)
    live = settings.index_dir / (settings.index_dir / "CURRENT").read_text().strip()
    chunks = live / "chunks.jsonl"
    chunks.write_bytes(chunks.read_bytes()[:-10])
    with pytest.raises(IndexCorrupt, match=r"chunks\.jsonl"):
        load_corpus(settings, encoder)


def test_manifest_records_what_the_index_was_built_with(small_docs, built) -> None:
    live = built.index_dir / (built.index_dir / "CURRENT").read_text().strip()
    manifest = json.loads((live / "manifest.json").read_text())
    assert manifest["model"] == "bundled:all-MiniLM-L6-v2"
    assert manifest["dimension"] == 384
    assert manifest["documents"] == {d.id: d.sha256 for d in small_docs}
    assert manifest["counts"]["documents"] == len(small_docs)
    assert {"chunker_version", "faiss_version", "files"} <= set(manifest)


def test_an_empty_index_says_that_nothing_is_indexed(tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    """A service started on an empty data folder tells the operator what to do, rather than
    that the articles do not answer."""
    settings = _settings(tmp_path)
    settings.data_dir.mkdir()
    build_index(settings, encoder)
    corpus = load_corpus(settings, encoder)
    result = answer(corpus, encoder, "What did Merz say about German troops?", settings=settings)
    assert result.abstained and result.answer is None and result.passages == ()
    assert result.reason is not None and "No articles are indexed" in result.reason
    assert "RAG_DATA_DIR" in result.reason
