"""The evaluation report and the gate's baseline, as typed, frozen records.

A :class:`Report` holds, per mode, the overall and per-category metrics, the Recall@k curve
and every question's status, plus the metrics on the reported half, issue 14's and 18's targets
and the abstention calibration. A :class:`Baseline` holds, per mode and metric, the value with
its floor (a ceiling for lower-is-better metrics) and tolerance, and every question's status
(what ``rag eval check`` compares). Both are written as JSON (``eval/report[-squad].json``,
``eval/baseline[-squad].json``): ``to_json()`` and ``from_json()`` keep that format exactly,
key order included, so files written before these types existed load and write back the same.

Metric values are kept by metric name (:data:`eval.metrics.ALL_METRICS`), rounded to four
decimals; None where a metric had no question to count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.calibration import CALIBRATION_SPLIT, Calibration, in_calibration_part
from eval.dataset import CATEGORIES
from eval.metrics import (
    ALL_METRICS,
    Outcome,
    QuestionStatus,
    abstains,
    first_gold_rank,
    question_status,
    recall_curve,
    span_iou,
    speaker_right,
    summarize_by_category,
)
from eval.runner import RANKING_DEPTH, REPO, SetRun, mode_thresholds

#: The Recall@k curve's k values (1 to the ranking depth).
CURVE_KS: tuple[int, ...] = tuple(range(1, RANKING_DEPTH + 1))

#: The issues' targets, on the reported half of the seed-article set: (mode, metric) ->
#: (comparison, value). ``hybrid`` is the fast answer mode (hybrid retrieval, no reranker).
#: Issue 14's, and issue 18's speaker accuracy (:data:`TARGET_ISSUES`).
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("accurate", "recall@1"): (">=", 0.93),
    ("accurate", "answer_hit"): (">=", 0.85),
    ("accurate", "false_abstention"): ("<=", 0.05),
    ("accurate", "abstention_recall"): (">=", 0.90),
    ("accurate", "quote_exactness"): (">=", 1.0),
    ("hybrid", "recall@1"): (">=", 0.85),
    ("hybrid", "answer_hit"): (">=", 0.75),
    ("hybrid", "false_abstention"): ("<=", 0.08),
    ("hybrid", "abstention_recall"): (">=", 0.85),
    ("hybrid", "quote_exactness"): (">=", 1.0),
    ("accurate", "speaker_accuracy"): (">=", 0.90),
    ("hybrid", "speaker_accuracy"): (">=", 0.90),
}
#: The issue that set a metric's target (the rest: issue 14).
TARGET_ISSUES: dict[str, int] = {"speaker_accuracy": 18}


def target_issue(metric: str) -> int:
    """The issue whose target ``metric`` is held to."""
    return TARGET_ISSUES.get(metric, 14)


#: How the report's meta describes the split.
REPORT_SPLIT = "sha256(id) even: tuning half (thresholds chosen here); odd: reported half"

#: Metric name -> value (None: nothing to count), in :data:`ALL_METRICS` order.
Metrics = Mapping[str, float | None]
#: The abstention threshold each mode applied (a single number in old reports).
Thresholds = Mapping[str, float] | float


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def rounded_metrics(metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    """Every metric of :data:`ALL_METRICS`, rounded (None where missing)."""
    return {k: _round(metrics.get(k)) for k in ALL_METRICS}


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _thresholds(value: Any) -> Thresholds:
    return dict(value) if isinstance(value, Mapping) else value


# --------------------------------------------------------------------------- statuses


@dataclass(frozen=True)
class GateStatus:
    """What the gate compares per question between runs (a baseline keeps only this)."""

    category: str
    answerable: bool
    r1: bool  # a gold paragraph ranked first
    hit: bool  # answer hit
    abstained: bool

    @property
    def status(self) -> QuestionStatus:
        return QuestionStatus(r1=self.r1, hit=self.hit, abstained=self.abstained)

    def is_right(self) -> bool:
        """Gold paragraph first and an answer hit (answerable), or an abstention."""
        return self.status.right(self.answerable)

    def describe(self) -> str:
        """``R@1, hit``, ``not R@1, miss``, ``abstained``, ``answered``..."""
        if not self.answerable:
            return "abstained" if self.abstained else "answered"
        hit = "hit" if self.hit else ("abstained" if self.abstained else "miss")
        return f"{'R@1' if self.r1 else 'not R@1'}, {hit}"

    def gate_status(self) -> GateStatus:
        return GateStatus(self.category, self.answerable, self.r1, self.hit, self.abstained)

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "answerable": self.answerable,
            "r1": self.r1,
            "hit": self.hit,
            "abstained": self.abstained,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateStatus:
        return cls(
            category=data.get("category", ""),
            answerable=data.get("answerable", True),
            r1=data["r1"],
            hit=data["hit"],
            abstained=data["abstained"],
        )


@dataclass(frozen=True)
class QuestionReport(GateStatus):
    """One question's result in one mode, as the report keeps it."""

    right: bool = False
    rank: int | None = None  # the first gold paragraph's rank (answerable questions)
    iou: float | None = None  # the answer's best span IoU (answerable questions)
    support: float | None = None  # the confidence's margin over the threshold
    #: Who said what (questions that name a speaker only): the speaker asked for, the answer's
    #: speaker (None when refused or unattributed), and whether the speaker accuracy counts
    #: the question right (:func:`eval.metrics.speaker_right`).
    gold_speaker: str | None = None
    speaker: str | None = None
    speaker_right: bool | None = None

    @classmethod
    def of(cls, outcome: Outcome, threshold: float) -> QuestionReport:
        status = question_status(outcome, threshold)
        named = outcome.gold_speaker is not None
        return cls(
            category=outcome.category,
            answerable=outcome.answerable,
            r1=status.r1,
            hit=status.hit,
            abstained=status.abstained,
            right=status.right(outcome.answerable),
            rank=first_gold_rank(outcome) if outcome.answerable else None,
            iou=round(span_iou(outcome, threshold), 4) if outcome.answerable else None,
            support=round(outcome.support, 4) if math.isfinite(outcome.support) else None,
            gold_speaker=outcome.gold_speaker,
            speaker=outcome.speaker if named and not status.abstained else None,
            speaker_right=speaker_right(outcome, threshold) if named else None,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            **super().to_dict(),
            "right": self.right,
            "rank": self.rank,
            "iou": self.iou,
            "support": self.support,
        }
        if self.gold_speaker is not None:  # written for who-said-what questions only
            data["gold_speaker"] = self.gold_speaker
            data["speaker"] = self.speaker
            data["speaker_right"] = self.speaker_right
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuestionReport:
        base = GateStatus.from_dict(data)
        return cls(
            **vars(base),
            right=data["right"],
            rank=data.get("rank"),
            iou=data.get("iou"),
            support=data.get("support"),
            gold_speaker=data.get("gold_speaker"),
            speaker=data.get("speaker"),
            speaker_right=data.get("speaker_right"),
        )


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class CpuInfo:
    """The CPU the figures were measured on: its model name and the instruction sets that
    change int8 and float kernels."""

    model: str
    flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "flags": list(self.flags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CpuInfo:
        return cls(model=data.get("model", ""), flags=tuple(data.get("flags", ())))


def cpu_description() -> CpuInfo:
    """This machine's CPU: the model name and which of AVX2, FMA, AVX-512 and VNNI it has."""
    model, flags = "", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")
    return CpuInfo(model=model, flags=tuple(f for f in wanted if f in flags))


@dataclass(frozen=True)
class ReportMeta:
    """How, when and on what a report was made."""

    command: str
    date: str
    model: str
    abstain_threshold: Thresholds
    answer_top_k: int | None = None
    default_mode: str | None = None
    questions: str = ""  # the question file, relative to the repository
    n_questions: int = 0
    n_answerable: int = 0
    categories: Mapping[str, int] = field(default_factory=dict)
    documents: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    cpu: CpuInfo | None = None
    split: str = REPORT_SPLIT

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "command": self.command,
            "date": self.date,
            "model": self.model,
            "abstain_threshold": _thresholds(self.abstain_threshold),
            "answer_top_k": self.answer_top_k,
            "default_mode": self.default_mode,
            "questions": self.questions,
            "n_questions": self.n_questions,
            "n_answerable": self.n_answerable,
            "categories": dict(self.categories),
            "documents": list(self.documents),
            "modes": list(self.modes),
        }
        if self.cpu is not None:
            data["cpu"] = self.cpu.to_dict()
        data["split"] = self.split
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportMeta:
        cpu = data.get("cpu")
        return cls(
            command=data.get("command", ""),
            date=data.get("date", ""),
            model=data.get("model", ""),
            abstain_threshold=_thresholds(data.get("abstain_threshold", {})),
            answer_top_k=data.get("answer_top_k"),
            default_mode=data.get("default_mode"),
            questions=data.get("questions", ""),
            n_questions=data.get("n_questions", 0),
            n_answerable=data.get("n_answerable", 0),
            categories=dict(data.get("categories", {})),
            documents=tuple(data.get("documents", ())),
            modes=tuple(data.get("modes", ())),
            cpu=CpuInfo.from_dict(cpu) if cpu is not None else None,
            split=data.get("split", REPORT_SPLIT),
        )


