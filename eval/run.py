"""Run the question set through the pipeline in each retrieval mode, and everything built on
the outcomes: the report (Markdown, JSON, plot), the baseline check and the calibration.

Each question is asked twice per mode through :func:`rag.pipeline.answer`: with ``top_k=10``
for the ranking metrics, and with the service's own ``top_k`` for the answer span. Both calls
run with abstention switched off, so that the answer and its confidence are kept; the
outcome records the confidence's margin over the mode's threshold, and :mod:`eval.metrics`
abstains below a margin of 0 (the service's own decision). The modes are the retrieval modes
of :data:`rag.retrieve.MODES` answering in ``fast`` mode, and ``accurate`` (reranked hybrid).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from core.types import Answer, Document
from eval.dataset import CATEGORIES, EvalQuestion, QuestionSet, paragraph_id
from eval.metrics import (
    ALL_METRICS,
    LOWER_IS_BETTER,
    Outcome,
    QuestionStatus,
    Summary,
    TextSpan,
    abstains,
    first_gold_rank,
    question_status,
    recall_curve,
    span_iou,
    summarize,
    summarize_by_category,
)
from rag.abstain import AbstentionModel
from rag.chunk import CHUNKER_VERSION
from rag.embed import Encoder
from rag.rerank import BUNDLED_RERANKER, Reranker
from rag.rerank import available as reranker_available
from rag.retrieve import MODES, Corpus
from rag.settings import Settings

REPO = Path(__file__).resolve().parent.parent
EVAL_DIR = REPO / "eval"
DEFAULT_CACHE = REPO / "var" / "cache"
RANKING_DEPTH = 10
CURVE_KS = tuple(range(1, RANKING_DEPTH + 1))
DEFAULT_TOLERANCE = 0.02
MAX_FALSE_ABSTENTION = 0.05

#: Issue 14's targets, on the reported half of the seed-article set: (mode, metric) ->
#: (comparison, value). ``hybrid`` is the fast answer mode (hybrid retrieval, no reranker).
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
}
#: The gate tolerates this many questions' worth of change in every metric (at least
#: DEFAULT_TOLERANCE): int8 and float kernels round differently on different CPUs, and one
#: borderline question flipping is noise to the people who run the gate, not a regression.
TOLERATED_QUESTIONS = 2
#: Quote exactness is not a trade-off in any mode: every returned text must be exact.
EXACT_FLOOR = 1.0

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


#: The evaluated mode that re-ranks hybrid candidates with the cross-encoder; the others are
#: ``fast`` answers with each first-stage retrieval mode.
ACCURATE = "accurate"


def available_modes(reranker: str = BUNDLED_RERANKER) -> tuple[str, ...]:
    """Every mode that can be evaluated here: each retrieval mode (fast), and ``accurate``
    when the reranker model ``reranker`` is installed."""
    return (*MODES, ACCURATE) if reranker and reranker_available(reranker) else tuple(MODES)


def answer_options(mode: str) -> dict[str, Any]:
    """``answer()`` keyword arguments for an evaluated mode name."""
    if mode == ACCURATE:
        return {"mode": "accurate", "retrieval": "hybrid"}
    return {"mode": "fast", "retrieval": mode}


# --------------------------------------------------------------------------- running


def index_dir_for(cache_dir: Path, encoder: Encoder) -> Path:
    """A persistent index folder for the evaluation, one per model and chunker version; the
    pipeline itself re-embeds only documents that changed."""
    key = hashlib.sha256(f"{encoder.name}\x00{CHUNKER_VERSION}".encode()).hexdigest()[:16]
    return cache_dir / "eval-index" / key


def open_eval_corpus(
    documents: Sequence[Document],
    encoder: Encoder,
    settings: Settings,
    index_dir: Path,
    *,
    progress: bool = False,
) -> Corpus:
    """A corpus holding exactly ``documents``, reusing the cached index when it matches."""
    from rag.build import build_index, load_corpus

    local = settings.model_copy(update={"index_dir": index_dir, "data_dir": index_dir.parent})
    wanted = {d.id: d.sha256 for d in documents}
    rebuild = False
    try:
        corpus = load_corpus(local, encoder)
        if {i: d.sha256 for i, d in corpus.documents.items()} == wanted:
            return corpus
    except IndexNotFound:
        pass
    except (IndexMismatch, IndexCorrupt):
        rebuild = True
    build_index(local, encoder, documents=documents, rebuild=rebuild, progress=progress)
    return load_corpus(local, encoder)


def returned_texts_exact(corpus: Corpus, answer: Answer) -> bool:
    """Whether every text the answer returns equals the document text at its span."""
    items = []
    if answer.answer is not None:
        q = answer.answer
        items.append((q.doc_id, q.start, q.end, q.text))
    for passage in answer.passages:
        c = passage.hit.chunk
        items.append((c.doc_id, c.start, c.end, c.text))
        items.extend((q.doc_id, q.start, q.end, q.text) for q in passage.quotes)
    return all(corpus.documents[d].text[s:e] == t for d, s, e, t in items)


def ranked_paragraphs(answer: Answer) -> tuple[str, ...]:
    """The paragraphs of the answer's passages, best first, each once."""
    ids = (paragraph_id(p.hit.chunk.doc_id, p.hit.chunk.paragraph) for p in answer.passages)
    return tuple(dict.fromkeys(ids))


