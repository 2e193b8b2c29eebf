"""Building the index: load -> chunk -> embed -> index, persisted as one generation.

Pure stages over frozen types; the only I/O is reading ``data/`` and writing the index
folder (under its writer lock). Re-embeds only documents whose text changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.errors import DocumentNotFound, IndexNotFound
from core.types import Chunk, Document
from index.persist import (
    Delta,
    Expectation,
    IndexSnapshot,
    Manifest,
    load_snapshot,
    save_snapshot,
    writer_lock,
)
from index.store import FaissIndex, IndexType, chunk_key
from rag import attribution
from rag.chunk import CHUNKER_VERSION, chunk_document
from rag.embed import Encoder
from rag.journal import recover
from rag.load import load_data_dir
from rag.retrieve import Corpus
from rag.settings import Settings

log = logging.getLogger(__name__)


#: Documents parsed per call when attributing (progress is shown between calls).
ATTRIBUTION_BATCH = 32


def chunk_format() -> str:
    """What the manifest records as the chunker version: the chunker's, and the attribution
    stored with every chunk (``Chunk.voices``), so that an index built by other rules or another
    parser refuses to load and says how to rebuild."""
    return f"{CHUNKER_VERSION}; {attribution.analysis_version()}"


@dataclass(frozen=True)
class Plan:
    """What an update does to each document id, compared with the previous index."""

    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]


@dataclass(frozen=True)
class BuildReport:
    plan: Plan
    chunks_embedded: int
    sentences_embedded: int
    manifest: Manifest

    @property
    def added(self) -> tuple[str, ...]:
        return self.plan.added

    @property
    def updated(self) -> tuple[str, ...]:
        return self.plan.updated

    @property
    def removed(self) -> tuple[str, ...]:
        return self.plan.removed

    @property
    def unchanged(self) -> tuple[str, ...]:
        return self.plan.unchanged


@dataclass(frozen=True)
class IndexParts:
    """A new index version, in memory, before it is saved."""

    index: FaissIndex
    chunks: tuple[Chunk, ...]
    documents: tuple[Document, ...]
    sentence_vectors: np.ndarray


def expectation(encoder: Encoder) -> Expectation:
    return Expectation(model=encoder.name, dimension=encoder.dim, chunker_version=chunk_format())


@dataclass(frozen=True)
class Embedded:
    """Chunks of some documents with their vectors, and their sentences' vectors (in chunk
    order, then sentence order)."""

    chunks: tuple[Chunk, ...]
    chunk_vectors: np.ndarray
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class IndexUpdate:
    """A new index version in memory, what changed, and how much was embedded for it."""

    parts: IndexParts
    plan: Plan
    chunks_embedded: int
    sentences_embedded: int


def embed_documents(
    docs: Sequence[Document],
    encoder: Encoder,
    progress: bool,
    parser: attribution.Parser | None = None,
) -> Embedded:
    """Chunk documents, attribute their sentences (``Chunk.voices``; ``parser`` defaults to
    the process's spaCy pipeline) and embed them. The embeddings do not depend on the
    attribution, so the parse runs in a thread beside the encoder (spaCy on one core, torch
    on the rest): indexing with attribution costs what the longer of the two costs, not
    their sum (docs/attribution.md, "Indexing cost")."""
    per_doc = [
        (doc, chunk_document(doc, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens))
        for doc in tqdm(docs, desc="chunking", unit="doc", disable=not progress or len(docs) < 10)
    ]
    parser = parser if parser is not None else attribution.shared_parser()
    plain = [c for _, chunks in per_doc for c in chunks]
    texts = {d.id: d.text for d in docs}
    sentences = [texts[c.doc_id][s.start : s.end] for c in plain for s in c.sentences]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attribution") as pool:
        voiced = pool.submit(_attribute, per_doc, parser, progress and len(docs) >= 10)
        vectors = encoder.encode([c.text for c in plain] + sentences, progress=progress)
        chunks = voiced.result()  # the same chunks, in order, with their voices
    return Embedded(tuple(chunks), vectors[: len(chunks)], vectors[len(chunks) :])


def _attribute(
    per_doc: Sequence[tuple[Document, Sequence[Chunk]]], parser: attribution.Parser, progress: bool
) -> list[Chunk]:
    """The chunks with their sentences' voices, in order, parsed ``ATTRIBUTION_BATCH``
    documents at a time."""
    chunks: list[Chunk] = []
    with tqdm(total=len(per_doc), desc="attributing", unit="doc", disable=not progress) as bar:
        for at in range(0, len(per_doc), ATTRIBUTION_BATCH):
            batch = per_doc[at : at + ATTRIBUTION_BATCH]
            for voiced in attribution.with_voices(batch, parser):
                chunks.extend(voiced)
            bar.update(len(batch))
    return chunks


def make_delta(doc_id: str, document: Document | None, encoder: Encoder, generation: int) -> Delta:
    """The delta that writes ``document`` as ``doc_id`` (None: removes it), embedded."""
    if document is None:
        empty = np.zeros((0, encoder.dim), dtype=np.float32)
        return Delta(generation, doc_id, None, (), empty, empty)
    embedded = embed_documents([document], encoder, progress=False)
    return Delta(
        generation,
        doc_id,
        document,
        embedded.chunks,
        np.asarray(embedded.chunk_vectors, dtype=np.float32),
        np.asarray(embedded.sentence_vectors, dtype=np.float32),
    )


def update_index(
    previous: IndexSnapshot | None,
    documents: Sequence[Document],
    encoder: Encoder,
    *,
    index_type: IndexType = "auto",
    progress: bool = False,
) -> IndexUpdate:
    """The index for exactly ``documents``, re-embedding only what changed since ``previous``.
    ``previous`` is never modified (a live service may be searching it). ``index_type`` is
    the vector structure (:class:`~index.store.FaissIndex`)."""
    old_sha = {d.id: d.sha256 for d in previous.documents} if previous else {}
    new_ids = {d.id for d in documents}
    unchanged = [d.id for d in documents if old_sha.get(d.id) == d.sha256]
    changed = [d for d in documents if old_sha.get(d.id) != d.sha256]
    plan = Plan(
        added=tuple(d.id for d in changed if d.id not in old_sha),
        updated=tuple(d.id for d in changed if d.id in old_sha),
        removed=tuple(i for i in old_sha if i not in new_ids),
        unchanged=tuple(unchanged),
    )
    kept: dict[str, list[tuple[Chunk, np.ndarray]]] = {i: [] for i in unchanged}
    index = FaissIndex(encoder.dim, index_type)
    if previous is not None:
        index = FaissIndex.from_bytes(previous.index.to_bytes(), index_type)
        stale = [c for c in previous.chunks if c.doc_id not in kept]
        index.remove(np.array([chunk_key(c.id) for c in stale], dtype=np.int64))
        row = 0
        for chunk in previous.chunks:
            n = len(chunk.sentences)
            if chunk.doc_id in kept:
                kept[chunk.doc_id].append((chunk, previous.sentence_vectors[row : row + n]))
            row += n
    embedded = embed_documents(changed, encoder, progress)
    new_chunks = embedded.chunks
    if new_chunks:
        keys = np.array([chunk_key(c.id) for c in new_chunks], dtype=np.int64)
        index.add(keys, embedded.chunk_vectors)
    sentence_vecs = embedded.sentence_vectors
    fresh: dict[str, list[tuple[Chunk, np.ndarray]]] = {}
    row = 0
    for chunk in new_chunks:
        n = len(chunk.sentences)
        fresh.setdefault(chunk.doc_id, []).append((chunk, sentence_vecs[row : row + n]))
        row += n
    ordered = [pair for d in documents for pair in (kept.get(d.id) or fresh.get(d.id, []))]
    dim = encoder.dim
    parts = IndexParts(
        index=index,
        chunks=tuple(c for c, _ in ordered),
        documents=tuple(documents),
        sentence_vectors=(
            np.concatenate([v for _, v in ordered]).astype(np.float32)
            if ordered
            else np.zeros((0, dim), dtype=np.float32)
        ),
    )
    return IndexUpdate(parts, plan, len(new_chunks), len(sentence_vecs))


def save_parts(index_dir: Path, parts: IndexParts, encoder: Encoder) -> Manifest:
    return save_snapshot(
        index_dir,
        model=encoder.name,
        dimension=encoder.dim,
        chunker_version=chunk_format(),
        index=parts.index,
        chunks=list(parts.chunks),
        documents=list(parts.documents),
        sentence_vectors=parts.sentence_vectors,
    )


def save_snapshot_of(index_dir: Path, snapshot: IndexSnapshot, *, merge: bool) -> Manifest:
    """Save a loaded version as a whole generation; ``merge``: under its own number (it is the
    live generation with its deltas applied)."""
    m = snapshot.manifest
    return save_snapshot(
        index_dir,
        model=m.model,
        dimension=m.dimension,
        chunker_version=m.chunker_version,
        index=snapshot.index,
        chunks=list(snapshot.chunks),
        documents=list(snapshot.documents),
        sentence_vectors=snapshot.sentence_vectors,
        extra=m.extra,
        generation=m.generation if merge else None,
    )


def snapshot_of(parts: IndexParts, manifest: Manifest) -> IndexSnapshot:
    return IndexSnapshot(
        manifest=manifest,
        index=parts.index,
        chunks=parts.chunks,
        documents=parts.documents,
        sentence_vectors=parts.sentence_vectors,
    )


def replace_documents(
    index_dir: Path,
    previous: IndexSnapshot | None,
    documents: Sequence[Document],
    encoder: Encoder,
    *,
    index_type: IndexType = "auto",
) -> IndexSnapshot:
    """Persist an index holding exactly ``documents`` (re-embedding only changed ones) and
    return it. The write is atomic: on any error the previous index stays the live one."""
    parts = update_index(previous, documents, encoder, index_type=index_type).parts
    return snapshot_of(parts, save_parts(index_dir, parts, encoder))


def upsert_document(
    index_dir: Path,
    previous: IndexSnapshot | None,
    document: Document,
    encoder: Encoder,
    *,
    index_type: IndexType = "auto",
) -> IndexSnapshot:
    """Add or replace one document, keeping the others (and their vectors) as they are."""
    others = [d for d in (previous.documents if previous else ()) if d.id != document.id]
    documents = [*others, document]
    return replace_documents(index_dir, previous, documents, encoder, index_type=index_type)


def remove_document(
    index_dir: Path,
    previous: IndexSnapshot,
    doc_id: str,
    encoder: Encoder,
    *,
    index_type: IndexType = "auto",
) -> IndexSnapshot:
    """Remove one document; raises DocumentNotFound if it is not in the index."""
    if all(d.id != doc_id for d in previous.documents):
        raise DocumentNotFound(f"no document with id {doc_id!r}")
    others = [d for d in previous.documents if d.id != doc_id]
    return replace_documents(index_dir, previous, others, encoder, index_type=index_type)


def read_previous(index_dir: Path, encoder: Encoder, *, rebuild: bool) -> IndexSnapshot | None:
    """The persisted index to update, or None to start afresh (no index, or ``rebuild``).

    A mismatched or corrupt index raises (with how to rebuild) rather than being replaced
    silently."""
    if rebuild:
        return None
    try:
        return load_snapshot(index_dir, expectation(encoder))
    except IndexNotFound:
        return None


def build_index(
    settings: Settings,
    encoder: Encoder,
    *,
    documents: Sequence[Document] | None = None,
    rebuild: bool = False,
    progress: bool = False,
) -> BuildReport:
    """Build or update the persisted index so that it holds exactly ``documents`` (default:
    every article in ``settings.data_dir``). Holds the index's writer lock meanwhile, so a
    running service's document writes and this never interleave; a write a crash
    interrupted is finished or undone first (:func:`rag.journal.recover`)."""
    with writer_lock(settings.index_dir):
        # An interrupted document write is finished or undone before the data folder is read.
        recover(settings.index_dir, settings.data_dir)
        docs = list(documents) if documents is not None else load_data_dir(settings.data_dir)
        previous = read_previous(settings.index_dir, encoder, rebuild=rebuild)
        update = update_index(
            previous, docs, encoder, index_type=settings.index_type, progress=progress
        )
        manifest = save_parts(settings.index_dir, update.parts, encoder)
    log.info("index saved: generation %s, %s", manifest.generation, manifest.counts)
    return BuildReport(
        plan=update.plan,
        chunks_embedded=update.chunks_embedded,
        sentences_embedded=update.sentences_embedded,
        manifest=manifest,
    )


def corpus_of(
    snapshot: IndexSnapshot, settings: Settings, previous: Corpus | None = None
) -> Corpus:
    """The searchable corpus (FAISS, BM25, speller) of a loaded index version, updated from
    ``previous`` (the version it replaces) when given (:meth:`Corpus.from_snapshot`)."""
    return Corpus.from_snapshot(
        snapshot,
        stemming=settings.bm25_stemming,
        spelling=settings.spell_correction,
        previous=previous,
    )


def load_corpus(settings: Settings, encoder: Encoder) -> Corpus:
    """The persisted index, checked against the encoder, ready to search."""
    return corpus_of(load_snapshot(settings.index_dir, expectation(encoder)), settings)
