"""Should the cross-encoder re-read the two best passages in windows? The window rule, measured.

``python -m bench.rerank_windows [--per-source 300] [--squad2 300] [--write]`` takes the same
kinds of questions as ``bench.rerank_stop``, none of them in a reported sample: retrieval_bench
questions outside ``rag eval bench``'s sample (one corpus on every topic), and SQuAD 2.0 dev
answerable questions about articles other than the own set's, every dev article indexed (many
paragraphs on one topic, as in an op-ed).

Each question's fused candidates are re-ranked by :func:`rag.rerank.rerank_hits` itself, with
the service's early stop, once per rule: no windows, then windows of 40, 60 or 100 words read
when the two best passages score within 0.5 to 4 logits of each other (and always). The
cross-encoder's scores are memoised, so every text is scored once however many rules read it.
The table gives Recall@1 / Recall@5 per source and the windows read per question. With
``--write`` it goes into ``eval/report.md`` (section ``rerank-windows``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.common import load_models, publish, report_command
from bench.rerank_stop import (
    bench_candidates,
    recall_by_source,
    rule_row,
    squad2_candidates,
    squad2_key,
    tuning_parser,
)
from core.types import Hit
from eval.dataset import paragraph_id
from eval.squad import DEFAULT_PATH as SQUAD2
from rag.embed import Encoder
from rag.rerank import Reranker, rerank_hits
from rag.settings import Settings

#: (window words, margin); words 0 is the rule without windows, margin inf reads them always.
RULES: tuple[tuple[int, float], ...] = (
    (0, 0.0),
    *((words, margin) for words in (40, 60, 100) for margin in (0.5, 1.0, 2.0, 4.0, math.inf)),
)


class MemoReranker:
    """A reranker that scores each (question, text) once, and counts what each rule asks."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self.memo: dict[tuple[str, str], float] = {}
        self.asked = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.asked += len(passages)
        missing = [p for p in dict.fromkeys(passages) if (query, p) not in self.memo]
        if missing:
            for p, x in zip(missing, self.inner.score(query, missing), strict=True):
                self.memo[(query, p)] = float(x)
        return np.array([self.memo[(query, p)] for p in passages], dtype=np.float32)


@dataclass(frozen=True)
class Case:
    source: str
    question: str
    relevant: frozenset[str]
    hits: tuple[Hit, ...]
    key: Callable[[Hit], str]


def bench_cases(root: Path, per_source: int, seed: int, encoder: Encoder) -> list[Case]:
    questions, hits = bench_candidates(root, per_source, seed, encoder)
    return [
        Case(q.source, q.text, frozenset(q.relevant), tuple(h), lambda x: x.chunk.doc_id)
        for q, h in zip(questions, hits, strict=True)
    ]


def squad2_cases(path: Path, n: int, seed: int, encoder: Encoder) -> list[Case]:
    questions, hits = squad2_candidates(path, n, seed, encoder)
    return [
        Case(
            "squad2",
            q.question,
            frozenset({paragraph_id(q.doc_id, q.paragraph)}),
            tuple(h),
            squad2_key,
        )
        for q, h in zip(questions, hits, strict=True)
    ]


def run_rules(cases: Sequence[Case], reranker: Reranker) -> list[dict[str, object]]:
    settings = Settings()
    memo = MemoReranker(reranker)
    sources = sorted({c.source for c in cases})
    found: dict[tuple[int, float], dict[str, list[tuple[bool, bool]]]] = {
        rule: {s: [] for s in sources} for rule in RULES
    }
    windows_read = {rule: 0 for rule in RULES}
    for case in tqdm(cases, desc="re-ranking", unit="q"):
        plain_reads = 0
        for words, margin in RULES:
            before = memo.asked
            ranked = rerank_hits(
                memo,
                case.question,
                case.hits,
                keep=len(case.hits),
                first=settings.tuning.rerank_first,
                stop=settings.tuning.rerank_stop,
                window_words=words,
                window_margin=margin,
            )
            asked = memo.asked - before
            if words == 0:
                plain_reads = asked
            windows_read[(words, margin)] += asked - plain_reads
            ids = [case.key(h) for h in ranked]
            found[(words, margin)][case.source].append(
                (ids[0] in case.relevant, bool(case.relevant & set(ids[:5])))
            )
    rows = []
    for rule in RULES:
        words, margin = rule
        cells, r1 = recall_by_source(found[rule])
        when = "always" if math.isinf(margin) else f"within {margin:g}"
        rows.append(
            {
                "rule": "no windows" if words == 0 else f"{words} words, {when}",
                "sources": cells,
                "r1": r1,
                "windows": windows_read[rule] / len(cases),
            }
        )
    return rows


def markdown(rows: Sequence[dict[str, object]], command: str, n: int) -> str:
    first = rows[0]["sources"]
    assert isinstance(first, dict)
    sources = list(first)
    lines = [
        "## Reranker windows (accurate mode)",
        "",
        f"Command: `{command}`. {n} questions, of the same two kinds as *Reranker early stop*: "
        "retrieval_bench questions outside the reported sample, and SQuAD 2.0 answerable "
        "questions on articles other than the own set's (*squad2*). Each rule re-ranks the "
        "fused candidates through `rag.rerank.rerank_hits` with the service's early stop; a "
        "window rule also reads the two best passages in overlapping windows when their logits "
        "lie within the margin, and each then scores the mean of its whole and best-window "
        "logits. Cells are Recall@1 / Recall@5; *windows* is windows read per question.",
        "",
        "| rule | " + " | ".join(sources) + " | R@1 mean | windows |",
        "|---|" + "---:|" * (len(sources) + 2),
    ]
    lines += [rule_row(r, sources) + f" {r['windows']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = tuning_parser("python -m bench.rerank_windows", __doc__, 300).parse_args(argv)
    if not (args.bench / "queries.jsonl").is_file() or not SQUAD2.is_file():
        print(f"skipped: no {args.bench} or {SQUAD2} (../shared/benchmarks absent)")
        return 0
    encoder, reranker = load_models(Settings())
    cases = bench_cases(args.bench, args.per_source, args.seed, encoder)
    cases += squad2_cases(SQUAD2, args.squad2, args.seed, encoder)
    text = markdown(
        run_rules(cases, reranker), report_command("bench.rerank_windows", argv), len(cases)
    )
    publish(text, "rerank-windows", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
