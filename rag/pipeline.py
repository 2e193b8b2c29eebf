"""Answering: question -> retrieve -> rerank -> quote -> answer or abstain.

:func:`answer` runs the stages in order; each stage is a function that returns a named type,
and the scoring itself lives in the stage modules (``retrieve``, ``rerank``, ``quote``,
``question``, ``abstain``). Building the index is :mod:`rag.build`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import get_args

import numpy as np

from core.errors import InvalidParameter, InvalidQuestion, RerankerUnavailable
from core.text import is_valid_unicode
from core.types import Answer, Document, Hit
from rag.abstain import AbstentionModel, signals
from rag.embed import Encoder
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
    Evidence,
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
from rag.settings import MAX_TOP_K, AnswerMode, RetrievalMode, Settings

log = logging.getLogger(__name__)

#: The answer modes, from the one ``Literal`` (rag.settings.AnswerMode).
ANSWER_MODES: tuple[AnswerMode, ...] = get_args(AnswerMode)


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


@dataclass(frozen=True)
class Query:
    """A question made ready to search: validated, its options resolved."""

    text: str  # the question as asked (trimmed)
    searched: str  # as searched: misspellings corrected, "the author" named
    query: str  # the retrieval text: ``searched`` after the conversation's earlier question
    top_k: int
    mode: AnswerMode
    retrieval: RetrievalMode
    depth: int  # candidates the first stage returns (more in accurate mode, to rerank)
    allowed: np.ndarray | None  # the chunks the filters allow, or None for all


@dataclass(frozen=True)
class FirstStage:
    """The first stage's result: the query vector and terms, and the fused hits."""

    vector: np.ndarray
    terms: np.ndarray
    hits: list[Hit]


@dataclass(frozen=True)
class Reading:
    """The passages as finally ranked, with each one's sentence evidence, and (accurate
    mode) the cross-encoder's scores of the top passage's sentence windows."""

    hits: list[Hit]
    evidence: list[Evidence]
    windows: WindowScores | None


@dataclass(frozen=True)
class Decision:
    """Whether to answer: the confidence, the threshold it was held to, and the reason to
    abstain (None: answer)."""

    confidence: float
    threshold: float
    reason: str | None


def prepare(
    corpus: Corpus,
    question: str,
    settings: Settings,
    *,
    top_k: int | None = None,
    doc_ids: Iterable[str] | None = None,
    author: str | None = None,
    mode: str | None = None,
    retrieval: RetrievalMode | None = None,
    history: Sequence[str] | None = None,
    reranker: Reranker | None = None,
) -> Query:
    """Validate the question and its options (raising on bad input) and correct its
    misspellings toward the corpus's words; the answer is to the question as asked."""
    text = validate_question(question, settings.max_question_chars)
    k = validate_top_k(settings.top_k if top_k is None else top_k)
    chosen = resolve_mode(mode, settings, reranker)
    earlier = validate_history(history, settings.max_question_chars)
    allowed = resolve_filter(corpus, doc_ids, author)
    searched = corpus.speller.correct(text)
    query = retrieval_text(searched, [corpus.speller.correct(e) for e in earlier])
    depth = max(k, settings.rerank_candidates) if chosen == "accurate" else k
    return Query(
        text=text,
        searched=searched,
        query=query,
        top_k=k,
        mode=chosen,
        retrieval=retrieval or settings.retrieval_mode,
        depth=depth,
        allowed=allowed,
    )


def first_stage(
    corpus: Corpus, encoder: Encoder, q: Query, settings: Settings, text: str | None = None
) -> FirstStage:
    """Dense and BM25 retrieval of ``text`` (default: the query's), fused."""
    text = q.query if text is None else text
    vector = encoder.encode([text], kind="query")[0]
    terms = corpus.lexical.terms(text)
    hits = retrieve(
        corpus,
        vector,
        terms,
        mode=q.retrieval,
        top_k=q.depth,
        candidates=settings.tuning.candidates,
        rrf_k=settings.tuning.rrf_k,
        fusion=settings.fusion,
        dense_weight=settings.tuning.dense_weight,
        allowed=q.allowed,
    )
    return FirstStage(vector, terms, hits)


def name_the_author(corpus: Corpus, encoder: Encoder, q: Query, settings: Settings) -> Query:
    """ "The author" / "the writer" becomes the author of the article that answers: the one
    whose document the question finds (or the only author there is), named as her bio line
    does. A question not about the author is returned unchanged."""
    if not refers_to_author(q.query):
        return q
    authors = corpus.authors(q.allowed)
    name = authors[0] if len(authors) == 1 else ""
    if not name and len(authors) > 1:
        found = first_stage(corpus, encoder, q, settings).hits
        name = corpus.documents[found[0].chunk.doc_id].meta.author if found else ""
    return replace(q, query=with_author(q.query, name), searched=with_author(q.searched, name))


