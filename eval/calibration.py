"""The fixed tuning/reported split of a question set, and the abstention calibration on it.

A question is in the tuning (calibration) half when its id hashes even
(:func:`in_calibration_part`); thresholds are chosen there and reported on the other half.
:func:`calibrate` chooses the highest threshold that keeps false abstentions on the tuning
half's answerable questions at or below :data:`MAX_FALSE_ABSTENTION`
(``rag eval own --calibrate``, and every full run of the seed-article set).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eval.metrics import ABSTENTION_METRICS, RANK_METRICS, Outcome, summarize

MAX_FALSE_ABSTENTION = 0.05

#: How the split is described in the calibration's JSON.
CALIBRATION_SPLIT = "sha256(id) even -> calibration, odd -> held out"


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


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and the abstention metrics it gives on each part."""

    mode: str
    rule: str  # "learned" (a probability threshold) or "threshold" (on the support score)
    max_false_abstention: float
    threshold: float
    calibration_ids: tuple[str, ...]
    held_out_ids: tuple[str, ...]
    calibration: Mapping[str, float | None]
    held_out: Mapping[str, float | None]
    held_out_at_current: Mapping[str, float | None]
    current_threshold: float


def _no_rank(outcomes: Sequence[Outcome]) -> dict[str, dict[str, float]]:
    """Placeholder ranking scores, for summaries that only need the abstention metrics."""
    return {m: {o.id: 0.0 for o in outcomes} for m in RANK_METRICS}


def abstention_only(outcomes: Sequence[Outcome], threshold: float) -> dict[str, float | None]:
    """The abstention metrics of ``outcomes`` at ``threshold`` (a margin over the mode's)."""
    m = summarize(outcomes, threshold, rank_scores=_no_rank(outcomes))
    return {k: m[k] for k in ABSTENTION_METRICS}


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
        calibration=abstention_only(calib, shift),
        held_out=abstention_only(held, shift),
        held_out_at_current=abstention_only(held, 0.0),
        current_threshold=round(current, 4),
    )
