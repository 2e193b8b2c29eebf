"""Reports as text: the table printed after a run, the Markdown sections, and
``eval/report.md`` itself, whose sections each command rewrites in place
(:func:`update_report_file`), keeping the others as they were."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from eval.calibration import in_calibration_part
from eval.dataset import EvalQuestion
from eval.gate import TOLERATED_QUESTIONS
from eval.metrics import ABSTENTION_METRICS, ALL_METRICS
from eval.report import CalibrationSummary, Report, Thresholds
from eval.runner import RANKING_DEPTH

LABELS = {
    "recall@1": "R@1",
    "recall@3": "R@3",
    "recall@5": "R@5",
    "mrr@10": "MRR@10",
    "ndcg@10": "nDCG@10",
    "answer_hit": "answer hit",
    "span_iou": "span IoU",
    "quote_exactness": "quote exact",
    "abstention_recall": "abst. recall",
    "abstention_precision": "abst. precision",
    "false_abstention": "false abst.",
}


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def describe_thresholds(thresholds: Thresholds | None) -> str:
    """``hybrid 0.5, accurate 0.4693`` (or the one number of an old report)."""
    if isinstance(thresholds, Mapping):
        return ", ".join(f"{m} {t}" for m, t in thresholds.items())
    return str(thresholds)


def metrics_table(
    rows: Iterable[tuple[str, Mapping[str, float | None]]],
    first: str,
    metrics: Sequence[str] = ALL_METRICS,
    counts: Mapping[str, int] | None = None,
) -> list[str]:
    """A Markdown table: one row per ``(name, metrics)``, one column per metric."""
    head = [first, *(["n"] if counts is not None else []), *(LABELS.get(m, m) for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for name, values in rows:
        cells = [name]
        if counts is not None:
            cells.append(str(counts.get(name, "")))
        cells.extend(fmt(values.get(m)) for m in metrics)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def text_table(report: Report) -> str:
    """The one table printed after a run: every mode, every overall metric."""
    names = ["mode", *(LABELS[m] for m in ALL_METRICS)]
    widths = [max(8, len(n)) for n in names]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    for mode, data in report.modes.items():
        cells = [mode, *(fmt(data.overall.get(m)) for m in ALL_METRICS)]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def calibration_markdown(c: CalibrationSummary) -> list[str]:
    rows = [
        ("calibration part, chosen threshold", c.calibration),
        ("held-out part, chosen threshold", c.held_out),
        (f"held-out part, current default {c.current_threshold}", c.held_out_at_current),
    ]
    learned = c.rule == "learned"
    score = (
        "learned probability (see the learned abstention section)" if learned else "support score"
    )
    where = (
        f"It is the `threshold` of `rag/abstention/{c.mode}.json`; the shipped value is "
        "the one `rag eval learn-abstention` chose with the model (below), on the same "
        "tuning half; this section shows what a threshold pushed to the false-abstention "
        "limit would do instead."
        if learned
        else f"Setting line: `abstain_threshold: float = Field({c.threshold:.2f}, ...)` in "
        f"`rag/settings.py` (or `RAG_ABSTAIN_THRESHOLD={c.threshold:.2f}`)."
    )
    return [
        f"Measured by `rag eval own --calibrate` (and by every full `rag eval own`), in {c.mode} "
        "mode, on the outcomes of the run above. The set is split by hashing "
        f"each question id (sha256, even: calibration, odd: held out): "
        f"{c.n_calibration} questions to choose on, {c.n_held_out} to report on. The "
        f"threshold is the highest {score} that keeps false abstentions on the "
        f"calibration part's answerable questions at or below "
        f"{c.max_false_abstention:.0%}.",
        "",
        f"Chosen threshold: **{c.threshold:.4g}** (current: {c.current_threshold}). {where}",
        "",
        *metrics_table(rows, "part", ABSTENTION_METRICS),
    ]


def calibration_section(c: CalibrationSummary) -> str:
    """The ``calibration`` section of eval/report.md."""
    return "## Abstention threshold\n\n" + "\n".join(calibration_markdown(c))


def failing_questions(
    report: Report, mode: str, questions: Mapping[str, EvalQuestion]
) -> list[str]:
    statuses = report.questions.get(mode, {})
    wrong = [(qid, s) for qid, s in statuses.items() if not s.right]
    if not wrong:
        return ["Every question is right."]
    lines = [
        "| id | half | category | question | gold rank | result |",
        "|---|---|---|---|---:|---|",
    ]
    for qid, s in wrong:
        q = questions.get(qid)
        text = q.question.replace("|", "\\|") if q else ""
        half = "tuning" if in_calibration_part(qid) else "reported"
        lines.append(
            f"| {qid} | {half} | {s.category} | {text} | {s.rank or '–'} | {s.describe()} |"
        )
    return lines


def markdown_report(
    report: Report, questions: Mapping[str, EvalQuestion], plot_name: str | None
) -> str:
    """A question set's section of eval/report.md."""
    meta = report.meta
    lines = [
        f"## Question set `{meta.questions}`",
        "",
        f"Command: `{meta.command}` — run {meta.date}, model `{meta.model}`, "
        f"abstention thresholds {describe_thresholds(meta.abstain_threshold)} (learned "
        "probability where `rag/abstention/<mode>.json` applies, else support), answer `top_k` "
        f"{meta.answer_top_k}, ranking depth {RANKING_DEPTH}.",
        "",
        f"Questions: `{meta.questions}` — {meta.n_questions} questions "
        f"({', '.join(f'{c} {n}' for c, n in meta.categories.items())}) about "
        f"{', '.join(f'`{d}`' for d in meta.documents)}, all indexed together.",
        "",
        *metrics_table(((m, d.overall) for m, d in report.modes.items()), "mode"),
        "",
    ]
    if plot_name:
        lines += [f"![Paragraph Recall@k per retrieval mode]({plot_name})", ""]
    if report.reported_half:
        lines += [
            "### Reported half",
            "",
            "The same metrics on the reported half only (question ids hashing odd): every "
            "threshold, including the learned abstention, was chosen on the other half.",
            "",
            *metrics_table(report.reported_half.items(), "mode"),
            "",
        ]
    cpu = meta.cpu
    if cpu is not None:
        lines += [f"CPU: {cpu.model}; flags {', '.join(cpu.flags)}.", ""]
    if report.targets:
        lines += [
            "### Targets (issue 14, reported half)",
            "",
            "| mode | metric | target | measured | met |",
            "|---|---|---|---:|---|",
        ]
    for row in report.targets:
        lines.append(
            f"| {row.mode} | {row.metric} | {row.op} {row.target} | "
            f"{fmt(row.value)} | {'yes' if row.met else '**no**'} |"
        )
    lines += [
        "",
        "Regression gate: `rag eval check` reruns the set and compares it with its "
        "baseline (`eval/baseline.json` for this set, `eval/baseline-squad.json` for the "
        "stand-in set), which holds per mode and metric the value, a floor (the value minus "
        "the tolerance; a ceiling for false abstention) and the tolerance (0.02, but at least "
        f"{TOLERATED_QUESTIONS} questions' worth of the metric, so one question that flips on "
        "another CPU cannot fail it); quote exactness must stay 1.0 in every mode. The "
        "reranker runs with exact integer arithmetic and questions are encoded in float32, so "
        "the figures are the same on CPUs with and without AVX-512 VNNI. It exits 1 when a "
        "metric falls below its floor, and lists the questions whose result "
        "changed. `rag eval own --update-baseline` rewrites the baseline.",
        "",
    ]
    for mode, data in report.modes.items():
        lines += [f"### By category: {mode}", ""]
        lines += metrics_table(data.by_category.items(), "category", counts=data.counts)
        lines.append("")
    for mode in report.questions:
        lines += [f"### Questions not right in {mode} mode", ""]
        lines += [
            "Right means: gold paragraph ranked first and the answer span contains the gold "
            "span (answerable), or an abstention (unanswerable). The `half` column says "
            "whether the question is in the tuning or the reported half.",
            "",
        ]
        lines += failing_questions(report, mode, questions)
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- eval/report.md

