"""Where an accurate answer's time goes, on the seed article: ``python -m bench.accurate``.

``python -m bench.accurate [--n 60] [--write]`` asks the seed article's questions
(eval/questions.jsonl) in process, through the façade, in accurate mode, and times each
answer and each of its cross-encoder calls: the passage stage (the fused candidates, read
four at a time until one scores 2 logits, rag.rerank.rerank_hits) and the window stage (the
top passage's sentences and adjacent pairs, rag.pipeline.window_scores). It does so twice:

- with the cross-encoder as the service runs it (int8 ONNX, onnxruntime's kernels for this
  CPU: VNNI where the CPU has it);
- with exact integer arithmetic (``exact_reranker``, as the evaluation gate runs it: int8
  products done as float32). On a CPU without AVX-512 VNNI the int8 kernels gain little over
  float32 (issue 16 measured 12.1 against 14.8 ms for the query encoder on AVX2), so this
  row is the nearest a VNNI machine gets to showing an AVX2-only machine's cost;
- with ``--student FOLDER`` (repeatable), also with each distilled cross-encoder (``rag eval
  distill-reranker``: float32, fewer layers), served as ``RAG_RERANKER=FOLDER`` serves it.

With ``--write`` the table goes into docs/benchmarks.md (between its ``bench.accurate``
markers); the CPU's model and flags are printed beside it.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    DOCS,
    SQUAD2,
    cpu_summary,
    drop_stale_index,
    load_average,
    percentiles,
    report_command,
    save,
)


def measure(exact: bool, n: int, reranker_location: str | None = None) -> dict[str, Any]:
    from eval.dataset import DEFAULT_QUESTIONS, load_question_set
    from rag.engine import Engine, Request
    from rag.settings import Settings

    settings = Settings(index_dir=Settings().index_dir.parent / "bench-accurate")
    drop_stale_index(settings.index_dir)  # scratch: rebuilt when another version built it
    if reranker_location is not None:
        settings = settings.model_copy(update={"reranker": reranker_location})
    engine = Engine(settings, use_reranker="required", exact_reranker=exact).load()
    reranker: Any = engine.reranker
    qset = load_question_set(DEFAULT_QUESTIONS, squad_path=SQUAD2, data_dir=settings.data_dir)
    questions = [q.question for q in qset.questions][:n]
    calls: list[tuple[int, int, float]] = []
    score = reranker.score

    def timed(query: str, passages: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        out = score(query, passages)
        words = sum(len(query.split()) + len(p.split()) for p in passages)
        calls.append((len(passages), words, (time.perf_counter() - start) * 1000))
        return out

    reranker.score = timed
    try:
        for q in questions[:5]:  # warm-up
            engine.ask(Request(q, mode="accurate"))
        totals, passage, window, pairs, words = [], [], [], [], []
        for q in questions:
            calls.clear()
            start = time.perf_counter()
            engine.ask(Request(q, mode="accurate"))
            totals.append((time.perf_counter() - start) * 1000)
            # The last call is the window stage; the ones before it read passages.
            window.append(calls[-1][2] if len(calls) > 1 else 0.0)
            passage.append(sum(c[2] for c in calls[:-1]) if len(calls) > 1 else calls[0][2])
            pairs.append(sum(c[0] for c in calls))
            words.append(sum(c[1] for c in calls))
    finally:
        reranker.score = score
    return {
        "answer_ms": percentiles(totals),
        "passage_stage_ms": float(np.mean(passage)),
        "window_stage_ms": float(np.mean(window)),
        "pairs_per_answer": float(np.mean(pairs)),
        "words_per_answer": float(np.mean(words)),
        "questions": len(questions),
    }


def table(results: dict[str, Any], command: str) -> str:
    lines = [
        "## Accurate mode on the seed article, stage by stage",
        "",
        f"Command: `{command}`. CPU: {results['cpu']}; load average before "
        f"{results['load_before']}. In process, through the façade, one question at a time.",
        "",
        "| cross-encoder arithmetic | answer p50 | p95 | passage stage | window stage | "
        "pairs read | words read |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [("int8 (as served)", results["native"]), ("exact (as evaluated)", results["exact"])]
    rows += [(f"student: {r['label']}", r) for r in results.get("students", [])]
    for label, r in rows:
        lines.append(
            f"| {label} | {r['answer_ms']['p50']:.0f} ms | {r['answer_ms']['p95']:.0f} ms | "
            f"{r['passage_stage_ms']:.0f} ms | {r['window_stage_ms']:.0f} ms | "
            f"{r['pairs_per_answer']:.1f} | {r['words_per_answer']:.0f} |"
        )
    lines += [
        "",
        "Stage times are means per answer; the rest of an answer (query encoding, retrieval, "
        "sentence scoring, the abstention decision) is the difference between the answer time "
        "and the two stages.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accurate", description=__doc__)
    parser.add_argument("--n", type=int, default=60, help="questions to time")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--student",
        type=Path,
        metavar="FOLDER",
        action="append",
        default=[],
        help="also time a distilled cross-encoder (rag eval distill-reranker's folder); repeatable",
    )
    args = parser.parse_args(argv)
    for folder in args.student:
        if not (folder / "model.onnx").is_file():
            parser.error(f"no model.onnx in {folder} (make one with rag eval distill-reranker)")
    results: dict[str, Any] = {"cpu": cpu_summary(), "load_before": load_average()}
    results["native"] = measure(False, args.n)
    results["exact"] = measure(True, args.n)
    results["students"] = [
        {**measure(False, args.n, str(folder)), "label": _student_label(folder)}
        for folder in args.student
    ]
    save("accurate", results)
    text = table(results, report_command("bench.accurate", argv))
    print(text)
    if args.write:
        update_docs(text)
    return 0


def _student_label(folder: Path) -> str:
    """The row's label ("float32, 6 of the teacher's layers"), from the folder's distill.json."""
    import json

    made = folder / "distill.json"
    if not made.is_file():
        return f"float32 ({folder.name})"
    layers = json.loads(made.read_text(encoding="utf-8"))["train"]["layers"]
    return f"float32, {len(layers)} of the teacher's layers"


START, END = "<!-- bench.accurate: start -->", "<!-- bench.accurate: end -->"


def update_docs(text: str, path: Path = DOCS / "benchmarks.md") -> None:
    """Put ``text`` between this section's markers in docs/benchmarks.md (appending the
    section the first time); the rest of the file is kept."""
    doc = path.read_text(encoding="utf-8")
    block = f"{START}\n{text}\n{END}"
    if START in doc and END in doc:
        doc = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
