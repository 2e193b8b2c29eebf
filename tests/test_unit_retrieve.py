"""Retrieval without a model (rag.retrieve, rag.rerank.rerank_hits): filters, the two fusions,
the three first-stage modes over an index of made-up articles built with the fake encoder
(tests/fakes.py), and the cross-encoder's reordering with scores given by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from fakes import FakeEncoder, articles, build_corpus

from core.errors import InvalidDocumentId, InvalidParameter, UnknownFilter
from core.types import Hit
from rag.rerank import rerank_hits
from rag.retrieve import Corpus, resolve_filter, retrieve, rrf, score_fusion

QUESTION = "How many boats did the harbour master count?"
ENCODER = FakeEncoder()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("retrieve"), articles(), ENCODER)[1]


def positions_of(corpus: Corpus, *doc_ids: str) -> list[int]:
    return [i for i, c in enumerate(corpus.chunks) if c.doc_id in doc_ids]


def search(corpus: Corpus, question: str, **options: object) -> list[Hit]:
    return retrieve(
        corpus,
        ENCODER.vector(question),
        corpus.lexical.terms(question),
        **options,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------ filters


def test_no_filter_allows_everything(corpus: Corpus) -> None:
    assert resolve_filter(corpus) is None
    assert resolve_filter(corpus, None, None) is None


def test_a_doc_ids_filter_allows_exactly_their_chunks(corpus: Corpus) -> None:
    allowed = resolve_filter(corpus, ["school-meals", "rail-budget", "school-meals"])
    assert allowed is not None and allowed.dtype == np.int64
    assert allowed.tolist() == positions_of(corpus, "school-meals", "rail-budget")


def test_an_author_filter_is_case_and_accent_insensitive_and_matches_part_of_the_name(
    corpus: Corpus,
) -> None:
    lopez = positions_of(corpus, "harbour-towns", "school-meals")  # "María López"
    for author in ("María López", "maria lopez", "LÓPEZ", "  lopez "):
        allowed = resolve_filter(corpus, author=author)
        assert allowed is not None and allowed.tolist() == lopez, author
    both = resolve_filter(corpus, ["harbour-towns", "rail-budget"], "lopez")
    assert both is not None and both.tolist() == positions_of(corpus, "harbour-towns")
    none = resolve_filter(corpus, ["rail-budget"], "lopez")  # each known, nothing in common
    assert none is not None and none.tolist() == []


@pytest.mark.parametrize(
    ("doc_ids", "author", "error", "message"),
    [
        ([], None, UnknownFilter, "doc_ids is empty"),
        (["harbour-towns", "nope", "gone"], None, UnknownFilter, "'nope', 'gone'"),
        (["not a slug"], None, InvalidDocumentId, "invalid document id"),
        (None, "   ", UnknownFilter, "author is empty"),
        (None, "Nobody Known", UnknownFilter, "Nobody Known"),
    ],
)
def test_unknown_or_empty_filters_are_refused_saying_which(
    corpus: Corpus,
    doc_ids: list[str] | None,
    author: str | None,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        resolve_filter(corpus, doc_ids, author)


# ------------------------------------------------------------------------------ fusion


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert fused == {
        1: pytest.approx(1 / 61 + 1 / 62),
        2: pytest.approx(1 / 62),
        3: pytest.approx(1 / 63 + 1 / 61),
    }
    assert fused[1] > fused[3] > fused[2]
    assert rrf([[7]], k=1) == {7: 0.5}
    assert rrf([]) == {}


def test_score_fusion_edge_cases() -> None:
    # One candidate (or all equal) normalises to 1; an empty list adds nothing.
    assert score_fusion([[(4, 3.0)], []], [0.4, 0.6]) == {4: pytest.approx(0.4)}
    assert score_fusion([[(1, 2.0), (2, 2.0)]], [1.0]) == {1: 1.0, 2: 1.0}
    fused = score_fusion([[(1, 0.9), (2, 0.5), (3, 0.1)], [(3, 12.0), (1, 2.0)]], [0.4, 0.6])
    assert fused == {
        1: pytest.approx(0.4 * 1.0 + 0.6 * 0.0),
        2: pytest.approx(0.4 * 0.5),
        3: pytest.approx(0.4 * 0.0 + 0.6 * 1.0),
    }
    with pytest.raises(ValueError):
        score_fusion([[(1, 1.0)]], [0.5, 0.5])  # one weight per list


# ------------------------------------------------------------------------------ retrieve


def test_dense_mode_ranks_by_cosine_to_the_question(corpus: Corpus) -> None:
    hits = search(corpus, QUESTION, mode="dense", top_k=len(corpus.chunks))
    assert len(hits) == len(corpus.chunks)  # every chunk has a cosine
    query = ENCODER.vector(QUESTION)
    for rank, hit in enumerate(hits, start=1):
        assert hit.dense_rank == rank and hit.score == hit.dense_score
        assert hit.dense_score == pytest.approx(float(ENCODER.vector(hit.chunk.text) @ query))
        assert hit.bm25_score is None and hit.bm25_rank is None
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert (hits[0].chunk.doc_id, hits[0].chunk.paragraph) == ("harbour-towns", 2)


def test_bm25_mode_returns_only_chunks_holding_a_question_word(corpus: Corpus) -> None:
    hits = search(corpus, QUESTION, mode="bm25", top_k=len(corpus.chunks))
    terms = corpus.lexical.terms(QUESTION)
    expected = corpus.lexical.scores(terms)
    assert [h.chunk for h in hits] == [
        corpus.chunks[i] for i in np.argsort(-expected, kind="stable") if expected[i] > 0
    ]
    for rank, hit in enumerate(hits, start=1):
        assert hit.bm25_rank == rank and hit.score == hit.bm25_score
        assert hit.score > 0
        assert hit.dense_score is None
    assert hits[0].chunk.paragraph == 2 and hits[0].chunk.doc_id == "harbour-towns"


@pytest.mark.parametrize("fusion", ["score", "rrf"])
def test_hybrid_mode_fuses_the_dense_and_bm25_lists(corpus: Corpus, fusion: str) -> None:
    n = len(corpus.chunks)
    dense = search(corpus, QUESTION, mode="dense", top_k=n)
    bm25 = search(corpus, QUESTION, mode="bm25", top_k=n)
    pos = corpus.position_of
    if fusion == "score":
        expected = score_fusion(
            [[(pos(h.chunk), h.score) for h in dense], [(pos(h.chunk), h.score) for h in bm25]],
            [0.3, 0.7],
        )
    else:
        expected = rrf([[pos(h.chunk) for h in dense], [pos(h.chunk) for h in bm25]], k=10)
    hits = search(
        corpus, QUESTION, mode="hybrid", top_k=n, fusion=fusion, dense_weight=0.3, rrf_k=10
    )
    assert {pos(h.chunk): h.score for h in hits} == pytest.approx(expected)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    by_chunk = {h.chunk.id: h for h in dense}
    for hit in hits:  # each list's own evidence is kept
        assert hit.dense_rank == by_chunk[hit.chunk.id].dense_rank
    assert {h.chunk.id for h in hits if h.bm25_rank is not None} == {h.chunk.id for h in bm25}
    top3 = search(corpus, QUESTION, mode="hybrid", top_k=3, fusion=fusion)
    assert len(top3) == 3 and top3[0].chunk.paragraph == 2


def test_the_allowed_chunks_bound_every_mode(corpus: Corpus) -> None:
    allowed = resolve_filter(corpus, ["rail-budget"])
    for mode in ("dense", "bm25", "hybrid"):
        hits = search(corpus, "the eastern line trains", mode=mode, top_k=10, allowed=allowed)
        assert hits and {h.chunk.doc_id for h in hits} == {"rail-budget"}, mode
        assert search(corpus, QUESTION, mode=mode, allowed=np.zeros(0, dtype=np.int64)) == []


@pytest.mark.parametrize(("option", "value"), [("mode", "sparse"), ("fusion", "max")])
def test_an_unknown_mode_or_fusion_is_refused(corpus: Corpus, option: str, value: str) -> None:
    with pytest.raises(InvalidParameter, match=value):
        search(corpus, QUESTION, **{option: value})


# ------------------------------------------------------------------------------ reranking


class Scripted:
    """A reranker that gives each passage a set score and counts what it reads."""

    name = "scripted"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.read: list[str] = []

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.read.extend(passages)
        return np.array([self.scores[p] for p in passages], dtype=np.float32)


def test_rerank_orders_by_the_cross_encoder_and_keeps_ties_in_retrieval_order(
    corpus: Corpus,
) -> None:
    hits = [Hit(c, 1.0 - i / 10) for i, c in enumerate(corpus.chunks[:4])]
    texts = [h.chunk.text for h in hits]
    reranker = Scripted(dict(zip(texts, [0.5, 3.0, 0.5, -2.0], strict=True)))
    ranked = rerank_hits(reranker, "q", hits, keep=3)
    assert [h.chunk for h in ranked] == [hits[1].chunk, hits[0].chunk, hits[2].chunk]
    assert [h.rerank_score for h in ranked] == [3.0, 0.5, 0.5]
    assert [h.score for h in ranked] == [hits[1].score, hits[0].score, hits[2].score]
    assert rerank_hits(reranker, "q", [], keep=3) == []


def test_rerank_stops_early_when_a_first_passage_scores_the_stop(corpus: Corpus) -> None:
    hits = [Hit(c, 1.0) for c in corpus.chunks[:5]]
    texts = [h.chunk.text for h in hits]
    clear = Scripted(dict(zip(texts, [0.0, 2.5, 9.0, 9.0, 9.0], strict=True)))
    ranked = rerank_hits(clear, "q", hits, keep=5, first=2, stop=2.0)
    assert clear.read == texts[:2]  # 2.5 >= 2.0: the other three are never read
    assert [h.chunk for h in ranked] == [hits[i].chunk for i in (1, 0, 2, 3, 4)]
    assert [h.rerank_score for h in ranked] == [2.5, 0.0, None, None, None]
    unclear = Scripted(dict(zip(texts, [0.0, 1.5, 9.0, -1.0, 3.0], strict=True)))
    ranked = rerank_hits(unclear, "q", hits, keep=3, first=2, stop=2.0)
    assert unclear.read == texts  # 1.5 < 2.0: all are read
    assert [h.rerank_score for h in ranked] == [9.0, 3.0, 1.5]


def test_rerank_averages_the_scores_of_several_readings(corpus: Corpus) -> None:
    hits = [Hit(c, 1.0) for c in corpus.chunks[:2]]
    a, b = (h.chunk.text for h in hits)

    class ByQuery:
        name = "by-query"

        def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
            table = {"one": {a: 4.0, b: 0.0}, "two": {a: -2.0, b: 1.0}}[query]
            return np.array([table[p] for p in passages], dtype=np.float32)

    ranked = rerank_hits(ByQuery(), ["one", "two"], hits, keep=2)
    assert [(h.chunk.text, h.rerank_score) for h in ranked] == [(a, 1.0), (b, 0.5)]
