"""The regression gate: a report checked against its baseline (``rag eval check``).

The baseline (:func:`make_baseline`) holds per mode and metric the value, a floor (a ceiling
for lower-is-better metrics) and the tolerance: :data:`DEFAULT_TOLERANCE`, but at least
:data:`TOLERATED_QUESTIONS` questions' worth of the metric, so that one borderline question
flipping on another CPU cannot fail it; quote exactness must stay 1.0 in every mode. The
check (:func:`check_against_baseline`) fails when a metric falls below its floor or moves by
more than its tolerance, and lists the questions whose result flipped, either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from eval.dataset import EvalQuestion
from eval.metrics import LOWER_IS_BETTER
from eval.report import (
    TARGETS,
    Baseline,
    BaselineEntry,
    BaselineMeta,
    Denominators,
    Report,
)

DEFAULT_TOLERANCE = 0.02
#: The gate tolerates this many questions' worth of change in every metric (at least
#: DEFAULT_TOLERANCE): int8 and float kernels round differently on different CPUs, and one
#: borderline question flipping is noise to the people who run the gate, not a regression.
TOLERATED_QUESTIONS = 2
#: Quote exactness is not a trade-off in any mode: every returned text must be exact.
EXACT_FLOOR = 1.0

#: What each metric is a share of (its denominator in the report); the rest: answerable.
DENOMINATOR = {
    "quote_exactness": "all",
    "abstention_recall": "unanswerable",
    "abstention_precision": "refused",
    "speaker_accuracy": "speaker",
}


def metric_tolerance(metric: str, denominators: Denominators | None, tolerance: float) -> float:
    """The tolerated change: ``tolerance``, but never less than
    :data:`TOLERATED_QUESTIONS` questions' worth (a flipped question out of 40 unanswerable
    ones is noise, not a regression); none for quote exactness."""
    if metric == "quote_exactness":
        return 0.0
    n = denominators.of(DENOMINATOR.get(metric, "answerable")) if denominators else 0
    worth = math.ceil(TOLERATED_QUESTIONS * 10_000 / n) / 10_000 if n else 0.0
    return max(tolerance, worth)


def make_baseline(report: Report, tolerance: float = DEFAULT_TOLERANCE) -> Baseline:
    """Per mode and metric: the value, a floor (or a ceiling for lower-is-better metrics) and
    the tolerated drop; per question its status.

    The floor is the current value minus the tolerance (at least
    :data:`TOLERATED_QUESTIONS` questions' worth, see :func:`metric_tolerance`), so that no
    single flipped question fails the gate; quote exactness has floor 1.0 and no tolerance
    in every mode. The issue's targets are reported beside the figures, not gated."""
    modes: dict[str, dict[str, BaselineEntry]] = {}
    for mode, data in report.modes.items():
        entries: dict[str, BaselineEntry] = {}
        for metric, value in data.overall.items():
            if value is None:
                continue
            lower = metric in LOWER_IS_BETTER
            tol = metric_tolerance(metric, data.denominators, tolerance)
            bound = value + tol if lower else value - tol
            if metric == "quote_exactness":
                bound = EXACT_FLOOR
            target = TARGETS.get((mode, metric))
            entries[metric] = BaselineEntry(
                value=value,
                tolerance=tol,
                floor=None if lower else round(bound, 4),
                ceiling=round(bound, 4) if lower else None,
                target=None if target is None else f"{target[0]} {target[1]}",
            )
        modes[mode] = entries
    meta = report.meta
    return Baseline(
        meta=BaselineMeta(
            created=meta.date,
            command=meta.command,
            model=meta.model,
            abstain_threshold=meta.abstain_threshold,
            questions=meta.questions,
        ),
        modes=modes,
        questions={
            mode: {qid: s.gate_status() for qid, s in statuses.items()}
            for mode, statuses in report.questions.items()
        },
    )


@dataclass(frozen=True)
class Change:
    """A question whose result flipped between the baseline and this run."""

    mode: str
    question: str
    category: str
    before: str
    after: str
    fixed: bool  # was wrong, now right (else: was right, now wrong)


@dataclass
class CheckResult:
    failures: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def check_against_baseline(baseline: Baseline, report: Report) -> CheckResult:
    """Failures (a metric below its floor or dropped by more than its tolerance) and the
    questions whose result changed, in either direction."""
    result = CheckResult()
    for mode, entries in baseline.modes.items():
        current = report.modes.get(mode)
        if current is None:
            result.failures.append(f"{mode}: mode missing from this run")
            continue
        for metric, entry in entries.items():
            value = current.overall.get(metric)
            label = f"{mode} {metric}"
            if value is None:
                result.failures.append(f"{label}: no value in this run (nothing to count)")
                continue
            tol = DEFAULT_TOLERANCE if entry.tolerance is None else entry.tolerance
            if metric in LOWER_IS_BETTER:
                ceiling = entry.value + tol if entry.ceiling is None else entry.ceiling
                if value > ceiling + 1e-9:
                    result.failures.append(f"{label} = {value:.4f} is above its ceiling {ceiling}")
                elif value > entry.value + tol + 1e-9:
                    result.failures.append(
                        f"{label} = {value:.4f} rose by more than {tol} from {entry.value}"
                    )
            else:
                floor = entry.value - tol if entry.floor is None else entry.floor
                if value < floor - 1e-9:
                    result.failures.append(f"{label} = {value:.4f} is below its floor {floor}")
                elif value < entry.value - tol - 1e-9:
                    result.failures.append(
                        f"{label} = {value:.4f} dropped by more than {tol} from {entry.value}"
                    )
    for mode, before_all in baseline.questions.items():
        after_all = report.questions.get(mode, {})
        for qid, before in before_all.items():
            after = after_all.get(qid)
            if after is None or before.is_right() == after.is_right():
                continue
            result.changes.append(
                Change(
                    mode=mode,
                    question=qid,
                    category=before.category,
                    before=before.describe(),
                    after=after.describe(),
                    fixed=after.is_right(),
                )
            )
    return result


def format_check(result: CheckResult, questions: Mapping[str, EvalQuestion] | None = None) -> str:
    """The flipped questions, then the failures or ``check passed``."""
    lines = []
    worse = [c for c in result.changes if not c.fixed]
    better = [c for c in result.changes if c.fixed]
    for title, items in (("was right, now wrong", worse), ("was wrong, now right", better)):
        if not items:
            continue
        lines.append(f"{title} ({len(items)}):")
        for c in items:
            text = questions[c.question].question if questions and c.question in questions else ""
            lines.append(
                f"  {c.mode:8} {c.question:9} {c.category:15} {c.before} -> {c.after}"
                + (f"  {text}" if text else "")
            )
    if result.failures:
        lines.append(f"FAILED ({len(result.failures)}):")
        lines.extend(f"  {f}" for f in result.failures)
    else:
        lines.append("check passed: no metric below its floor or beyond its tolerance")
    return "\n".join(lines)


def run_check(
    baseline: Baseline,
    report: Report,
    questions: Mapping[str, EvalQuestion] | None = None,
) -> tuple[int, str]:
    """The exit code (0 passed, 1 failed) and the text ``rag eval check`` prints."""
    result = check_against_baseline(baseline, report)
    return (0 if result.ok else 1), format_check(result, questions)
