"""Answering: question -> retrieve -> rerank -> quote -> answer or abstain.

:func:`answer` runs the stages in order; each stage is a function that returns a named type,
and the scoring itself lives in the stage modules (``retrieve``, ``rerank``, ``quote``,
``question``, ``abstain``). Building the index is :mod:`rag.build`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import get_args

import numpy as np

from core.errors import InvalidParameter, InvalidQuestion, RerankerUnavailable, UnknownFilter
from core.text import is_valid_unicode
from core.types import Answer, Document, Hit, Passage
from rag import speakers
from rag.abstain import AbstentionModel, signals
from rag.embed import Encoder, MemoEncoder
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
    SEMANTIC_WEIGHT,
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
from rag.rerank import MemoReranker, Reranker, rerank_hits
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
    scope: speakers.Scope | None = None,
) -> Reading:
    """Rerank the candidates (accurate mode) and weigh every sentence of each passage. With a
    speaker's ``scope``, only that speaker's sentences can be chosen (the others are given no
    support and no window score)."""
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
    if scope is not None:
        masks = [scope.eligible(corpus.position_of(h.chunk), len(h.chunk.sentences)) for h in hits]
        evidence = [
            Evidence(np.where(m, e.cosine, -1.0), np.where(m, e.lexical, 0.0))
            for e, m in zip(evidence, masks, strict=True)
        ]
        if windows is not None:
            m = masks[0]
            windows = WindowScores(
                np.where(m, windows.sentences, UNELIGIBLE).astype(np.float32),
                np.where(m[:-1] & m[1:], windows.pairs, UNELIGIBLE).astype(np.float32),
            )
    return Reading(hits=hits, evidence=evidence, windows=windows)


#: The window score given to a sentence outside the speaker's scope: never chosen.
UNELIGIBLE = -1e4


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
    speaker: str | None = None,
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

    Who said what (:mod:`rag.speakers`): ``speaker`` (a filter: a name, surname, title or "the
    author"; unknown names raise) limits the answer to that speaker's statements; so does a
    question that asks for a known speaker's words ("what did Merz say about ...", "according
    to Merz, ..."). When that speaker said nothing on the question, the service says so and
    offers the speaker's statements and what the articles say on it. A question about what
    someone thinks or wants prefers their own statements and falls back to the articles' other
    sentences; one about the words of someone the articles never quote is refused.

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
    # A speaker's question encodes the question and reads the same passages with and without
    # the scope: each once.
    encoder = MemoEncoder(encoder)
    if reranker is not None:
        reranker = MemoReranker(reranker)

    def run(scope: speakers.Scope | None = None, rivals: Sequence[Hit] = ()) -> Answer:
        return answer_query(
            corpus,
            encoder,
            q,
            settings,
            reranker,
            abstention,
            abstain=abstain,
            scope=scope,
            rivals=rivals,
        )

    if not corpus.chunks:
        return run()  # nothing indexed: the reason says so, whoever is asked about
    known = speakers.registry(corpus)
    docs: Iterable[str] = corpus.documents  # every document, unless filtered below
    if q.allowed is not None:
        docs = {corpus.chunks[int(i)].doc_id for i in q.allowed}
        known = tuple(e for e in known if docs & set(e.documents))
    if speaker is not None:
        entry = speakers.resolve(speaker, known) if speaker.strip() else None
        if entry is None:
            raise UnknownFilter(
                f"no speaker matching {speaker!r} in the articles searched (GET /speakers lists "
                "them); leave the filter out to search every speaker"
            )
        return said_or_refuse(run, speakers.scope(corpus, entry, q.allowed), abstain, None)
    asked = speakers.parse_question(q.searched)
    if asked is None:
        return run()
    entry = speakers.resolve(asked.who, known)
    if entry is None:
        if (
            asked.asked == "attitude"
            or speakers.is_author_name(asked.who)
            or not speakers.looks_like_speaker(asked.who)
        ):
            return run()
        result = run()
        texts = (corpus.documents[d].text for d in docs)
        if speakers.mentioned(asked.who, texts):
            # Named in the articles but never attributed a statement (attribution misses some
            # reporting forms: "Voltaire famously dismissed Canada as ..."): answered as any
            # question when the answer names them (in it, or in the sentence before it: "He
            # argued ...") and is not someone else's statement.
            said = result.answer
            if (
                said is not None
                and said.voice != "reported"
                and speakers.mentioned(asked.who, [answer_context(corpus, result)])
            ):
                return result
        # Nobody by that name is quoted: what the articles say on it, but no answer.
        return refuse(result, asked.who, abstain)
    scope = speakers.scope(corpus, entry, q.allowed)

    def on_topic(own: Answer, others: Answer) -> float:
        return topic_gap(corpus, encoder, reranker, q.mode, scope, asked, own, others)

    if entry.kind == "author":
        # Everything in an article is "according to" its author: no narrowing then.
        return run() if asked.asked == "according" else preferring(run, scope, on_topic)
    if asked.asked == "attitude":
        return preferring(run, scope, on_topic)
    return said_or_refuse(run, scope, abstain, on_topic)


def topic_gap(
    corpus: Corpus,
    encoder: Encoder,
    reranker: Reranker | None,
    mode: AnswerMode,
    scope: speakers.Scope,
    asked: speakers.SpeakerQuestion,
    own: Answer,
    others: Answer,
) -> float:
    """How far the speaker's best statement, read against the question without the speaker's
    name ("What did someone say about the Paris declaration?"), scores below the best sentence
    of the passages the question finds without the scope (0: it is the best; cross-encoder
    logits in accurate mode, support in fast mode). The statements speak to the question when
    the gap is within the mode's margin (:data:`rag.speakers.TOPIC_MARGIN`, :func:`speaks_to`).
    A statement is read with the sentence before it too, so that "Only Ukraine has signalled
    such willingness" counts as being about compromise. +inf when any statement answers (no
    topic, or theirs is in the best passage); -inf when the speaker has none to offer."""
    topic = speakers.topic_question(asked)
    if topic is None:
        return math.inf  # "What did Merz say?": any statement of theirs answers
    if (
        own.passages
        and others.passages
        and own.passages[0].hit.chunk == others.passages[0].hit.chunk
    ):
        return math.inf  # their statement is in the passage that best answers the question
    accurate = mode == "accurate" and reranker is not None
    theirs: list[tuple[int, int, bool]] = []  # (chunk position, sentence, with the one before)
    for p in own.passages:
        position = corpus.position_of(p.hit.chunk)
        mask = scope.eligible(position, len(p.hit.chunk.sentences))
        for n in np.flatnonzero(mask).tolist():
            theirs.append((position, n, False))
            if accurate and n > 0:
                theirs.append((position, n, True))
    positions = dict.fromkeys(
        corpus.position_of(p.hit.chunk) for p in (*own.passages, *others.passages)
    )
    everyone = [
        (pos, i, False) for pos in positions for i in range(len(corpus.chunks[pos].sentences))
    ]
    if not theirs or not everyone:
        return -math.inf
    windows = theirs + everyone
    if accurate:
        assert reranker is not None
        texts = []
        for pos, n, before in windows:
            chunk = corpus.chunks[pos]
            first = chunk.sentences[n - 1 if before else n]
            texts.append(corpus.documents[chunk.doc_id].text[first.start : chunk.sentences[n].end])
        scores = np.asarray(reranker.score(topic, texts), dtype=np.float32)
    else:
        query = encoder.encode([topic], kind="query")[0]
        terms = corpus.lexical.terms(topic)
        rows = [corpus.sentence_rows(pos).start + i for pos, i, _ in windows]
        cosine = corpus.sentence_vectors[rows] @ query
        lexical = np.array([corpus.lexical.overlap(terms, corpus.sentence_terms[r]) for r in rows])
        scores = SEMANTIC_WEIGHT * cosine + (1 - SEMANTIC_WEIGHT) * lexical
    best_theirs = float(np.max(scores[: len(theirs)]))
    best = float(np.max(scores))
    return best_theirs - best


def speaks_to(own: Answer, gap: float) -> bool:
    """Whether a topic gap (:func:`topic_gap`) is within the margin of ``own``'s mode."""
    return gap >= speakers.TOPIC_MARGIN["accurate" if own.mode == "accurate" else "fast"]


