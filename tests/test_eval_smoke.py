"""One real run of the question set through the pipeline (hybrid mode), and the benchmark
helpers on small real data.

The run reuses the session's SQuAD index (tests/conftest.py), which holds the stand-in article
Islamism among others, and asks the set's questions about Islamism plus its off-topic ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.bench import (
    BenchQuery,
    bench_checks,
    bench_intervals,
    bench_markdown,
    choose_paragraphs,
    paragraph_corpus,
    rank_queries,
    read_qrels,
    sample_queries,
)
from eval.dataset import SQUAD_QUESTIONS, load_question_set
from eval.metrics import summarize
from eval.runner import eval_engine, run_questions
from eval.squad import DEFAULT_PATH as SQUAD2_PATH


def test_the_question_set_runs_and_every_quote_is_exact(squad_corpus, encoder) -> None:
    from rag.settings import Settings

    qset = load_question_set(SQUAD_QUESTIONS, squad_path=SQUAD2_PATH)
    questions = [q for q in qset.questions if q.doc_id in (None, "squad2-Islamism")]
    assert len(questions) > 40
    settings = Settings()
    engine = eval_engine(settings, ["hybrid"], encoder=encoder, abstention={})
    outcomes = run_questions(questions, squad_corpus, engine, ["hybrid"])["hybrid"]
    metrics = summarize(outcomes, settings.abstain_threshold)
    assert metrics["quote_exactness"] == 1.0
    assert metrics["recall@5"] is not None and metrics["recall@5"] > 0.5  # a smoke floor only


def test_bench_helpers_on_a_tiny_corpus(tmp_path: Path, encoder) -> None:
    from rag.settings import Settings

    # Paragraph ids of three characters, as in tests/test_eval_check.py: ranx compiles its
    # numba code for each length of the longest id (a numpy "<U3"), about 10 s each in CI's
    # fresh environment, so the tests on made-up ids share one length.
    texts = {
        "p#1": "The Treaty of Paris ended the war in 1763.",
        "p#2": "Packet switching splits messages into small blocks called packets.",
        "p#3": "Sourdough bread rises because of wild yeast.",
    }
    queries = [
        BenchQuery("q1", "When did the war end?", "wiki", ("p#1",)),
        BenchQuery("q2", "What are packets?", "wiki", ("p#2",)),
        BenchQuery("q3", "Why does bread rise?", "reddit", ("p#3",)),
    ]
    assert [q.id for q in sample_queries(queries, 1, seed=1)] in (["q3", "q1"], ["q3", "q2"])
    assert sample_queries(queries, 1, seed=1) == sample_queries(queries, 1, seed=1)
    subset = choose_paragraphs(list(texts), queries[:1], 2, seed=3)
    assert "p#1" in subset and len(subset) == 2
    ids = list(texts)
    vectors = encoder.encode([texts[i] for i in ids])
    corpus = paragraph_corpus(ids, [texts[i] for i in ids], vectors, model=encoder.name)
    runs = rank_queries(corpus, encoder, queries, ["bm25", "dense", "hybrid"], Settings())
    assert all(runs[m]["q2"][0] == "p#2" for m in runs)
    spans = bench_intervals(queries, runs)
    for source in ("all", "wiki", "reddit"):
        for mode in runs:
            lo, hi = spans[source][mode]["recall@1"]
            assert 0.0 <= lo <= hi <= 1.0
    assert spans["reddit"]["hybrid"]["recall@1"] == (1.0, 1.0)  # one question, found
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tp1\t1\nq1\tp9\t1\nq2\tp2\t0\n")
    assert read_qrels(qrels) == {"q1": ["p1", "p9"]}


def test_bench_checks() -> None:
    scores = {
        "all": {},
        "shreddit": {
            "bm25": {"recall@5": 0.55},
            "dense": {"recall@5": 0.40},
            "hybrid": {"recall@5": 0.60},
        },
    }
    checks = {c["check"]: c["met"] for c in bench_checks(scores)}
    assert checks == {
        "shreddit: hybrid R@5 > bm25 and dense": True,
        "shreddit: hybrid R@5 >= 0.62": False,
    }
    assert all(c["interval"] is None for c in bench_checks(scores))
    # A run of the accurate mode alone (`rag eval bench ... --mode accurate`) still checks
    # its targets; the hybrid comparisons need the other modes.
    alone = {"all": {}, "shreddit": {"accurate": {"recall@1": 0.53, "recall@5": 0.63}}}
    assert {c["check"]: c["met"] for c in bench_checks(alone)} == {
        "shreddit: accurate recall@1 >= 0.55": False,
        "shreddit: accurate recall@5 >= 0.66": False,
    }
    intervals = {"shreddit": {"hybrid": {"recall@5": (0.556, 0.641)}}}
    checks_with = bench_checks(scores, intervals)
    assert [c["interval"] for c in checks_with] == [(0.556, 0.641)] * 2
    meta = {
        "paragraphs": 3,
        "distractors": False,
        "paragraph_subset": None,
        "questions": 500,
        "per_source": {"shreddit": 500},
        "seed": 13,
        "model": "m",
        "rrf_k": 60,
        "candidates": 50,
    }
    text = bench_markdown({"meta": meta, "scores": {}, "checks": checks_with}, "cmd", "today")
    assert "| shreddit: hybrid R@5 >= 0.62 | 0.600 | 0.556–0.641 | **no** |" in text


def test_a_real_benchmark_sample_loads() -> None:
    root = SQUAD2_PATH.parent.parent / "retrieval_bench"
    if not (root / "queries.jsonl").is_file():
        pytest.skip(f"external benchmark not found at {root} (../shared missing)")
    with open(root / "queries.jsonl", encoding="utf-8") as fh:
        first = json.loads(fh.readline())
    assert {"_id", "text", "source", "gold_pid"} <= set(first)
    qrels = read_qrels(root / "qrels" / "test.tsv")
    assert len(qrels) > 30_000 and qrels[first["_id"]] == [first["gold_pid"]]


def test_the_benchmarks_run_end_to_end_on_small_real_samples(tmp_path: Path, encoder) -> None:
    """`rag eval bench` and `rag eval squad2` on a few real questions each, in process: the
    same paths as the reported runs (eval/report.md), at smoke-test size: 4 questions of each
    source among 30 paragraphs, and 10 + 10 questions on one article (seed 31 picks Normans,
    39 paragraphs; its ids are as long as the benchmark's, so ranx compiles once for both)."""
    from eval.bench import run_bench, run_squad2, squad2_markdown
    from rag.settings import Settings

    root = SQUAD2_PATH.parent.parent / "retrieval_bench"
    if not (root / "corpus.jsonl").is_file() or not SQUAD2_PATH.is_file():
        pytest.skip("external benchmarks not found (../shared missing)")
    engine = eval_engine(Settings(), ["bm25", "hybrid"], encoder=encoder, abstention={})
    bench = run_bench(
        root,
        engine,
        ["bm25", "hybrid"],
        tmp_path,
        sample=4,
        paragraphs=30,
        distractors=False,
        seed=13,
    )
    assert bench["meta"]["questions"] >= 8 and bench["meta"]["paragraphs"] == 30
    assert set(bench["meta"]["per_source"].values()) == {4}
    for source, modes in bench["scores"].items():
        assert 0.0 <= modes["hybrid"]["recall@5"] <= 1.0, source
    assert bench["scores"]["all"]["hybrid"]["recall@5"] > 0.3  # a smoke floor only
    assert "| mode |" in bench_markdown(bench, "cmd", "today")

    squad = run_squad2(SQUAD2_PATH, engine, ["hybrid"], tmp_path, sample=10, articles=1, seed=31)
    assert squad["meta"]["articles"] == ["squad2-Normans"]
    assert squad["meta"]["answerable"] == 10 and squad["meta"]["unanswerable"] == 10
    assert squad["modes"]["hybrid"]["quote_exactness"] == 1.0
    assert "| hybrid |" in squad2_markdown(squad, "cmd", "today")
