"""The benchmark helpers that turn measurements into figures (the benchmarks themselves run
by hand: `python -m bench all`; nothing here times anything)."""

from __future__ import annotations

import numpy as np

from bench.__main__ import main as bench_main
from bench.common import percentiles
from bench.profile import summarise_raw
from bench.scale import exact_top, synthetic


def test_percentiles_are_nearest_rank() -> None:
    stats = percentiles(list(range(1, 101)))
    assert (stats["p50"], stats["p95"], stats["p99"], stats["max"]) == (50, 95, 99, 100)
    assert stats["n"] == 100 and stats["mean"] == 50.5
    assert percentiles([]) == {"n": 0}


def test_exact_top_matches_a_full_sort_across_blocks() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((450_001, 8)).astype(np.float32)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    np.testing.assert_array_equal(exact_top(vectors, queries), expected)


def test_synthetic_vectors_are_unit_length_and_near_the_real_ones() -> None:
    rng = np.random.default_rng(1)
    real = rng.standard_normal((50, 16)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    fake = synthetic(real, 1000)
    np.testing.assert_allclose(np.linalg.norm(fake, axis=1), 1.0, atol=1e-5)
    assert (fake @ real.T).max(axis=1).mean() > 0.6  # each lies near some real vector


def test_py_spy_raw_summary_counts_self_and_total() -> None:
    raw = "main;work;encode 30\nmain;work;search 10\nmain;idle 60\n"
    lines = summarise_raw(raw).splitlines()
    assert lines[1].split() == ["100.0", "0.0", "main"]
    assert "60.0   60.0  idle" in lines[2]
    assert any(line.split() == ["30.0", "30.0", "encode"] for line in lines)


def test_unknown_benchmark_is_refused() -> None:
    assert bench_main(["nope"]) == 2


def test_a_synthetic_typo_is_one_edit_in_one_longer_word() -> None:
    import random

    from bench.spelling import add_typo
    from rag.spell import _WORD

    question = "Which governor of Virginia invested in the Ohio Company?"
    seen = set()
    for seed in range(200):
        typo = add_typo(question, random.Random(seed))
        before, after = _WORD.findall(question), _WORD.findall(typo)
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(changed) == 1, typo  # one word, the rest untouched
        word, wrong = changed[0]
        assert len(word) >= 4 and word.lower() not in {"which", "with"}
        assert wrong[0] == word[0]  # the first letter stays
        assert abs(len(wrong) - len(word)) <= 1
        seen.add(wrong)
    assert len(seen) > 20  # the seed varies the word and the edit
    assert add_typo("Who is he?", random.Random(1)) == "Who is he?"  # no word to change


def test_the_explanation_questions_of_the_answer_window_bench() -> None:
    from bench.answer_window import EXPLANATION

    for q in ("Why did France cede Canada?", "How did the siege end?", "What happened to him?"):
        assert EXPLANATION.match(q), q
    for q in ("How many troops were there?", "Who led the expedition?", "However big?"):
        assert not EXPLANATION.match(q), q


def test_the_window_bench_scores_each_text_once_and_counts_every_read() -> None:
    from bench.rerank_windows import MemoReranker

    class Counting:
        name = "counting"

        def __init__(self) -> None:
            self.scored: list[str] = []

        def score(self, query: str, passages: list[str]) -> np.ndarray:
            self.scored.extend(passages)
            return np.array([float(len(p)) for p in passages], dtype=np.float32)

    inner = Counting()
    memo = MemoReranker(inner)
    first = memo.score("q", ["a", "bb", "a"])
    again = memo.score("q", ["bb", "ccc"])
    np.testing.assert_array_equal(first, [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(again, [2.0, 3.0])
    assert inner.scored == ["a", "bb", "ccc"]  # each text once
    assert memo.asked == 5  # what the rules asked for: their cost
    assert memo.score("other question", ["a"])[0] == 1.0 and inner.scored[-1] == "a"