def with_gap(result: Answer, gap: float) -> Answer:
    """``result`` with the topic gap among its signals (``topic_gap``; infinite gaps are left
    out: no comparison was made), where ``rag eval topic-margin`` reads it."""
    if not math.isfinite(gap):
        return result
    return replace(result, signals={**result.signals, "topic_gap": gap})


def rival_margins(top: Hit, rivals: Sequence[Hit], values: Mapping[str, float]) -> dict[str, float]:
    """The margin signals of ``top`` (the scoped reading's top passage) against the best other
    passage among ``rivals``, where both were scored (same query, same scales)."""
    out: dict[str, float] = {}
    others = [h for h in rivals if h.chunk.id != top.chunk.id]
    dense = [h.dense_score for h in others if h.dense_score is not None]
    if top.dense_score is not None and dense and "dense_margin" in values:
        out["dense_margin"] = top.dense_score - max(dense)
    reranked = [h.rerank_score for h in others if h.rerank_score is not None]
    if top.rerank_score is not None and reranked and "rerank_margin" in values:
        out["rerank_margin"] = top.rerank_score - max(reranked)
    return out


#: How far the speaker's answer is from speaking to the question: (own, unscoped) -> the
#: topic gap (:func:`topic_gap`).
OnTopic = Callable[[Answer, Answer], float]