def report_meta(run: SetRun, command: str, model: str) -> ReportMeta:
    """The meta of a report on ``run``, made by ``command`` with the encoder ``model``."""
    questions = run.qset.questions
    path = run.qset.path
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return ReportMeta(
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        model=model,
        abstain_threshold=mode_thresholds(run.outcomes),
        answer_top_k=run.settings.top_k,
        default_mode=run.settings.retrieval_mode,
        questions=str(shown),
        n_questions=len(questions),
        n_answerable=sum(1 for q in questions if q.answerable),
        categories={c: sum(1 for q in questions if q.category == c) for c in CATEGORIES},
        documents=tuple(sorted(run.qset.documents)),
        modes=tuple(run.outcomes),
        cpu=cpu_description(),
    )


@dataclass(frozen=True)
class Denominators:
    """How many questions each kind of metric is a share of."""

    all: int
    answerable: int
    unanswerable: int
    refused: int
    speaker: int = 0  # questions that name a speaker (the speaker accuracy's)

    def of(self, name: str) -> int:
        """The denominator called ``name`` (``all``, ``answerable``, ...); 0 if unknown."""
        return int(self.to_dict().get(name, 0))

    def to_dict(self) -> dict[str, int]:
        data = {
            "all": self.all,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "refused": self.refused,
        }
        if self.speaker:  # a set with who-said-what questions (older reports have none)
            data["speaker"] = self.speaker
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Denominators:
        return cls(
            all=data.get("all", 0),
            answerable=data.get("answerable", 0),
            unanswerable=data.get("unanswerable", 0),
            refused=data.get("refused", 0),
            speaker=data.get("speaker", 0),
        )


