"""Fast mode's answer choice, measured: ``python -m bench.fast_answer [--write]``.

Fast mode picks the best-supported sentence over the retrieved passages, a lower-ranked
passage paying ``rag.quote.RANK_PENALTY`` per rank, and quotes its neighbour too when that one
is supported within ``rag.quote.FAST_PAIR_MARGIN``. This answers the *tuning* half of both
question sets (seed article and SQuAD stand-ins; question ids hashing even, the half the
values were chosen on) in fast mode at each combination, abstention off, and reports the
answer hit (the quote holds the gold span) and the mean quote length. With ``--write`` the
table goes into ``eval/report.md`` (section ``fast-answer``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.common import publish, report_command
from eval.squad import DEFAULT_PATH as SQUAD2

PENALTIES = (0.0, 0.02, 0.05, 0.1)
MARGINS = (0.0, 0.1, 0.2, 0.3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_answer", description=__doc__)
    parser.add_argument("--write", action="store_true", help="write eval/report.md's section")
    args = parser.parse_args(argv)

    import rag.quote as quote
    from eval.calibration import in_calibration_part
    from eval.dataset import DEFAULT_QUESTIONS, SQUAD_QUESTIONS, load_question_set
    from eval.runner import index_dir_for, open_eval_corpus
    from rag.engine import Engine, Request
    from rag.settings import Settings

    settings = Settings()
    engine = Engine(settings, use_reranker="off")
    encoder = engine.load_models().encoder
    cache = Path(__file__).resolve().parent.parent / "var" / "cache" / "fast-answer"
    sets = {}
    for path in (DEFAULT_QUESTIONS, SQUAD_QUESTIONS):
        qset = load_question_set(path, squad_path=SQUAD2, data_dir=settings.data_dir)
        corpus = open_eval_corpus(
            list(qset.documents.values()),
            encoder,
            settings,
            index_dir_for(cache / path.stem, encoder),
        )
        tuning = [q for q in qset.questions if q.answerable and in_calibration_part(q.id)]
        sets[path.name] = (corpus, tuning)
    chosen = (quote.RANK_PENALTY, quote.FAST_PAIR_MARGIN)
    rows = []
    try:
        for penalty, margin in itertools.product(PENALTIES, MARGINS):
            # The two module constants are what answer() reads; set for this run only.
            quote.RANK_PENALTY, quote.FAST_PAIR_MARGIN = penalty, margin
            cells = []
            for corpus, questions in sets.values():
                hits, lengths = [], []
                for q in questions:
                    result = engine.ask(
                        Request(q.question, mode="fast", history=q.previous, abstain=False),
                        corpus,
                    )
                    a = result.answer
                    hits.append(
                        a is not None
                        and any(
                            a.doc_id == q.doc_id and a.start <= g.start and g.end <= a.end
                            for g in q.gold_spans
                        )
                    )
                    lengths.append(len(a.text) if a else 0)
                cells += [f"{np.mean(hits):.3f}", f"{np.mean(lengths):.0f}"]
            mark = " (shipped)" if (penalty, margin) == chosen else ""
            rows.append(f"| {penalty}{mark} | {margin} | " + " | ".join(cells) + " |")
    finally:
        quote.RANK_PENALTY, quote.FAST_PAIR_MARGIN = chosen
    n = [len(questions) for _, questions in sets.values()]
    text = "\n".join(
        [
            "## Fast mode's answer choice (tuning halves)",
            "",
            f"Command: `{report_command('bench.fast_answer', argv)}` — run "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}. Answerable questions of the tuning "
            f"halves: {n[0]} (seed article), {n[1]} (stand-ins). Answer hit: the quote holds "
            "the gold span; length: mean characters quoted.",
            "",
            "| rank penalty | pair margin | seed hit | seed length | stand-ins hit | "
            "stand-ins length |",
            "|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    publish(text, "fast-answer", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