def preferring(run: Callable[..., Answer], scope: speakers.Scope, on_topic: OnTopic) -> Answer:
    """The answer among the speaker's statements when they answer, else among all."""
    others = run()
    own = run(scope, [p.hit for p in others.passages])
    if own.abstained:
        return others
    gap = on_topic(own, others)
    if speaks_to(own, gap):
        return with_gap(replace(own, speaker=scope.speaker.name), gap)
    return with_gap(others, gap)


def said_or_refuse(
    run: Callable[..., Answer], scope: speakers.Scope, abstain: bool, on_topic: OnTopic | None
) -> Answer:
    """The answer among the speaker's statements; when none answers, the reason says so, and
    the passages offer the speaker's statements first, then what the articles say on it.

    Whether one answers is decided against the whole corpus's passages (the ``rivals``): a
    statement that is the speaker's best but ranks well below what others said on the
    question is no answer to it."""
    others = run()
    own = run(scope, [p.hit for p in others.passages])
    if not abstain:
        return replace(own, speaker=scope.speaker.name)
    gap = on_topic(own, others) if on_topic is not None and not own.abstained else math.inf
    if not own.abstained and speaks_to(own, gap):
        return with_gap(replace(own, speaker=scope.speaker.name), gap)
    k = max(len(others.passages), 1)
    mine = own.passages[: max(1, k // 2)]
    seen = {p.hit.chunk.id for p in mine}
    rest = tuple(p for p in others.passages if p.hit.chunk.id not in seen)
    passages: tuple[Passage, ...] = (*mine, *rest)[: max(k, len(mine))]
    own = with_gap(own, gap)
    return replace(
        own,
        reason=speakers.not_reported(scope.speaker.name),
        speaker=scope.speaker.name,
        answer=None,
        abstained=True,
        confidence=min(own.confidence, 0.0),
        passages=passages,
    )


def answer_context(corpus: Corpus, result: Answer) -> str:
    """The answer's text with the sentence before it in its paragraph (where "He" is named)."""
    quote = result.answer
    if quote is None:
        return ""
    text = corpus.documents[quote.doc_id].text
    start = quote.start
    for p in result.passages:
        chunk = p.hit.chunk
        if chunk.doc_id == quote.doc_id and chunk.start <= quote.start < chunk.end:
            before = [s.start for s in chunk.sentences if s.end <= quote.start]
            start = before[-1] if before else quote.start
            break
    return text[start : quote.end]


def refuse(result: Answer, who: str, abstain: bool) -> Answer:
    """``result`` turned into an abstention saying the articles don't report ``who`` (kept
    as is when not abstaining)."""
    if not abstain:
        return result
    return replace(
        result,
        answer=None,
        abstained=True,
        reason=speakers.not_reported(who),
        speaker=who,
        confidence=min(result.confidence, 0.0),
    )


def answer_query(
    corpus: Corpus,
    encoder: Encoder,
    q: Query,
    settings: Settings,
    reranker: Reranker | None,
    abstention: Mapping[str, AbstentionModel] | None,
    *,
    abstain: bool = True,
    scope: speakers.Scope | None = None,
    rivals: Sequence[Hit] = (),
) -> Answer:
    """The answer to a prepared query, among ``scope``'s sentences when given. ``rivals`` are
    the passages the same query finds without the scope: the margins the abstention decision
    weighs are then taken against the best of them (with the scope alone, a speaker's only
    passage would have no competitor and look certain)."""
    if scope is not None:
        q = replace(q, allowed=scope.chunks)
    reading = read(corpus, q, first_stage(corpus, encoder, q, settings), settings, reranker, scope)
    choice = choose_answer(
        corpus, reading.hits, reading.evidence, reading.windows, settings.tuning.pair_margin
    )
    document = corpus.documents[reading.hits[choice.passage].chunk.doc_id] if choice else None
    values: dict[str, float] = {}
    if choice is not None and document is not None:
        values = answer_signals(corpus, q, reading, choice, document)
        values.update(rival_margins(reading.hits[0], rivals, values))
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
    eligible = None
    if scope is not None:
        eligible = [
            scope.eligible(corpus.position_of(h.chunk), len(h.chunk.sentences))
            for h in reading.hits
        ]
    return Answer(
        question=q.text,
        answer=None if reason or choice is None else answer_quote(corpus, reading.hits, choice),
        abstained=reason is not None,
        reason=reason,
        passages=build_passages(
            corpus,
            reading.hits,
            [e.support for e in reading.evidence],
            settings.max_quotes,
            eligible,
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