SECTION = re.compile(r"<!-- begin:(?P<name>[\w-]+) -->\n.*?<!-- end:(?P=name) -->\n", re.DOTALL)
SECTION_ORDER = (
    "own",
    "own-squad",
    "calibration",
    "abstention",
    "first-stage",
    "rerank",
    "rerank-stop",
    "rerank-windows",
    "answer-window",
    "fast-answer",
    "spelling",
    "bench",
    "bench-distractors",
    "squad2",
    "notes",
)
REPORT_HEADER = """# Evaluation report

Produced by `rag eval` (eval/). Each section below is rewritten by the command it names and
keeps the others as they were. The product's own question set (`eval/questions.jsonl`) is
written by hand about the seed article in `data/`; a second set (`eval/questions-squad.jsonl`)
about SQuAD 2.0 dev Wikipedia articles (read from `../shared/benchmarks` at run time) keeps the
breadth. Both are gated by `rag eval check`.

"""


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` (a report) with the section ``name`` replaced by ``body``; sections are kept
    in :data:`SECTION_ORDER`."""
    sections = {m.group("name"): m.group(0) for m in SECTION.finditer(text)}
    sections[name] = f"<!-- begin:{name} -->\n{body.rstrip()}\n<!-- end:{name} -->\n"
    order = [n for n in SECTION_ORDER if n in sections] + sorted(
        n for n in sections if n not in SECTION_ORDER
    )
    return REPORT_HEADER + "\n".join(sections[n] for n in order)


def update_report_file(path: Path, sections: Mapping[str, str]) -> None:
    """Rewrite the named sections of the report at ``path``, keeping the others."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    for name, body in sections.items():
        text = replace_section(text, name, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
