"""One sentence or two? The accurate mode's pair margin, measured.

``python -m bench.answer_window [--questions 600] [--seed 3] [--write]`` takes SQuAD 2.0 dev
answerable questions about articles *other* than the own question set's, with every dev
article indexed (many paragraphs on one topic, as in an op-ed), and answers each in accurate
mode at several pair margins (``RAG_TUNING__PAIR_MARGIN``): the cross-encoder reads the top
passage's sentences and adjacent pairs, and a pair is quoted when it scores that many logits
above the best single sentence. For each margin it reports the answer hit (the quote holds
the gold answer), the share of two-sentence quotes and the mean quote length, for all
questions and for those that ask for an explanation rather than a fact ("why", "how" but
not "how many", "what happened"). The cross-encoder's scores are computed once and reused
across margins. With ``--write`` the table goes into ``eval/report.md`` (section
``answer-window``).

SQuAD's gold answers sit inside one sentence, so this measures what a pair costs in length
and what it finds when the best single sentence is not the one holding the answer; it cannot
show the gain on answers that need two sentences.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from bench.common import load_models, publish, report_command
from bench.rerank_stop import squad2_outside_own
from eval.squad import DEFAULT_PATH as SQUAD2
from rag.settings import Settings

MARGINS: tuple[float | None, ...] = (None, 2.0, 1.0, 0.5, 0.0)
EXPLANATION = re.compile(
    r"^\s*(?:why|how(?!\s+(?:many|much|long|old|far|often|large|big|tall|high|few|wide|deep|"
    r"fast|early|late)\b)|what\s+(?:happened|became|led|caused)|explain|describe)\b",
    re.IGNORECASE,
)


class MemoReranker:
    """The cross-encoder, each (question, passage) pair scored once across the margins."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str], float] = {}

    @property
    def name(self) -> str:
        return str(self.inner.name)  # type: ignore[attr-defined]

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        missing = [p for p in dict.fromkeys(passages) if (query, p) not in self.cache]
        if missing:
            scores = self.inner.score(query, missing)  # type: ignore[attr-defined]
            self.cache.update({(query, p): float(s) for p, s in zip(missing, scores, strict=True)})
        return np.array([self.cache[(query, p)] for p in passages], dtype=np.float32)


@dataclass(frozen=True)
class Row:
    explanation: bool
    hit: bool
    pair: bool
    length: int


def run(n: int, seed: int) -> dict[str, list[Row]]:
    from rag.pipeline import answer

    settings = Settings()
    encoder, loaded = load_models(settings)
    reranker = MemoReranker(loaded)
    questions, corpus = squad2_outside_own(SQUAD2, n, seed, encoder, settings)
    results: dict[str, list[Row]] = {}
    for margin in MARGINS:
        local = settings.tuned(pair_margin=1e9 if margin is None else margin)
        rows = []
        for q in questions:
            a = answer(
                corpus,
                encoder,
                q.question,
                settings=local,
                mode="accurate",
                reranker=reranker,
                abstain=False,
            )
            quote = a.answer
            hit = (
                quote is not None
                and quote.doc_id == q.doc_id
                and any(quote.start <= g.start and g.end <= quote.end for g in q.answers)
            )
            chunk = a.passages[0].hit.chunk if a.passages else None
            sentences = (
                0
                if quote is None or chunk is None
                else sum(quote.start <= s.start and s.end <= quote.end for s in chunk.sentences)
            )
            rows.append(
                Row(
                    explanation=bool(EXPLANATION.match(q.question)),
                    hit=hit,
                    pair=sentences >= 2,
                    length=0 if quote is None else len(quote.text),
                )
            )
        results["never" if margin is None else f"{margin:g}"] = rows
        print(f"margin {margin}: done", file=sys.stderr)
    return results


def markdown(results: dict[str, list[Row]], command: str, n: int) -> str:
    lines = [
        "## Answer window: one sentence or two (accurate mode)",
        "",
        f"Command: `{command}` — run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {n} SQuAD 2.0 dev "
        "answerable questions about articles other than the own set's, every dev article "
        "indexed. *Pair margin*: logits a pair of adjacent sentences must score above the best "
        "single sentence to be quoted (`RAG_TUNING__PAIR_MARGIN`). *Explanations*: questions "
        "asking why, how (not how many/much/long...), what happened/became/led/caused.",
        "",
        "| pair margin | answer hit | quotes of 2+ sentences | mean characters | "
        "explanations: hit | explanations: characters |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        ex = [r for r in rows if r.explanation]
        lines.append(
            f"| {name} | {np.mean([r.hit for r in rows]):.3f} | "
            f"{np.mean([r.pair for r in rows]):.3f} | {np.mean([r.length for r in rows]):.0f} | "
            f"{np.mean([r.hit for r in ex]) if ex else float('nan'):.3f} (n={len(ex)}) | "
            f"{np.mean([r.length for r in ex]) if ex else float('nan'):.0f} |"
        )
    lines += [
        "",
        "SQuAD's gold answers lie inside one sentence: a pair can only help when the best "
        "single sentence is not the one holding the answer, and it always costs length. "
        "Two-sentence quotes also include answers widened over a pronoun or a reported-speech "
        "continuation (`rag/quote.py`), at every margin.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.answer_window", description=__doc__)
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update eval/report.md")
    args = parser.parse_args(argv)
    if not SQUAD2.is_file():
        print(f"skipped: no {SQUAD2} (../shared/benchmarks absent)")
        return 0
    results = run(args.questions, args.seed)
    text = markdown(results, report_command("bench.answer_window", argv), args.questions)
    publish(text, "answer-window", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
