"""Metrics over evaluated questions.

Ranking metrics (paragraph Recall@k, MRR@10, nDCG@10) come from ranx, over paragraph ids
``doc_id#n``. The span and abstention metrics are this project's own:

* **answer hit** — the returned answer span contains a gold span (same document); an
  abstention is a miss;
* **span overlap** — the best character IoU between the returned span and a gold span (0 when
  abstaining or in another document);
* **quote exactness** — share of questions whose every returned text (answer, quotes, passages)
  equals ``document.text[start:end]``; must be 1.0;
* **abstention recall / precision** — abstentions among the unanswerable questions, and the
  share of all abstentions that were on unanswerable questions; **false abstention** — the
  share of answerable questions that were refused;
* **speaker accuracy** (who said what, issue 18) — over the questions that name a speaker
  (``speaker`` in the question file): an answerable one is right when the service answers, the
  answer's speaker (``answer.speaker.name``) is the gold speaker and the answer overlaps a gold
  span; an unanswerable one (a speaker never quoted, or quoted on something else) is right
  when the service abstains.

Everything is computed overall and per category. Whether a question is refused depends on the
threshold, so outcomes keep the raw best support score and the threshold is applied here with
the pipeline's own rule (:func:`rag.quote.abstention_reason`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rag.quote import abstention_reason

RANK_METRICS: tuple[str, ...] = ("recall@1", "recall@3", "recall@5", "mrr@10", "ndcg@10")
SPAN_METRICS: tuple[str, ...] = ("answer_hit", "span_iou")
ABSTENTION_METRICS: tuple[str, ...] = (
    "abstention_recall",
    "abstention_precision",
    "false_abstention",
)
SPEAKER_METRICS: tuple[str, ...] = ("speaker_accuracy",)
ALL_METRICS: tuple[str, ...] = (
    *RANK_METRICS,
    *SPAN_METRICS,
    "quote_exactness",
    *ABSTENTION_METRICS,
    *SPEAKER_METRICS,
)
#: Metrics where a lower value is better (the rest: higher is better).
LOWER_IS_BETTER = frozenset({"false_abstention"})

Metrics = dict[str, float | None]


@dataclass(frozen=True)
class TextSpan:
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Outcome:
    """What the pipeline did with one question in one mode."""

    id: str
    category: str
    answerable: bool
    gold_paragraphs: tuple[str, ...]  # "doc_id#n"
    gold_spans: tuple[TextSpan, ...]
    ranked: tuple[str, ...]  # paragraph ids, best first, each once
    answer: TextSpan | None  # the answer span before the abstention rule is applied
    #: The answer's confidence minus the threshold its mode applies (-inf when there is no
    #: answer), so that one rule, abstain below 0, serves every mode; a calibration moves 0.
    support: float
    n_hits: int
    exact: bool  # every returned text equals the document text at its span
    threshold: float = 0.0  # the mode's own threshold on its confidence score
    #: Whose words the question asks for (its ``speaker``), None for most questions.
    gold_speaker: str | None = None
    #: Who says the answer (``answer.speaker.name``: its main sentence's speaker), or None.
    speaker: str | None = None


def abstains(outcome: Outcome, threshold: float) -> bool:
    support = outcome.support if math.isfinite(outcome.support) else -math.inf
    return outcome.answer is None or (
        abstention_reason(support, threshold, outcome.n_hits) is not None
    )


def contains(outer: TextSpan, inner: TextSpan) -> bool:
    return outer.doc_id == inner.doc_id and outer.start <= inner.start and inner.end <= outer.end


def iou(a: TextSpan, b: TextSpan) -> float:
    """Character intersection over union of two spans (0 in different documents)."""
    if a.doc_id != b.doc_id:
        return 0.0
    inter = max(0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def overlaps(a: TextSpan, b: TextSpan) -> bool:
    """Whether two spans share at least one character (same document)."""
    return a.doc_id == b.doc_id and max(a.start, b.start) < min(a.end, b.end)


def answer_hit(outcome: Outcome, threshold: float) -> bool:
    if outcome.answer is None or abstains(outcome, threshold):
        return False
    return any(contains(outcome.answer, g) for g in outcome.gold_spans)


def span_iou(outcome: Outcome, threshold: float) -> float:
    if outcome.answer is None or abstains(outcome, threshold):
        return 0.0
    answer = outcome.answer
    return max((iou(answer, g) for g in outcome.gold_spans), default=0.0)


def speaker_right(outcome: Outcome, threshold: float) -> bool:
    """Who said what: an answerable question is right when the service answers with the gold
    speaker's words (the answer's speaker is the gold speaker and the answer overlaps a gold
    span); an unanswerable one when the service abstains. Only for questions that name a
    speaker (``gold_speaker``)."""
    if outcome.gold_speaker is None:
        raise ValueError(f"{outcome.id} names no speaker")
    refused = abstains(outcome, threshold)
    if not outcome.answerable:
        return refused
    if outcome.answer is None or refused or outcome.speaker != outcome.gold_speaker:
        return False
    answer = outcome.answer
    return any(overlaps(answer, g) for g in outcome.gold_spans)


def first_gold_rank(outcome: Outcome) -> int | None:
    """1-based rank of the first gold paragraph in the ranking, or None."""
    gold = set(outcome.gold_paragraphs)
    return next((i for i, p in enumerate(outcome.ranked, start=1) if p in gold), None)


def ranking_scores(
    qrels: Mapping[str, Iterable[str]],
    runs: Mapping[str, Sequence[str]],
    metrics: Sequence[str] = RANK_METRICS,
) -> dict[str, dict[str, float]]:
    """Per-query scores ``{metric: {query id: score}}`` computed by ranx.

    ``qrels`` maps a query to its relevant ids, ``runs`` a query to its ranked ids (best
    first; a query missing from ``runs`` retrieved nothing)."""
    if not qrels:
        return {m: {} for m in metrics}
    from ranx import Qrels, Run, evaluate

    # ranx (numba) compiles its code once per string width of the ids it is given: ids of one
    # fixed width make every call share one compile (about 10 s each in a fresh environment).
    doc_key: dict[str, str] = {}
    query_key = {q: f"q{n:09d}" for n, q in enumerate(qrels)}

    def key(d: str) -> str:
        return doc_key.setdefault(d, f"d{len(doc_key):09d}")

    qrels_dict = {query_key[q]: {key(d): 1 for d in rel} for q, rel in qrels.items()}
    run_dict = {
        query_key[q]: {key(d): float(len(ranked) - i) for i, d in enumerate(ranked)}
        for q, ranked in runs.items()
        if q in query_key
    }
    for q in qrels_dict:
        run_dict.setdefault(q, {})
    run = Run.from_dict(run_dict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety notices from inside ranx
        evaluate(
            Qrels.from_dict(qrels_dict),
            run,
            list(metrics),
            make_comparable=True,
            save_results_in_run=True,
        )
    original = {k: q for q, k in query_key.items()}
    return {m: {original[q]: float(s) for q, s in run.scores[m].items()} for m in metrics}


def mean_interval(
    values: Sequence[float], confidence: float = 0.95, *, seed: int = 0
) -> tuple[float, float]:
    """A bootstrap interval (percentile, 2,000 resamples, fixed ``seed``) for the mean of
    per-question ``values``: how far a sample's figure may sit from the figure over all
    questions. A target missed by less than half the interval's width is within the sample's
    noise."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("an interval needs at least one value")
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = bootstrap(
        (data,),
        np.mean,
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(
    outcomes: Sequence[Outcome],
    threshold: float,
    rank_scores: Mapping[str, Mapping[str, float]] | None = None,
) -> Metrics:
    """All metrics over ``outcomes`` (None where a metric has no questions to count)."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    if rank_scores is None:
        rank_scores = ranking_scores(
            {o.id: o.gold_paragraphs for o in answerable}, {o.id: o.ranked for o in answerable}
        )
    result: Metrics = {m: _mean([rank_scores[m][o.id] for o in answerable]) for m in RANK_METRICS}
    result["answer_hit"] = _mean([float(answer_hit(o, threshold)) for o in answerable])
    result["span_iou"] = _mean([span_iou(o, threshold) for o in answerable])
    result["quote_exactness"] = _mean([float(o.exact) for o in outcomes])
    refused = [o for o in outcomes if abstains(o, threshold)]
    result["abstention_recall"] = _mean([float(abstains(o, threshold)) for o in unanswerable])
    result["abstention_precision"] = (
        _mean([float(not o.answerable) for o in refused]) if refused else None
    )
    result["false_abstention"] = _mean([float(abstains(o, threshold)) for o in answerable])
    result["speaker_accuracy"] = _mean(
        [float(speaker_right(o, threshold)) for o in outcomes if o.gold_speaker is not None]
    )
    return result


@dataclass(frozen=True)
class Summary:
    overall: Metrics
    by_category: dict[str, Metrics]
    counts: dict[str, int]  # questions per category, and "all"


def summarize_by_category(outcomes: Sequence[Outcome], threshold: float) -> Summary:
    """Overall metrics and the same metrics for each category (ranx is called once)."""
    answerable = [o for o in outcomes if o.answerable]
    scores = ranking_scores(
        {o.id: o.gold_paragraphs for o in answerable}, {o.id: o.ranked for o in answerable}
    )
    categories = list(dict.fromkeys(o.category for o in outcomes))
    by_category = {
        c: summarize([o for o in outcomes if o.category == c], threshold, scores)
        for c in categories
    }
    counts = {c: sum(1 for o in outcomes if o.category == c) for c in categories}
    counts["all"] = len(outcomes)
    return Summary(
        overall=summarize(outcomes, threshold, scores), by_category=by_category, counts=counts
    )


def recall_curve(outcomes: Sequence[Outcome], ks: Sequence[int]) -> dict[int, float]:
    """Paragraph Recall@k for each k (ranx), over the answerable questions."""
    answerable = [o for o in outcomes if o.answerable]
    metrics = [f"recall@{k}" for k in ks]
    scores = ranking_scores(
        {o.id: o.gold_paragraphs for o in answerable},
        {o.id: o.ranked for o in answerable},
        metrics,
    )
    return {k: _mean(list(scores[f"recall@{k}"].values())) or 0.0 for k in ks}


@dataclass(frozen=True)
class QuestionStatus:
    """Per question, what the regression check compares between runs."""

    r1: bool  # a gold paragraph ranked first
    hit: bool  # answer hit
    abstained: bool

    def right(self, answerable: bool) -> bool:
        return self.r1 and self.hit if answerable else self.abstained


def question_status(outcome: Outcome, threshold: float) -> QuestionStatus:
    return QuestionStatus(
        r1=first_gold_rank(outcome) == 1,
        hit=answer_hit(outcome, threshold),
        abstained=abstains(outcome, threshold),
    )
