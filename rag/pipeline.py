"""Wiring: load -> chunk -> embed -> index, and question -> retrieve -> quote -> answer.

No scoring logic lives here; each stage is in its own module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.persist import (
    Expectation,
    IndexSnapshot,
    Manifest,
    load_snapshot,
    save_snapshot,
    writer_lock,
)
from index.store import FaissIndex, chunk_key
from rag.abstain import AbstentionModel, signals
from rag.chunk import CHUNKER_VERSION, chunk_document
from rag.embed import Encoder
from rag.errors import (
    DocumentNotFound,
    IndexNotFound,
    InvalidParameter,
    InvalidQuestion,
    RerankerUnavailable,
)
from rag.load import is_valid_unicode, load_data_dir
from rag.query import retrieval_text, validate_history
from rag.question import (
    answer_type_found,
    lacks,
    names_found,
    refers_to_author,
    with_author,
)
from rag.quote import (
    NOTHING_INDEXED,
    Choice,
    WindowScores,
    abstention_reason,
    answer_quote,
    build_passages,
    choice_text,
    choose_answer,
    sentence_evidence,
    sentence_windows,
)
from rag.rerank import Reranker, rerank_hits
from rag.retrieve import Corpus, resolve_filter, retrieve
from rag.settings import AnswerMode, RetrievalMode, Settings
from rag.types import Answer, Chunk, Document, Hit

log = logging.getLogger(__name__)

MAX_TOP_K = 20
ANSWER_MODES: tuple[AnswerMode, ...] = ("fast", "accurate")


@dataclass(frozen=True)
class BuildReport:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    chunks_embedded: int
    sentences_embedded: int
    manifest: Manifest


@dataclass(frozen=True)
class IndexParts:
    """A new index version, in memory, before it is saved."""

    index: FaissIndex
    chunks: tuple[Chunk, ...]
    documents: tuple[Document, ...]
    sentence_vectors: np.ndarray


def expectation(encoder: Encoder) -> Expectation:
    return Expectation(model=encoder.name, dimension=encoder.dim, chunker_version=CHUNKER_VERSION)


def _embed_documents(
    docs: Sequence[Document], encoder: Encoder, progress: bool
) -> tuple[list[Chunk], np.ndarray, np.ndarray]:
    """Chunk and embed documents: (chunks, chunk vectors, sentence vectors)."""
    chunks: list[Chunk] = []
    for doc in tqdm(docs, desc="chunking", unit="doc", disable=not progress or len(docs) < 10):
        chunks.extend(
            chunk_document(doc, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens)
        )
    texts = {d.id: d.text for d in docs}
    sentences = [texts[c.doc_id][s.start : s.end] for c in chunks for s in c.sentences]
    vectors = encoder.encode([c.text for c in chunks] + sentences, progress=progress)
    return chunks, vectors[: len(chunks)], vectors[len(chunks) :]


def update_index(
    previous: IndexSnapshot | None,
    documents: Sequence[Document],
    encoder: Encoder,
    *,
    progress: bool = False,
) -> tuple[IndexParts, dict[str, tuple[str, ...]], int, int]:
    """The index for exactly ``documents``, re-embedding only what changed since ``previous``.

    Returns the new parts, the plan (added/updated/removed/unchanged ids) and how many chunks
    and sentences were embedded. ``previous`` is never modified (a live service may be
    searching it).
    """
    old_sha = {d.id: d.sha256 for d in previous.documents} if previous else {}
    new_ids = {d.id for d in documents}
    unchanged = [d.id for d in documents if old_sha.get(d.id) == d.sha256]
    changed = [d for d in documents if old_sha.get(d.id) != d.sha256]
    plan = {
        "added": tuple(d.id for d in changed if d.id not in old_sha),
        "updated": tuple(d.id for d in changed if d.id in old_sha),
        "removed": tuple(i for i in old_sha if i not in new_ids),
        "unchanged": tuple(unchanged),
    }
    kept: dict[str, list[tuple[Chunk, np.ndarray]]] = {i: [] for i in unchanged}
    index = FaissIndex(encoder.dim)
    if previous is not None:
        index = FaissIndex.from_bytes(previous.index.to_bytes())
        stale = [c for c in previous.chunks if c.doc_id not in kept]
        index.remove(np.array([chunk_key(c.id) for c in stale], dtype=np.int64))
        row = 0
        for chunk in previous.chunks:
            n = len(chunk.sentences)
            if chunk.doc_id in kept:
                kept[chunk.doc_id].append((chunk, previous.sentence_vectors[row : row + n]))
            row += n
    new_chunks, chunk_vecs, sentence_vecs = _embed_documents(changed, encoder, progress)
    if new_chunks:
        index.add(np.array([chunk_key(c.id) for c in new_chunks], dtype=np.int64), chunk_vecs)
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
    return parts, plan, len(new_chunks), len(sentence_vecs)


def save_parts(index_dir: Path, parts: IndexParts, encoder: Encoder) -> Manifest:
    return save_snapshot(
        index_dir,
        model=encoder.name,
        dimension=encoder.dim,
        chunker_version=CHUNKER_VERSION,
        index=parts.index,
        chunks=list(parts.chunks),
        documents=list(parts.documents),
        sentence_vectors=parts.sentence_vectors,
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
) -> IndexSnapshot:
    """Persist an index holding exactly ``documents`` (re-embedding only changed ones) and
    return it. The write is atomic: on any error the previous index stays the live one."""
    parts, _plan, _chunks, _sentences = update_index(previous, documents, encoder)
    return snapshot_of(parts, save_parts(index_dir, parts, encoder))


def upsert_document(
    index_dir: Path, previous: IndexSnapshot | None, document: Document, encoder: Encoder
) -> IndexSnapshot:
    """Add or replace one document, keeping the others (and their vectors) as they are."""
    others = [d for d in (previous.documents if previous else ()) if d.id != document.id]
    return replace_documents(index_dir, previous, [*others, document], encoder)


def remove_document(
    index_dir: Path, previous: IndexSnapshot, doc_id: str, encoder: Encoder
) -> IndexSnapshot:
    """Remove one document; raises DocumentNotFound if it is not in the index."""
    if all(d.id != doc_id for d in previous.documents):
        raise DocumentNotFound(f"no document with id {doc_id!r}")
    others = [d for d in previous.documents if d.id != doc_id]
    return replace_documents(index_dir, previous, others, encoder)


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
    running service's document writes and this never interleave."""
    docs = list(documents) if documents is not None else load_data_dir(settings.data_dir)
    with writer_lock(settings.index_dir):
        previous = read_previous(settings.index_dir, encoder, rebuild=rebuild)
        parts, plan, n_chunks, n_sentences = update_index(
            previous, docs, encoder, progress=progress
        )
        manifest = save_parts(settings.index_dir, parts, encoder)
    log.info("index saved: generation %s, %s", manifest.generation, manifest.counts)
    return BuildReport(
        added=plan["added"],
        updated=plan["updated"],
        removed=plan["removed"],
        unchanged=plan["unchanged"],
        chunks_embedded=n_chunks,
        sentences_embedded=n_sentences,
        manifest=manifest,
    )


