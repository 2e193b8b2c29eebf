"""The accurate mode's reranker path: quality and latency per configuration.

``python -m bench.rerank [--repeat 1] [--write]`` answers the own question set's answerable
questions in accurate mode under each configuration tried (how many fused candidates are
re-scored, the token limit of a (question, passage) pair, the batch size) and reports, per
configuration, paragraph Recall@1, answer hit (abstention off) and the latency of
``answer()`` in process (p50/p95; the question encoder on one thread, the cross-encoder on
the workers each configuration names). Latencies are measured in the same run as the
fast-mode baseline and reported as a ratio to it too, because this machine's speed drifts.
With ``--write`` the table goes into ``eval/report.md`` (section ``rerank``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.common import publish, report_command
from eval.dataset import SQUAD_QUESTIONS, EvalQuestion, load_question_set, paragraph_id
from eval.runner import REPO, index_dir_for, one_thread, open_eval_corpus
from eval.squad import DEFAULT_PATH
from rag.embed import Encoder
from rag.rerank import CrossEncoderReranker
from rag.retrieve import Corpus
from rag.settings import Settings

SQUAD2 = DEFAULT_PATH


@dataclass(frozen=True)
class Config:
    candidates: int
    max_length: int = 512
    batch_size: int = 1
    workers: int = 2
    first: int | None = None  # read this many first, and the rest only below ``stop``
    stop: float | None = None

    @property
    def label(self) -> str:
        read = "all" if self.stop is None else f"first {self.first}, stop at {self.stop:g}"
        return (
            f"{self.candidates} candidates ({read}), {self.max_length} tokens, "
            f"batch {self.batch_size}, {self.workers} worker{'s' if self.workers > 1 else ''}"
        )


CONFIGS = (
    Config(10, workers=1),
    Config(10),
    Config(10, batch_size=16),
    Config(10, first=4, stop=2.0, workers=1),
    Config(10, first=4, stop=2.0),  # the default
    Config(10, first=4, stop=2.0, max_length=256),
    Config(10, first=2, stop=2.0),
    Config(10, first=4, stop=4.0),
    Config(5),
)


@dataclass(frozen=True)
class Row:
    label: str
    r1: float
    hit: float
    p50_ms: float
    p95_ms: float


def measure(
    corpus: Corpus,
    encoder: Encoder,
    settings: Settings,
    questions: Sequence[EvalQuestion],
    label: str,
    mode: str,
    reranker: CrossEncoderReranker | None,
    repeat: int,
) -> Row:
    from rag.pipeline import answer

    firsts, hits, times = [], [], []
    for _ in range(repeat):
        for q in questions:
            t0 = time.perf_counter()
            result = answer(
                corpus,
                encoder,
                q.question,
                settings=settings,
                history=list(q.previous) or None,
                mode=mode,
                reranker=reranker,
                abstain=False,
            )
            times.append(time.perf_counter() - t0)
            top = result.passages[0].hit.chunk if result.passages else None
            firsts.append(
                top is not None and paragraph_id(top.doc_id, top.paragraph) in q.paragraph_ids()
            )
            a = result.answer
            hits.append(
                a is not None
                and a.doc_id == q.doc_id
                and any(a.start <= g.start and g.end <= a.end for g in q.gold_spans)
            )
    ms = np.array(times) * 1000
    return Row(
        label,
        float(np.mean(firsts)),
        float(np.mean(hits)),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 95)),
    )


def markdown(rows: Sequence[Row], command: str, n: int) -> str:
    base = rows[0].p50_ms
    lines = [
        "## Reranker path (accurate mode)",
        "",
        f"Command: `{command}`. {n} answerable questions of the own set, in process "
        "(the question encoder on one thread, the cross-encoder on the workers each row "
        "names), abstention off; latency is the whole `answer()` call. The first row is fast "
        "mode, measured in the same run; the ratio column divides each p50 by its p50.",
        "",
        "| configuration | R@1 | answer hit | p50 ms | p95 ms | p50 / fast |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.r1:.3f} | {r.hit:.3f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | "
            f"{r.p50_ms / base:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rerank", description=__doc__)
    parser.add_argument("--repeat", type=int, default=1, help="passes over the questions")
    parser.add_argument("--write", action="store_true", help="update eval/report.md")
    args = parser.parse_args(argv)
    if not SQUAD2.is_file():
        print(f"skipped: no {SQUAD2} (../shared/benchmarks absent)")
        return 0
    from rag.engine import Engine

    settings = Settings()
    encoder = Engine(settings, use_reranker="off").load_models().encoder
    qset = load_question_set(SQUAD_QUESTIONS, squad_path=SQUAD2)
    questions = [q for q in qset.questions if q.answerable]
    corpus = open_eval_corpus(
        list(qset.documents.values()),
        encoder,
        settings,
        index_dir_for(REPO / "var" / "cache", encoder),
    )
    rows = []
    with one_thread():
        measure(corpus, encoder, settings, questions[:5], "warm-up", "fast", None, 1)
        rows.append(
            measure(corpus, encoder, settings, questions, "fast", "fast", None, args.repeat)
        )
        for config in CONFIGS:
            reranker = CrossEncoderReranker(
                settings.reranker,
                max_length=config.max_length,
                batch_size=config.batch_size,
                workers=config.workers,
            ).load()
            tuned = settings.model_copy(update={"rerank_candidates": config.candidates}).tuned(
                rerank_first=config.first or config.candidates, rerank_stop=config.stop
            )
            rows.append(
                measure(
                    corpus,
                    encoder,
                    tuned,
                    questions,
                    config.label,
                    "accurate",
                    reranker,
                    args.repeat,
                )
            )
            print(rows[-1], flush=True)
    text = markdown(rows, report_command("bench.rerank", argv), len(questions))
    publish(text, "rerank", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