def evaluate_question(
    corpus: Corpus,
    encoder: Encoder,
    settings: Settings,
    question: EvalQuestion,
    mode: str,
    reranker: Reranker | None = None,
    abstention: Mapping[str, AbstentionModel] | None = None,
) -> Outcome:
    from rag.pipeline import answer

    history = list(question.previous) or None

    def ask(top_k: int | None) -> Answer:
        return answer(
            corpus,
            encoder,
            question.question,
            settings=settings,
            top_k=top_k,
            history=history,
            reranker=reranker,
            abstention=abstention,
            abstain=False,
            **answer_options(mode),
        )

    ranking = ask(RANKING_DEPTH)
    # In accurate mode the answer and its confidence come from the reranked top passage and
    # the cross-encoder's scores, the same whatever top_k (the reranker reads
    # max(top_k, rerank_candidates) candidates either way), so one call serves both; fast
    # mode weighs every returned passage, so it is asked again with the service's top_k.
    same = mode == ACCURATE and max(settings.top_k, settings.rerank_candidates) >= RANKING_DEPTH
    result = ranking if same else ask(None)
    quote = result.answer
    return Outcome(
        id=question.id,
        category=question.category,
        answerable=question.answerable,
        gold_paragraphs=question.paragraph_ids(),
        gold_spans=tuple(
            TextSpan(question.doc_id or "", s.start, s.end) for s in question.gold_spans
        ),
        ranked=ranked_paragraphs(ranking),
        answer=None if quote is None else TextSpan(quote.doc_id, quote.start, quote.end),
        support=result.confidence - result.threshold if quote is not None else -math.inf,
        n_hits=len(result.passages),
        exact=returned_texts_exact(corpus, ranking) and returned_texts_exact(corpus, result),
        threshold=result.threshold,
    )


@contextmanager
def one_thread() -> Iterator[None]:
    """Encode one query at a time on one thread: a single short query gains nothing from more,
    and on a busy machine (other processes on the cores) extra threads make it ten times
    slower. The previous setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_questions(
    questions: Sequence[EvalQuestion],
    corpus: Corpus,
    encoder: Encoder,
    settings: Settings,
    modes: Sequence[str],
    *,
    progress: bool = False,
    reranker: Reranker | None = None,
    abstention: Mapping[str, AbstentionModel] | None = None,
) -> dict[str, list[Outcome]]:
    with one_thread():
        return {
            mode: [
                evaluate_question(corpus, encoder, settings, q, mode, reranker, abstention)
                for q in tqdm(questions, desc=f"eval {mode}", unit="q", disable=not progress)
            ]
            for mode in modes
        }


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Calibration:
    mode: str
    rule: str  # "learned" (a probability threshold) or "threshold" (on the support score)
    max_false_abstention: float
    threshold: float
    calibration_ids: tuple[str, ...]
    held_out_ids: tuple[str, ...]
    calibration: dict[str, float | None]
    held_out: dict[str, float | None]
    held_out_at_current: dict[str, float | None]
    current_threshold: float


def in_calibration_part(question_id: str) -> bool:
    """A fixed split: a question is in the calibration part when its id hashes even."""
    return int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % 2 == 0


def choose_threshold(answerable_support: Sequence[float], max_false_abstention: float) -> float:
    """The highest threshold (rounded down to two decimals) that refuses at most
    ``max_false_abstention`` of the answerable questions (see :mod:`eval.threshold`)."""
    import numpy as np

    from eval.threshold import choose_threshold as highest

    finite = [s for s in answerable_support if math.isfinite(s)]
    raw = highest(np.array(finite, dtype=np.float64), max_false_abstention)
    return math.floor(raw * 100) / 100


def _abstention_only(outcomes: Sequence[Outcome], threshold: float) -> dict[str, float | None]:
    m = summarize(outcomes, threshold, rank_scores=_no_rank(outcomes))
    return {k: m[k] for k in ("abstention_recall", "abstention_precision", "false_abstention")}


def _no_rank(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Placeholder ranking scores, for summaries that only need the abstention metrics."""
    from eval.metrics import RANK_METRICS

    return {m: {o.id: 0.0 for o in outcomes} for m in RANK_METRICS}