def open_corpus(settings: Settings, encoder: Encoder, *, progress: bool = False) -> Corpus:
    """The persisted index, built from ``settings.data_dir`` first if there is none yet."""
    try:
        return load_corpus(settings, encoder)
    except IndexNotFound:
        log.warning("no index at %s: building it from %s", settings.index_dir, settings.data_dir)
        build_index(settings, encoder, progress=progress)
        return load_corpus(settings, encoder)


def load_corpus(settings: Settings, encoder: Encoder) -> Corpus:
    """The persisted index, checked against the encoder, ready to search."""
    snapshot = load_snapshot(settings.index_dir, expectation(encoder))
    return Corpus.from_snapshot(
        snapshot, stemming=settings.bm25_stemming, spelling=settings.spell_correction
    )


def validate_question(question: object, max_chars: int = 1000) -> str:
    if not isinstance(question, str):
        raise InvalidQuestion("question must be a string")
    trimmed = question.strip()
    if not trimmed:
        raise InvalidQuestion("question is empty")
    if not is_valid_unicode(trimmed):
        raise InvalidQuestion("question contains a lone surrogate: send valid Unicode")
    if len(trimmed) > max_chars:
        raise InvalidQuestion(
            f"question is {len(trimmed)} characters long; the limit is {max_chars}"
        )
    return trimmed