@dataclass(frozen=True)
class ModeReport:
    """One mode's figures: overall, per category, and the Recall@k curve."""

    overall: Metrics
    by_category: Mapping[str, Metrics]
    counts: Mapping[str, int]  # questions per category, and "all"
    denominators: Denominators
    recall_curve: Mapping[int, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": dict(self.overall),
            "by_category": {c: dict(m) for c, m in self.by_category.items()},
            "counts": dict(self.counts),
            "denominators": self.denominators.to_dict(),
            "recall_curve": {str(k): v for k, v in self.recall_curve.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModeReport:
        return cls(
            overall=dict(data["overall"]),
            by_category={c: dict(m) for c, m in data.get("by_category", {}).items()},
            counts=dict(data.get("counts", {})),
            denominators=Denominators.from_dict(data.get("denominators", {})),
            recall_curve={int(k): v for k, v in data.get("recall_curve", {}).items()},
        )


@dataclass(frozen=True)
class TargetRow:
    """One of the issues' targets and the value measured on the reported half."""

    mode: str
    metric: str
    op: str  # ">=" or "<="
    target: float
    value: float | None
    met: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "metric": self.metric,
            "op": self.op,
            "target": self.target,
            "value": self.value,
            "met": self.met,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetRow:
        return cls(
            mode=data["mode"],
            metric=data["metric"],
            op=data["op"],
            target=data["target"],
            value=data.get("value"),
            met=data["met"],
        )


def _meets(value: float | None, op: str, target: float) -> bool:
    if value is None:
        return False
    return value >= target - 1e-9 if op == ">=" else value <= target + 1e-9


def target_rows(overall: Mapping[str, Metrics]) -> tuple[TargetRow, ...]:
    """Every target of :data:`TARGETS`, measured on ``overall`` (mode -> metrics)."""
    rows = []
    for (mode, metric), (op, target) in TARGETS.items():
        value = overall.get(mode, {}).get(metric)
        rows.append(TargetRow(mode, metric, op, target, value, _meets(value, op, target)))
    return tuple(rows)


@dataclass(frozen=True)
class CalibrationSummary:
    """A :class:`~eval.calibration.Calibration` as the report keeps it (counts, not ids)."""

    mode: str
    rule: str  # "learned" (a probability threshold) or "threshold" (on the support score)
    max_false_abstention: float
    threshold: float
    current_threshold: float
    split: str
    n_calibration: int
    n_held_out: int
    calibration: Metrics
    held_out: Metrics
    held_out_at_current: Metrics

    @classmethod
    def of(cls, c: Calibration) -> CalibrationSummary:
        return cls(
            mode=c.mode,
            rule=c.rule,
            max_false_abstention=c.max_false_abstention,
            threshold=c.threshold,
            current_threshold=c.current_threshold,
            split=CALIBRATION_SPLIT,
            n_calibration=len(c.calibration_ids),
            n_held_out=len(c.held_out_ids),
            calibration={k: _round(v) for k, v in c.calibration.items()},
            held_out={k: _round(v) for k, v in c.held_out.items()},
            held_out_at_current={k: _round(v) for k, v in c.held_out_at_current.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "rule": self.rule,
            "max_false_abstention": self.max_false_abstention,
            "threshold": self.threshold,
            "current_threshold": self.current_threshold,
            "split": self.split,
            "n_calibration": self.n_calibration,
            "n_held_out": self.n_held_out,
            "calibration": dict(self.calibration),
            "held_out": dict(self.held_out),
            "held_out_at_current": dict(self.held_out_at_current),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationSummary:
        return cls(
            mode=data["mode"],
            rule=data.get("rule", "threshold"),
            max_false_abstention=data["max_false_abstention"],
            threshold=data["threshold"],
            current_threshold=data["current_threshold"],
            split=data.get("split", CALIBRATION_SPLIT),
            n_calibration=data["n_calibration"],
            n_held_out=data["n_held_out"],
            calibration=dict(data["calibration"]),
            held_out=dict(data["held_out"]),
            held_out_at_current=dict(data["held_out_at_current"]),
        )


@dataclass(frozen=True)
class Report:
    """A question set's evaluation (``eval/report[-squad].json``)."""

    meta: ReportMeta
    modes: Mapping[str, ModeReport]
    reported_half: Mapping[str, Metrics]  # mode -> overall metrics on the reported half
    questions: Mapping[str, Mapping[str, QuestionReport]]  # mode -> question id -> status
    targets: tuple[TargetRow, ...] = ()
    calibration: CalibrationSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "meta": self.meta.to_dict(),
            "modes": {m: r.to_dict() for m, r in self.modes.items()},
            "reported_half": {m: dict(v) for m, v in self.reported_half.items()},
            "questions": {
                m: {q: s.to_dict() for q, s in statuses.items()}
                for m, statuses in self.questions.items()
            },
            "targets": [t.to_dict() for t in self.targets],
        }
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        calibration = data.get("calibration")
        return cls(
            meta=ReportMeta.from_dict(data["meta"]),
            modes={m: ModeReport.from_dict(r) for m, r in data["modes"].items()},
            reported_half={m: dict(v) for m, v in data.get("reported_half", {}).items()},
            questions={
                m: {q: QuestionReport.from_dict(s) for q, s in statuses.items()}
                for m, statuses in data.get("questions", {}).items()
            },
            targets=tuple(TargetRow.from_dict(t) for t in data.get("targets", ())),
            calibration=(
                CalibrationSummary.from_dict(calibration) if calibration is not None else None
            ),
        )

    def to_json(self) -> str:
        return _dump(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, path: Path) -> Report:
        return cls.from_json(path.read_text(encoding="utf-8"))

    def write(self, path: Path) -> None:
        write_text(path, self.to_json())


def build_report(
    outcomes: Mapping[str, Sequence[Outcome]],
    threshold: float,
    meta: ReportMeta,
    calibration: Calibration | None = None,
) -> Report:
    """Per mode, overall and per-category metrics, Recall@k curve, and every question's
    status (what ``rag eval check`` compares); the targets are read on the reported half,
    the questions no threshold was chosen on."""
    modes: dict[str, ModeReport] = {}
    questions: dict[str, dict[str, QuestionReport]] = {}
    for mode, items in outcomes.items():
        summary = summarize_by_category(items, threshold)
        modes[mode] = ModeReport(
            overall=rounded_metrics(summary.overall),
            by_category={
                c: rounded_metrics(summary.by_category[c])
                for c in CATEGORIES
                if c in summary.by_category
            },
            counts=summary.counts,
            denominators=Denominators(
                all=len(items),
                answerable=sum(1 for o in items if o.answerable),
                unanswerable=sum(1 for o in items if not o.answerable),
                refused=sum(1 for o in items if abstains(o, threshold)),
                speaker=sum(1 for o in items if o.gold_speaker is not None),
            ),
            recall_curve={k: round(v, 4) for k, v in recall_curve(items, CURVE_KS).items()},
        )
        questions[mode] = {o.id: QuestionReport.of(o, threshold) for o in items}
    reported: dict[str, Metrics] = {}
    for mode, items in outcomes.items():
        held = [o for o in items if not in_calibration_part(o.id)]
        if held:
            reported[mode] = rounded_metrics(summarize_by_category(held, threshold).overall)
    return Report(
        meta=meta,
        modes=modes,
        reported_half=reported,
        questions=questions,
        targets=target_rows(reported),
        calibration=CalibrationSummary.of(calibration) if calibration is not None else None,
    )


# --------------------------------------------------------------------------- the baseline


@dataclass(frozen=True)
class BaselineEntry:
    """One metric's baseline: its value, the tolerated change, and the floor it may not
    fall below (a ceiling for lower-is-better metrics); the issue's target, if any, is
    recorded beside it."""

    value: float
    tolerance: float | None = None
    floor: float | None = None
    ceiling: float | None = None
    target: str | None = None  # e.g. ">= 0.85"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value}
        if self.tolerance is not None:
            data["tolerance"] = self.tolerance
        if self.ceiling is not None:
            data["ceiling"] = self.ceiling
        if self.floor is not None:
            data["floor"] = self.floor
        if self.target is not None:
            data["target"] = self.target
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineEntry:
        return cls(
            value=data["value"],
            tolerance=data.get("tolerance"),
            floor=data.get("floor"),
            ceiling=data.get("ceiling"),
            target=data.get("target"),
        )


@dataclass(frozen=True)
class BaselineMeta:
    """Where a baseline came from (copied from its report's meta)."""

    created: str | None = None
    command: str | None = None
    model: str | None = None
    abstain_threshold: Thresholds | None = None
    questions: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "command": self.command,
            "model": self.model,
            "abstain_threshold": (
                None if self.abstain_threshold is None else _thresholds(self.abstain_threshold)
            ),
            "questions": self.questions,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineMeta:
        threshold = data.get("abstain_threshold")
        return cls(
            created=data.get("created"),
            command=data.get("command"),
            model=data.get("model"),
            abstain_threshold=None if threshold is None else _thresholds(threshold),
            questions=data.get("questions"),
        )


@dataclass(frozen=True)
class Baseline:
    """What ``rag eval check`` compares a run with (``eval/baseline[-squad].json``)."""

    meta: BaselineMeta
    modes: Mapping[str, Mapping[str, BaselineEntry]]  # mode -> metric -> entry
    questions: Mapping[str, Mapping[str, GateStatus]] = field(default_factory=dict)

    def only(self, modes: Sequence[str]) -> Baseline:
        """This baseline restricted to ``modes`` (a run of some modes only)."""
        return Baseline(
            meta=self.meta,
            modes={m: v for m, v in self.modes.items() if m in modes},
            questions={m: v for m, v in self.questions.items() if m in modes},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta.to_dict(),
            "modes": {
                m: {k: e.to_dict() for k, e in entries.items()} for m, entries in self.modes.items()
            },
            "questions": {
                m: {q: s.to_dict() for q, s in statuses.items()}
                for m, statuses in self.questions.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        return cls(
            meta=BaselineMeta.from_dict(data.get("meta", {})),
            modes={
                m: {k: BaselineEntry.from_dict(e) for k, e in entries.items()}
                for m, entries in data["modes"].items()
            },
            questions={
                m: {q: GateStatus.from_dict(s) for q, s in statuses.items()}
                for m, statuses in data.get("questions", {}).items()
            },
        )

    def to_json(self) -> str:
        return _dump(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, path: Path) -> Baseline:
        return cls.from_json(path.read_text(encoding="utf-8"))

    def write(self, path: Path) -> None:
        write_text(path, self.to_json())


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