def calibrate(
    outcomes: Sequence[Outcome],
    mode: str,
    rule: str,
    max_false_abstention: float = MAX_FALSE_ABSTENTION,
) -> Calibration:
    """Choose the threshold on the calibration part; report abstention on the held-out part.

    Outcomes hold margins over the mode's current threshold, so the shift is chosen on the
    margins and the threshold reported is the current one plus that shift."""
    calib = [o for o in outcomes if in_calibration_part(o.id)]
    held = [o for o in outcomes if not in_calibration_part(o.id)]
    shift = choose_threshold([o.support for o in calib if o.answerable], max_false_abstention)
    current = outcomes[0].threshold if outcomes else 0.0
    return Calibration(
        mode=mode,
        rule=rule,
        max_false_abstention=max_false_abstention,
        threshold=round(current + shift, 4),
        calibration_ids=tuple(o.id for o in calib),
        held_out_ids=tuple(o.id for o in held),
        calibration=_abstention_only(calib, shift),
        held_out=_abstention_only(held, shift),
        held_out_at_current=_abstention_only(held, 0.0),
        current_threshold=round(current, 4),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _metrics_json(metrics: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: _round(metrics.get(k)) for k in ALL_METRICS}


def status_json(outcome: Outcome, threshold: float) -> dict[str, Any]:
    status = question_status(outcome, threshold)
    return {
        "category": outcome.category,
        "answerable": outcome.answerable,
        "r1": status.r1,
        "hit": status.hit,
        "abstained": status.abstained,
        "right": status.right(outcome.answerable),
        "rank": first_gold_rank(outcome) if outcome.answerable else None,
        "iou": round(span_iou(outcome, threshold), 4) if outcome.answerable else None,
        "support": round(outcome.support, 4) if math.isfinite(outcome.support) else None,
    }


def build_report(
    outcomes: Mapping[str, Sequence[Outcome]],
    threshold: float,
    meta: Mapping[str, Any],
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """The JSON report: per mode, overall and per-category metrics, Recall@k curve, and every
    question's status (what ``--check`` compares)."""
    modes: dict[str, Any] = {}
    questions: dict[str, Any] = {}
    for mode, items in outcomes.items():
        summary: Summary = summarize_by_category(items, threshold)
        modes[mode] = {
            "overall": _metrics_json(summary.overall),
            "by_category": {
                c: _metrics_json(summary.by_category[c])
                for c in CATEGORIES
                if c in summary.by_category
            },
            "counts": summary.counts,
            "denominators": {
                "all": len(items),
                "answerable": sum(1 for o in items if o.answerable),
                "unanswerable": sum(1 for o in items if not o.answerable),
                "refused": sum(1 for o in items if abstains(o, threshold)),
            },
            "recall_curve": {str(k): round(v, 4) for k, v in recall_curve(items, CURVE_KS).items()},
        }
        questions[mode] = {o.id: status_json(o, threshold) for o in items}
    # The targets are read on the reported half: the questions no threshold was chosen on.
    reported: dict[str, Any] = {}
    for mode, items in outcomes.items():
        held = [o for o in items if not in_calibration_part(o.id)]
        if held:
            reported[mode] = _metrics_json(summarize_by_category(held, threshold).overall)
    report: dict[str, Any] = {
        "meta": dict(meta),
        "modes": modes,
        "reported_half": reported,
        "questions": questions,
        "targets": target_rows(reported),
    }
    if calibration is not None:
        report["calibration"] = calibration_json(calibration)
    return report


def calibration_json(c: Calibration) -> dict[str, Any]:
    return {
        "mode": c.mode,
        "rule": c.rule,
        "max_false_abstention": c.max_false_abstention,
        "threshold": c.threshold,
        "current_threshold": c.current_threshold,
        "split": "sha256(id) even -> calibration, odd -> held out",
        "n_calibration": len(c.calibration_ids),
        "n_held_out": len(c.held_out_ids),
        "calibration": {k: _round(v) for k, v in c.calibration.items()},
        "held_out": {k: _round(v) for k, v in c.held_out.items()},
        "held_out_at_current": {k: _round(v) for k, v in c.held_out_at_current.items()},
    }


def _meets(value: float | None, op: str, target: float) -> bool:
    if value is None:
        return False
    return value >= target - 1e-9 if op == ">=" else value <= target + 1e-9


def target_rows(overall: Mapping[str, Mapping[str, float | None]]) -> list[dict[str, Any]]:
    rows = []
    for (mode, metric), (op, target) in TARGETS.items():
        value = overall.get(mode, {}).get(metric)
        rows.append(
            {
                "mode": mode,
                "metric": metric,
                "op": op,
                "target": target,
                "value": value,
                "met": _meets(value, op, target),
            }
        )
    return rows


# --------------------------------------------------------------------------- baseline/check


#: What each metric is a share of (its denominator in the report).
DENOMINATOR = {
    "quote_exactness": "all",
    "abstention_recall": "unanswerable",
    "abstention_precision": "refused",
}


def metric_tolerance(metric: str, denominators: Mapping[str, int], tolerance: float) -> float:
    """The tolerated change: ``tolerance``, but never less than
    :data:`TOLERATED_QUESTIONS` questions' worth (a flipped question out of 40 unanswerable
    ones is noise, not a regression); none for quote exactness."""
    if metric == "quote_exactness":
        return 0.0
    n = denominators.get(DENOMINATOR.get(metric, "answerable"), 0)
    worth = math.ceil(TOLERATED_QUESTIONS * 10_000 / n) / 10_000 if n else 0.0
    return max(tolerance, worth)


def make_baseline(report: Mapping[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Per mode and metric: the value, a floor (or a ceiling for lower-is-better metrics) and
    the tolerated drop; per question its status.

    The floor is the current value minus the tolerance (at least
    :data:`TOLERATED_QUESTIONS` questions' worth, see :func:`metric_tolerance`), so that no
    single flipped question fails the gate; quote exactness has floor 1.0 and no tolerance
    in every mode. The issue's targets are reported beside the figures, not gated."""
    modes: dict[str, dict[str, dict[str, Any]]] = {}
    for mode, data in report["modes"].items():
        entries: dict[str, dict[str, Any]] = {}
        for metric, value in data["overall"].items():
            if value is None:
                continue
            lower = metric in LOWER_IS_BETTER
            tol = metric_tolerance(metric, data.get("denominators", {}), tolerance)
            bound = value + tol if lower else value - tol
            target = TARGETS.get((mode, metric))
            if metric == "quote_exactness":
                bound = EXACT_FLOOR
            entry = {"value": value, "tolerance": tol}
            entry["ceiling" if lower else "floor"] = round(bound, 4)
            if target is not None:
                entry["target"] = f"{target[0]} {target[1]}"
            entries[metric] = entry
        modes[mode] = entries
    return {
        "meta": {
            "created": report["meta"].get("date"),
            "command": report["meta"].get("command"),
            "model": report["meta"].get("model"),
            "abstain_threshold": report["meta"].get("abstain_threshold"),
            "questions": report["meta"].get("questions"),
        },
        "modes": modes,
        "questions": {
            mode: {
                qid: {k: s[k] for k in ("category", "answerable", "r1", "hit", "abstained")}
                for qid, s in statuses.items()
            }
            for mode, statuses in report["questions"].items()
        },
    }


@dataclass(frozen=True)
class Change:
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


def _describe(status: Mapping[str, Any]) -> str:
    if not status.get("answerable", True):
        return "abstained" if status["abstained"] else "answered"
    parts = [
        "R@1" if status["r1"] else "not R@1",
        "hit" if status["hit"] else ("abstained" if status["abstained"] else "miss"),
    ]
    return ", ".join(parts)


def _right(status: Mapping[str, Any]) -> bool:
    qs = QuestionStatus(r1=status["r1"], hit=status["hit"], abstained=status["abstained"])
    return qs.right(bool(status.get("answerable", True)))


def check_against_baseline(baseline: Mapping[str, Any], report: Mapping[str, Any]) -> CheckResult:
    """Failures (a metric below its floor or dropped by more than its tolerance) and the
    questions whose result changed, in either direction."""
    result = CheckResult()
    for mode, entries in baseline["modes"].items():
        current = report["modes"].get(mode)
        if current is None:
            result.failures.append(f"{mode}: mode missing from this run")
            continue
        for metric, entry in entries.items():
            value = current["overall"].get(metric)
            label = f"{mode} {metric}"
            if value is None:
                result.failures.append(f"{label}: no value in this run (nothing to count)")
                continue
            tol = entry.get("tolerance", DEFAULT_TOLERANCE)
            if metric in LOWER_IS_BETTER:
                ceiling = entry.get("ceiling", entry["value"] + tol)
                if value > ceiling + 1e-9:
                    result.failures.append(f"{label} = {value:.4f} is above its ceiling {ceiling}")
                elif value > entry["value"] + tol + 1e-9:
                    result.failures.append(
                        f"{label} = {value:.4f} rose by more than {tol} from {entry['value']}"
                    )
            else:
                floor = entry.get("floor", entry["value"] - tol)
                if value < floor - 1e-9:
                    result.failures.append(f"{label} = {value:.4f} is below its floor {floor}")
                elif value < entry["value"] - tol - 1e-9:
                    result.failures.append(
                        f"{label} = {value:.4f} dropped by more than {tol} from {entry['value']}"
                    )
    for mode, before_all in baseline.get("questions", {}).items():
        after_all = report["questions"].get(mode, {})
        for qid, before in before_all.items():
            after = after_all.get(qid)
            if after is None or _right(before) == _right(after):
                continue
            result.changes.append(
                Change(
                    mode=mode,
                    question=qid,
                    category=before.get("category", ""),
                    before=_describe(before),
                    after=_describe(after),
                    fixed=_right(after),
                )
            )
    return result


def format_check(result: CheckResult, questions: Mapping[str, EvalQuestion] | None = None) -> str:
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
    baseline: Mapping[str, Any],
    report: Mapping[str, Any],
    questions: Mapping[str, EvalQuestion] | None = None,
) -> tuple[int, str]:
    """The exit code (0 passed, 1 failed) and the text ``rag eval --check`` prints."""
    result = check_against_baseline(baseline, report)
    return (0 if result.ok else 1), format_check(result, questions)


# --------------------------------------------------------------------------- output


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def metrics_table(
    rows: Iterable[tuple[str, Mapping[str, float | None]]],
    first: str,
    metrics: Sequence[str] = ALL_METRICS,
    counts: Mapping[str, int] | None = None,
) -> list[str]:
    head = [first, *(["n"] if counts is not None else []), *(LABELS.get(m, m) for m in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for name, values in rows:
        cells = [name]
        if counts is not None:
            cells.append(str(counts.get(name, "")))
        cells.extend(_fmt(values.get(m)) for m in metrics)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def text_table(report: Mapping[str, Any]) -> str:
    """The one table printed after a run: every mode, every overall metric."""
    names = ["mode", *(LABELS[m] for m in ALL_METRICS)]
    widths = [max(8, len(n)) for n in names]
    lines = ["  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    for mode, data in report["modes"].items():
        cells = [mode, *(_fmt(data["overall"].get(m)) for m in ALL_METRICS)]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def calibration_markdown(c: Mapping[str, Any]) -> list[str]:
    rows = [
        ("calibration part, chosen threshold", c["calibration"]),
        ("held-out part, chosen threshold", c["held_out"]),
        (f"held-out part, current default {c['current_threshold']}", c["held_out_at_current"]),
    ]
    keys = ("abstention_recall", "abstention_precision", "false_abstention")
    learned = c.get("rule") == "learned"
    score = (
        "learned probability (see the learned abstention section)" if learned else "support score"
    )
    where = (
        f"It is the `threshold` of `rag/abstention/{c['mode']}.json`; the shipped value is "
        "the one `rag eval --learn-abstention` chose with the model (below), on the same "
        "tuning half; this section shows what a threshold pushed to the false-abstention "
        "limit would do instead."
        if learned
        else f"Setting line: `abstain_threshold: float = Field({c['threshold']:.2f}, ...)` in "
        f"`rag/settings.py` (or `RAG_ABSTAIN_THRESHOLD={c['threshold']:.2f}`)."
    )
    return [
        f"Measured by `rag eval --calibrate` (and by every full `rag eval`), in {c['mode']} "
        "mode, on the outcomes of the run above. The set is split by hashing "
        f"each question id (sha256, even: calibration, odd: held out): "
        f"{c['n_calibration']} questions to choose on, {c['n_held_out']} to report on. The "
        f"threshold is the highest {score} that keeps false abstentions on the "
        f"calibration part's answerable questions at or below "
        f"{c['max_false_abstention']:.0%}.",
        "",
        f"Chosen threshold: **{c['threshold']:.4g}** (current: {c['current_threshold']}). {where}",
        "",
        *metrics_table(rows, "part", keys),
    ]


def failing_questions(
    report: Mapping[str, Any], mode: str, questions: Mapping[str, EvalQuestion]
) -> list[str]:
    statuses = report["questions"].get(mode, {})
    wrong = [(qid, s) for qid, s in statuses.items() if not s["right"]]
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
            f"| {qid} | {half} | {s['category']} | {text} | {s['rank'] or '–'} | {_describe(s)} |"
        )
    return lines


def markdown_report(
    report: Mapping[str, Any], questions: Mapping[str, EvalQuestion], plot_name: str | None
) -> str:
    meta = report["meta"]
    lines = [
        f"## Question set `{meta['questions']}`",
        "",
        f"Command: `{meta['command']}` — run {meta['date']}, model `{meta['model']}`, "
        f"abstention thresholds {describe_thresholds(meta['abstain_threshold'])} (learned "
        "probability where `rag/abstention/<mode>.json` applies, else support), answer `top_k` "
        f"{meta['answer_top_k']}, ranking depth {RANKING_DEPTH}.",
        "",
        f"Questions: `{meta['questions']}` — {meta['n_questions']} questions "
        f"({', '.join(f'{c} {n}' for c, n in meta['categories'].items())}) about "
        f"{', '.join(f'`{d}`' for d in meta['documents'])}, all indexed together.",
        "",
        *metrics_table(((m, d["overall"]) for m, d in report["modes"].items()), "mode"),
        "",
    ]
    if plot_name:
        lines += [f"![Paragraph Recall@k per retrieval mode]({plot_name})", ""]
    half = report.get("reported_half", {})
    if half:
        lines += [
            "### Reported half",
            "",
            "The same metrics on the reported half only (question ids hashing odd): every "
            "threshold, including the learned abstention, was chosen on the other half.",
            "",
            *metrics_table(half.items(), "mode"),
            "",
        ]
    cpu = meta.get("cpu", {})
    if cpu:
        lines += [f"CPU: {cpu.get('model', '?')}; flags {', '.join(cpu.get('flags', []))}.", ""]
    if report["targets"]:
        lines += [
            "### Targets (issue 14, reported half)",
            "",
            "| mode | metric | target | measured | met |",
            "|---|---|---|---:|---|",
        ]
    for row in report["targets"]:
        lines.append(
            f"| {row['mode']} | {row['metric']} | {row['op']} {row['target']} | "
            f"{_fmt(row['value'])} | {'yes' if row['met'] else '**no**'} |"
        )
    lines += [
        "",
        "Regression gate: `rag eval --check` reruns the set and compares it with its "
        "baseline (`eval/baseline.json` for this set, `eval/baseline-squad.json` for the "
        "stand-in set), which holds per mode and metric the value, a floor (the value minus "
        "the tolerance; a ceiling for false abstention) and the tolerance (0.02, but at least "
        f"{TOLERATED_QUESTIONS} questions' worth of the metric, so one question that flips on "
        "another CPU cannot fail it); quote exactness must stay 1.0 in every mode. The "
        "reranker runs with exact integer arithmetic and questions are encoded in float32, so "
        "the figures are the same on CPUs with and without AVX-512 VNNI. It exits 1 when a "
        "metric falls below its floor, and lists the questions whose result "
        "changed. `rag eval --update-baseline` rewrites the baseline.",
        "",
    ]
    for mode, data in report["modes"].items():
        lines += [f"### By category: {mode}", ""]
        lines += metrics_table(data["by_category"].items(), "category", counts=data["counts"])
        lines.append("")
    for mode in report["questions"]:
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
breadth. Both are gated by `rag eval --check`.

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
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    for name, body in sections.items():
        text = replace_section(text, name, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def plot_recall(report: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for mode, data in report["modes"].items():
        curve = data["recall_curve"]
        ks = sorted(int(k) for k in curve)
        ax.plot(ks, [curve[str(k)] for k in ks], marker="o", label=mode)
    ax.set_xlabel("k (paragraphs returned)")
    ax.set_ylabel("paragraph Recall@k")
    ax.set_xticks(list(CURVE_KS))
    lowest = min(v for d in report["modes"].values() for v in d["recall_curve"].values())
    ax.set_ylim(max(0.0, math.floor((lowest - 0.05) * 10) / 10), 1.005)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"Own question set ({report['meta']['n_answerable']} answerable questions)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- one call


@dataclass(frozen=True)
class SetRun:
    qset: QuestionSet
    outcomes: dict[str, list[Outcome]]
    settings: Settings


def run_set(
    qset: QuestionSet,
    encoder: Encoder,
    settings: Settings,
    modes: Sequence[str],
    cache_dir: Path,
    *,
    progress: bool = False,
    reranker: Reranker | None = None,
    abstention: Mapping[str, AbstentionModel] | None = None,
) -> SetRun:
    corpus = open_eval_corpus(
        list(qset.documents.values()),
        encoder,
        settings,
        index_dir_for(cache_dir, encoder),
        progress=progress,
    )
    outcomes = run_questions(
        qset.questions,
        corpus,
        encoder,
        settings,
        modes,
        progress=progress,
        reranker=reranker,
        abstention=abstention,
    )
    return SetRun(qset=qset, outcomes=outcomes, settings=settings)


def mode_thresholds(outcomes: Mapping[str, Sequence[Outcome]]) -> dict[str, float]:
    """The threshold each mode applied to its confidence score."""
    return {m: round(items[0].threshold, 4) for m, items in outcomes.items() if items}


def describe_thresholds(thresholds: Any) -> str:
    if isinstance(thresholds, Mapping):
        return ", ".join(f"{m} {t}" for m, t in thresholds.items())
    return str(thresholds)


def cpu_description() -> dict[str, Any]:
    """The CPU the figures were measured on: its model name and the instruction sets that
    change int8 and float kernels (AVX2, FMA, AVX-512, VNNI)."""
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
    return {"model": model, "flags": [f for f in wanted if f in flags]}


def report_meta(run: SetRun, command: str, encoder: Encoder) -> dict[str, Any]:
    questions = run.qset.questions
    categories = {c: sum(1 for q in questions if q.category == c) for c in CATEGORIES}
    path = run.qset.path
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "model": encoder.name,
        "abstain_threshold": mode_thresholds(run.outcomes),
        "answer_top_k": run.settings.top_k,
        "default_mode": run.settings.retrieval_mode,
        "questions": str(shown),
        "n_questions": len(questions),
        "n_answerable": sum(1 for q in questions if q.answerable),
        "categories": categories,
        "documents": sorted(run.qset.documents),
        "modes": list(run.outcomes),
        "cpu": cpu_description(),
        "split": "sha256(id) even: tuning half (thresholds chosen here); odd: reported half",
    }