def validate_top_k(top_k: object) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise InvalidParameter(f"top_k must be an integer from 1 to {MAX_TOP_K}, not {top_k!r}")
    return top_k


def resolve_mode(
    requested: str | None, settings: Settings, reranker: Reranker | None
) -> AnswerMode:
    """The answer mode to use: the request's, else the setting, else ``accurate`` when a
    reranker is loaded. Asking for ``accurate`` without a reranker raises, saying why."""
    mode = requested or settings.answer_mode or ("accurate" if reranker is not None else "fast")
    if mode not in ANSWER_MODES:
        raise InvalidParameter(f"mode must be one of {', '.join(ANSWER_MODES)}, not {mode!r}")
    if mode == "accurate" and reranker is None:
        hint = (
            "RAG_RERANKER is empty"
            if not settings.reranker
            else f"the reranker {settings.reranker!r} is not loaded (see the server log)"
        )
        raise RerankerUnavailable(f"accurate mode needs a cross-encoder, but {hint}; use 'fast'")
    return mode


def answer(
    corpus: Corpus,
    encoder: Encoder,
    question: str,
    *,
    settings: Settings,
    top_k: int | None = None,
    doc_ids: Iterable[str] | None = None,
    author: str | None = None,
    mode: str | None = None,
    retrieval: RetrievalMode | None = None,
    history: Sequence[str] | None = None,
    reranker: Reranker | None = None,
    abstention: Mapping[str, AbstentionModel] | None = None,
    abstain: bool = True,
) -> Answer:
    """Answer ``question`` with quotes from the corpus, or abstain with a reason.

    ``mode`` is ``fast`` (retrieval and sentence scoring) or ``accurate`` (the first
    ``settings.rerank_candidates`` retrieved passages re-scored by ``reranker``, stopping
    after ``settings.rerank_first`` when one of those scores ``settings.rerank_stop``; the
    reranker also picks the answer sentence); by default ``accurate`` when a reranker is
    given.
    ``retrieval`` picks the first stage (default: the ``retrieval_mode`` setting).
    ``history`` holds the conversation's earlier questions, oldest first; a follow-up that
    depends on them ("And France?") is searched together with the previous question.

    Whether to abstain is decided by the learned model for the mode in ``abstention`` (see
    :mod:`rag.abstain`), else by the support threshold setting. ``abstain=False`` returns the
    best candidate answer whatever its confidence (evaluation uses it to sweep thresholds)."""
    text = validate_question(question, settings.max_question_chars)
    k = validate_top_k(settings.top_k if top_k is None else top_k)
    chosen = resolve_mode(mode, settings, reranker)
    earlier = validate_history(history, settings.max_question_chars)
    allowed = resolve_filter(corpus, doc_ids, author)
    # Misspelled words are corrected toward the corpus's words for searching and reading only;
    # the answer is to the question as asked.
    searched = corpus.speller.correct(text)
    query = retrieval_text(searched, [corpus.speller.correct(e) for e in earlier])
    depth = max(k, settings.rerank_candidates) if chosen == "accurate" else k

    def first_stage(query: str) -> tuple[np.ndarray, np.ndarray, list[Hit]]:
        vec = encoder.encode([query], kind="query")[0]
        terms = corpus.lexical.terms(query)
        found = retrieve(
            corpus,
            vec,
            terms,
            mode=retrieval or settings.retrieval_mode,
            top_k=depth,
            candidates=settings.candidates,
            rrf_k=settings.rrf_k,
            fusion=settings.fusion,
            dense_weight=settings.dense_weight,
            allowed=allowed,
        )
        return vec, terms, found

    # "The author" / "the writer" is the author of the article that answers: the one whose
    # document the question finds (or the only author there is), named as her bio line does.
    author = ""
    if refers_to_author(query):
        authors = corpus.authors(allowed)
        author = authors[0] if len(authors) == 1 else ""
        if not author and len(authors) > 1:
            _vec, _terms, found = first_stage(query)
            author = corpus.documents[found[0].chunk.doc_id].meta.author if found else ""
        query = with_author(query, author)
        searched = with_author(searched, author)
    query_vec, query_terms, hits = first_stage(query)
    windows = None
    if chosen == "accurate" and reranker is not None:
        # A follow-up is read both with its context (the earlier question, then this one)
        # and as asked: with the context alone, the passage answering the earlier question
        # wins; alone, "she" and "it" are unresolved.
        readings = list(dict.fromkeys((query, searched)))
        hits = rerank_hits(
            reranker,
            readings,
            hits,
            keep=k,
            first=settings.rerank_first,
            stop=settings.rerank_stop,
            window_words=settings.rerank_window_words,
            window_margin=settings.rerank_window_margin,
        )
        windows = window_scores(corpus, reranker, readings, hits)
    evidence = [sentence_evidence(corpus, h, query_vec, query_terms) for h in hits]
    choice = choose_answer(corpus, hits, evidence, windows, settings.pair_margin)
    values: dict[str, float] = {}
    document = corpus.documents[hits[choice.passage].chunk.doc_id] if choice else None
    by = [document.meta.author] if document else []
    if choice is not None and document is not None:
        values = signals(
            hits,
            *choice.evidence,
            names=names_found(searched, hits[choice.passage].chunk.text, also=by),
            type_found=answer_type_found(searched, choice_text(corpus, hits, choice)),
            names_in_article=names_found(searched, document.text, also=by),
        )
    # The learned rules saw hybrid retrieval's signals; other first stages use the threshold.
    learned = abstention if (retrieval or settings.retrieval_mode) == "hybrid" else None
    confidence, threshold, reason = decide(choice, values, len(hits), chosen, settings, learned)
    if document is not None and reason is None:
        # What the article lacks, stated: the kind of answer asked for, or who it is about.
        lacking = lacks(searched, values, document.text, also=by)
        if lacking:
            confidence, reason = 0.0, lacking
    if not corpus.chunks:
        reason = NOTHING_INDEXED
    if not abstain and choice is not None:
        reason = None
    return Answer(
        question=text,
        answer=None if reason or choice is None else answer_quote(corpus, hits, choice),
        abstained=reason is not None,
        reason=reason,
        passages=build_passages(corpus, hits, [e.support for e in evidence], settings.max_quotes),
        mode=chosen,
        confidence=confidence,
        threshold=threshold,
        signals=values,
        searched_as=searched if searched != text else None,
    )


