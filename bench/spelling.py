"""What spelling correction gains on questions with typos, and costs on clean ones.

``python -m bench.spelling [--per-source 200] [--seed 11] [--write]`` takes retrieval_bench
questions outside the reported sample (as ``bench.rerank_stop`` does), and gives each a copy
with one typo: one word of four letters or more, not a stopword, gets one edit of a kind people
make (a letter dropped, doubled or struck on a neighbouring key, or two letters swapped), chosen
by a seeded generator from the question id. It then ranks the clean and the typo questions
with spelling correction off and on (``RAG_SPELL_CORRECTION``), in the fast (hybrid) and the
accurate mode, on the 7.7k-paragraph corpus, and reports Recall@1 / Recall@5 per source and
the share of questions the speller changed. With ``--write`` the table goes into
``eval/report.md`` (section ``spelling``).

The typos are synthetic, so the gain is an estimate of what a reader typing in a hurry sees,
not of any real query log; the cost on clean questions is measured exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.common import RETRIEVAL_BENCH, load_models, publish, report_command
from bench.rerank_stop import tuning_questions
from eval.bench import (
    BenchQuery,
    bench_scores,
    embed_cached,
    load_bench,
    paragraph_corpus,
    rank_queries,
)
from eval.runner import REPO
from rag.settings import Settings
from rag.spell import Speller

MODES = ("hybrid", "accurate")
_ROWS = "qwertyuiop", "asdfghjkl", "zxcvbnm"
_STOP = frozenset(
    re.findall(
        r"\w+",
        "what which when where whose does did that this with from have were there their they "
        "about into after before than then them these those been being would could should",
    )
)
_WORD = re.compile(r"[A-Za-z]{4,}")


def _neighbours(letter: str) -> str:
    """Letters next to ``letter`` on a QWERTY keyboard (same row)."""
    for row in _ROWS:
        i = row.find(letter.lower())
        if i >= 0:
            return row[max(0, i - 1) : i] + row[i + 1 : i + 2]
    return "e"


def add_typo(text: str, rng: random.Random) -> str:
    """``text`` with one typo in one word of four letters or more (unchanged if none)."""
    words = [m for m in _WORD.finditer(text) if m.group().lower() not in _STOP]
    if not words:
        return text
    m = rng.choice(words)
    w = m.group()
    i = rng.randrange(1, len(w))  # the first letter is rarely wrong
    kind = rng.choice(("drop", "double", "neighbour", "swap"))
    if kind == "drop":
        typo = w[:i] + w[i + 1 :]
    elif kind == "double":
        typo = w[:i] + w[i] + w[i:]
    elif kind == "neighbour":
        typo = w[:i] + rng.choice(_neighbours(w[i])) + w[i + 1 :]
    else:
        i = min(i, len(w) - 2)
        typo = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    return text[: m.start()] + typo + text[m.end() :]


def with_typos(queries: Sequence[BenchQuery], seed: int) -> list[BenchQuery]:
    return [
        dataclasses.replace(q, text=add_typo(q.text, random.Random(f"{seed}:{q.id}")))
        for q in queries
    ]


def markdown(
    results: Mapping[str, Mapping[str, dict[str, dict[str, float]]]],
    changed: Mapping[str, float],
    command: str,
    n: int,
) -> str:
    sources = [s for s in next(iter(results.values())) if s != "all"] + ["all"]
    lines = [
        "## Spelling correction: questions with typos",
        "",
        f"Command: `{command}` — run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {n} retrieval_bench "
        "questions outside the reported sample, each also with one synthetic typo; 7.7k "
        "paragraphs. Cells: Recall@1 / Recall@5.",
        "",
        "| questions | speller | mode | " + " | ".join(sources) + " | changed |",
        "|---|---|---|" + "---:|" * (len(sources) + 1),
    ]
    for key, scores in results.items():
        questions, speller = key.split("/")
        for mode in MODES:
            cells = " | ".join(
                f"{scores[s][mode]['recall@1']:.3f} / {scores[s][mode]['recall@5']:.3f}"
                for s in sources
            )
            share = f"{changed[questions]:.3f}" if speller == "on" else "–"
            lines.append(f"| {questions} | {speller} | {mode} | {cells} | {share} |")
    lines += [
        "",
        "*changed*: share of the questions in which the speller replaced a word.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spelling", description=__doc__)
    parser.add_argument("--per-source", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--bench", type=Path, default=RETRIEVAL_BENCH, help="retrieval_bench")
    parser.add_argument("--write", action="store_true", help="update eval/report.md")
    args = parser.parse_args(argv)
    if not (args.bench / "queries.jsonl").is_file():
        print(f"skipped: no {args.bench} (../shared/benchmarks absent)")
        return 0
    settings = Settings()
    encoder, reranker = load_models(settings)
    data = load_bench(args.bench)
    clean = tuning_questions(data.queries, args.per_source, args.seed)
    typos = with_typos(clean, args.seed)
    ids = list(data.texts)
    texts = [data.texts[i] for i in ids]
    vectors = embed_cached(encoder, texts, REPO / "var" / "cache", progress=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = paragraph_corpus(ids, texts, vectors, model=encoder.name, spelling=False)
    started = time.perf_counter()
    speller = Speller().build(texts)  # as Corpus.from_snapshot builds it, timed
    build_s = time.perf_counter() - started
    words = len(speller.vocabulary)
    on = dataclasses.replace(off, speller=speller)
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    changed: dict[str, float] = {}
    for name, questions in (("clean", clean), ("one typo", typos)):
        changed[name] = sum(speller.correct(q.text) != q.text for q in questions) / len(questions)
        for label, corpus in (("off", off), ("on", on)):
            print(f"ranking {name}, speller {label} ...", file=sys.stderr)
            runs = rank_queries(corpus, encoder, questions, MODES, settings, reranker=reranker)
            results[f"{name}/{label}"] = bench_scores(questions, runs)
    text = markdown(results, changed, report_command("bench.spelling", argv), len(clean))
    text += (
        f"\n\nBuilding the speller over the {len(texts):,} paragraphs ({words:,} distinct words) "
        f"took {build_s:.2f} s; it is built with the corpus, at start-up and after a change."
    )
    publish(text, "spelling", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
