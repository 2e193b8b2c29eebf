"""Metrics on hand-made outcomes, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (
    Outcome,
    TextSpan,
    abstains,
    answer_hit,
    first_gold_rank,
    iou,
    mean_interval,
    ranking_scores,
    recall_curve,
    span_iou,
    summarize,
    summarize_by_category,
)


def outcome(
    qid: str,
    gold: tuple[str, ...],
    ranked: tuple[str, ...],
    *,
    category: str = "factual",
    span: tuple[int, int] | None = (10, 20),
    answer: tuple[int, int] | None = (0, 30),
    support: float = 0.9,
    exact: bool = True,
) -> Outcome:
    answerable = category != "unanswerable"
    return Outcome(
        id=qid,
        category=category,
        answerable=answerable,
        gold_paragraphs=gold,
        gold_spans=(TextSpan("d", *span),) if answerable and span else (),
        ranked=ranked,
        answer=TextSpan("d", *answer) if answer else None,
        support=support,
        n_hits=len(ranked),
        exact=exact,
    )


def test_ranking_metrics_come_from_ranx_and_match_hand_values() -> None:
    # Paragraph ids of three characters, as everywhere in these tests: ranx compiles its
    # numba code for each length of the longest id, about 10 s each in CI's fresh environment.
    scores = ranking_scores(
        {"q1": ["p#a"], "q2": ["p#b"], "q3": ["p#x"]},
        {"q1": ["p#a", "p#b", "p#c"], "q2": ["p#a", "p#b"], "q3": []},
    )
    assert scores["recall@1"] == {"q1": 1.0, "q2": 0.0, "q3": 0.0}
    assert scores["recall@3"] == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    assert scores["mrr@10"] == {"q1": 1.0, "q2": 0.5, "q3": 0.0}
    assert scores["ndcg@10"]["q1"] == pytest.approx(1.0)
    assert scores["ndcg@10"]["q2"] == pytest.approx(1 / math.log2(3))
    # Two gold paragraphs, one found at rank 1: Recall@1 is a half.
    two = ranking_scores({"q": ["p#a", "p#b"]}, {"q": ["p#a", "p#z"]}, ["recall@1"])
    assert two["recall@1"]["q"] == pytest.approx(0.5)


def test_span_metrics() -> None:
    assert iou(TextSpan("d", 0, 10), TextSpan("d", 5, 15)) == pytest.approx(5 / 15)
    assert iou(TextSpan("d", 0, 10), TextSpan("e", 0, 10)) == 0.0
    inside = outcome("q", ("d#1",), ("d#1",), span=(10, 20), answer=(5, 25))
    assert answer_hit(inside, 0.5) and span_iou(inside, 0.5) == pytest.approx(10 / 20)
    partial = outcome("q", ("d#1",), ("d#1",), span=(10, 20), answer=(15, 25))
    assert not answer_hit(partial, 0.5) and span_iou(partial, 0.5) == pytest.approx(5 / 15)
    refused = outcome("q", ("d#1",), ("d#1",), support=0.2)
    assert abstains(refused, 0.5) and not answer_hit(refused, 0.5)
    assert span_iou(refused, 0.5) == 0.0
    assert first_gold_rank(outcome("q", ("d#3",), ("d#1", "d#3"))) == 2


def test_summary_over_a_small_set() -> None:
    items = [
        outcome("a1", ("d#1",), ("d#1", "d#2")),  # R@1, hit
        outcome("a2", ("d#2",), ("d#1", "d#2"), answer=(40, 60)),  # R@3, miss
        outcome("a3", ("d#3",), ("d#3",), support=0.1),  # R@1, refused
        outcome("u1", (), ("d#1",), category="unanswerable", support=0.2),  # refused: right
        outcome("u2", (), ("d#1",), category="unanswerable", support=0.8, exact=False),
    ]
    m = summarize(items, threshold=0.5)
    assert m["recall@1"] == pytest.approx(2 / 3)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["answer_hit"] == pytest.approx(1 / 3)
    assert m["span_iou"] == pytest.approx((10 / 30 + 0 + 0) / 3)
    assert m["quote_exactness"] == pytest.approx(4 / 5)
    assert m["abstention_recall"] == pytest.approx(1 / 2)
    assert m["abstention_precision"] == pytest.approx(1 / 2)  # refused: a3 (wrong), u1
    assert m["false_abstention"] == pytest.approx(1 / 3)
    # A lower threshold refuses nothing.
    low = summarize(items, threshold=0.0)
    assert low["abstention_recall"] == 0.0 and low["abstention_precision"] is None


def test_per_category_and_curve() -> None:
    items = [
        outcome("a1", ("d#1",), ("d#1",)),
        outcome("s1", ("d#2",), ("d#1", "d#2"), category="speaker"),
        outcome("u1", (), ("d#1",), category="unanswerable", support=0.1),
    ]
    summary = summarize_by_category(items, threshold=0.5)
    assert summary.counts == {"factual": 1, "speaker": 1, "unanswerable": 1, "all": 3}
    assert summary.by_category["factual"]["recall@1"] == 1.0
    assert summary.by_category["speaker"]["recall@1"] == 0.0
    assert summary.by_category["unanswerable"]["recall@1"] is None
    assert summary.by_category["unanswerable"]["abstention_recall"] == 1.0
    assert summary.overall["recall@1"] == pytest.approx(0.5)
    assert recall_curve(items, [1, 2]) == {1: pytest.approx(0.5), 2: pytest.approx(1.0)}


def test_mean_interval_brackets_the_mean_and_narrows_with_more_questions() -> None:
    import scipy.stats as st

    small = [1.0] * 53 + [0.0] * 47  # 100 questions, 53 found
    large = small * 10  # the same rate on 1,000
    lo, hi = mean_interval(small)
    assert lo < 0.53 < hi
    wilson = st.binomtest(53, 100).proportion_ci(method="wilson")
    assert abs(lo - wilson.low) < 0.03 and abs(hi - wilson.high) < 0.03
    lo10, hi10 = mean_interval(large)
    assert lo < lo10 < 0.53 < hi10 < hi
    assert (hi10 - lo10) < (hi - lo) / 2.5  # about 1/sqrt(10) as wide
    assert mean_interval(small) == mean_interval(small)  # seeded: the report does not drift
    assert mean_interval([1.0, 1.0]) == (1.0, 1.0)
    with pytest.raises(ValueError):
        mean_interval([])