def window_scores(
    corpus: Corpus, reranker: Reranker, queries: Sequence[str], hits: Sequence[Hit]
) -> WindowScores | None:
    """Cross-encoder logits of the top passage's sentences and adjacent pairs, averaged over
    the ``queries``."""
    if not hits or not hits[0].chunk.sentences:
        return None
    chunk = hits[0].chunk
    singles, pairs = sentence_windows(corpus.documents[chunk.doc_id].text, chunk)
    scores = np.mean([reranker.score(q, singles + pairs) for q in queries], axis=0)
    scores = scores.astype(np.float32)
    return WindowScores(sentences=scores[: len(singles)], pairs=scores[len(singles) :])


def decide(
    choice: Choice | None,
    values: Mapping[str, float],
    n_hits: int,
    mode: str,
    settings: Settings,
    abstention: Mapping[str, AbstentionModel] | None,
) -> tuple[float, float, str | None]:
    """(confidence, threshold, reason to abstain or None) for the chosen answer, by the
    learned model for ``mode`` when there is one, else by the support threshold setting."""
    model = (abstention or {}).get(mode)
    if choice is None:
        threshold = model.threshold if model is not None else settings.abstain_threshold
        return -math.inf, threshold, abstention_reason(-math.inf, threshold, n_hits)
    if model is None:
        reason = abstention_reason(choice.support, settings.abstain_threshold, n_hits)
        return choice.support, settings.abstain_threshold, reason
    return model.probability(values), model.threshold, model.reason(values)