def read(
    corpus: Corpus,
    q: Query,
    found: FirstStage,
    settings: Settings,
    reranker: Reranker | None,
) -> Reading:
    """Rerank the candidates (accurate mode) and weigh every sentence of each passage."""
    hits = found.hits
    windows = None
    if q.mode == "accurate" and reranker is not None:
        # A follow-up is read both with its context (the earlier question, then this one)
        # and as asked: with the context alone, the passage answering the earlier question
        # wins; alone, "she" and "it" are unresolved.
        readings = list(dict.fromkeys((q.query, q.searched)))
        hits = rerank_hits(
            reranker,
            readings,
            hits,
            keep=q.top_k,
            first=settings.tuning.rerank_first,
            stop=settings.tuning.rerank_stop,
            window_words=settings.tuning.rerank_window_words,
            window_margin=settings.tuning.rerank_window_margin,
        )
        windows = window_scores(corpus, reranker, readings, hits)
    evidence = [sentence_evidence(corpus, h, found.vector, found.terms) for h in hits]
    return Reading(hits=hits, evidence=evidence, windows=windows)


def answer_signals(
    corpus: Corpus, q: Query, reading: Reading, choice: Choice, document: Document
) -> dict[str, float]:
    """The signals the abstention decision weighs for the chosen answer."""
    by = [document.meta.author]
    return signals(
        reading.hits,
        choice,
        names=names_found(q.searched, reading.hits[choice.passage].chunk.text, also=by),
        type_found=answer_type_found(q.searched, choice_text(corpus, reading.hits, choice)),
        names_in_article=names_found(q.searched, document.text, also=by),
    )


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
    after ``tuning.rerank_first`` when one of those scores ``tuning.rerank_stop``; the
    reranker also picks the answer sentence); by default ``accurate`` when a reranker is
    given.
    ``retrieval`` picks the first stage (default: the ``retrieval_mode`` setting).
    ``history`` holds the conversation's earlier questions, oldest first; a follow-up that
    depends on them ("And France?") is searched together with the previous question.

    Whether to abstain is decided by the learned model for the mode in ``abstention`` (see
    :mod:`rag.abstain`), else by the support threshold setting. ``abstain=False`` returns the
    best candidate answer whatever its confidence (evaluation uses it to sweep thresholds).

    Services should not wire this by hand: :class:`rag.engine.Engine` loads the models from
    settings and calls it."""
    q = prepare(
        corpus,
        question,
        settings,
        top_k=top_k,
        doc_ids=doc_ids,
        author=author,
        mode=mode,
        retrieval=retrieval,
        history=history,
        reranker=reranker,
    )
    q = name_the_author(corpus, encoder, q, settings)
    reading = read(corpus, q, first_stage(corpus, encoder, q, settings), settings, reranker)
    choice = choose_answer(
        corpus, reading.hits, reading.evidence, reading.windows, settings.tuning.pair_margin
    )
    document = corpus.documents[reading.hits[choice.passage].chunk.doc_id] if choice else None
    values: dict[str, float] = {}
    if choice is not None and document is not None:
        values = answer_signals(corpus, q, reading, choice, document)
    # The learned rules saw hybrid retrieval's signals; other first stages use the threshold.
    learned = abstention if q.retrieval == "hybrid" else None
    decision = decide(choice, values, len(reading.hits), q.mode, settings, learned)
    if document is not None and decision.reason is None:
        # What the article lacks, stated: the kind of answer asked for, or who it is about.
        lacking = lacks(q.searched, values, document.text, also=[document.meta.author])
        if lacking:
            decision = Decision(0.0, decision.threshold, lacking)
    reason = decision.reason
    if not corpus.chunks:
        reason = NOTHING_INDEXED
    if not abstain and choice is not None:
        reason = None
    return Answer(
        question=q.text,
        answer=None if reason or choice is None else answer_quote(corpus, reading.hits, choice),
        abstained=reason is not None,
        reason=reason,
        passages=build_passages(
            corpus, reading.hits, [e.support for e in reading.evidence], settings.max_quotes
        ),
        mode=q.mode,
        confidence=decision.confidence,
        threshold=decision.threshold,
        signals=values,
        searched_as=q.searched if q.searched != q.text else None,
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
) -> Decision:
    """Whether to answer with the chosen answer, by the learned model for ``mode`` when
    there is one, else by the support threshold setting."""
    model = (abstention or {}).get(mode)
    if choice is None:
        threshold = model.threshold if model is not None else settings.abstain_threshold
        return Decision(-math.inf, threshold, abstention_reason(-math.inf, threshold, n_hits))
    if model is None:
        reason = abstention_reason(choice.support, settings.abstain_threshold, n_hits)
        return Decision(choice.support, settings.abstain_threshold, reason)
    return Decision(model.probability(values), model.threshold, model.reason(values))
