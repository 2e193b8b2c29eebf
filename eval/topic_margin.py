"""Where the who-said-what topic margin comes from: ``rag eval topic-margin``.

A question that asks for a speaker's words on something ("What did Merz say about the US?")
is answered from the speaker's statements only when their best statement speaks to it: read
against the question without the name, it must score within a margin of the best sentence
the question finds without the narrowing (:func:`rag.pipeline.topic_gap`,
:data:`rag.speakers.TOPIC_MARGIN`). This command measures that gap on the question set's
speaker questions (those with a ``speaker``): the answerable ones (the speaker's statement is
the answer) should fall within the margin, the unanswerable ones (the speaker said nothing on
it) outside. It reports, per mode and half, the lowest gap among the first and the highest
among the second, the margin the tuning half alone would choose (halfway between them), and
how the shipped margin sorts each half. Questions whose gap was not measured (the speaker's
statement is in the best passage, the question names no topic, or the speaker's own reading
was already refused) are counted apart: the margin does not decide them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from eval.calibration import in_calibration_part
from eval.dataset import EvalQuestion
from eval.runner import one_thread
from rag.engine import Engine, Request
from rag.retrieve import Corpus
from rag.settings import AnswerMode
from rag.speakers import TOPIC_MARGIN

MODES: tuple[AnswerMode, ...] = ("fast", "accurate")


@dataclass(frozen=True)
class Gap:
    id: str
    mode: AnswerMode
    tuning: bool  # in the tuning half (question id hashing even)
    answerable: bool  # the speaker's statement answers it
    gap: float | None  # None: not measured (the margin did not decide it)


def measure(
    questions: Sequence[EvalQuestion],
    corpus: Corpus,
    engine: Engine,
    modes: Sequence[AnswerMode] = MODES,
    *,
    progress: bool = False,
) -> list[Gap]:
    """Each speaker question asked as the service asks it (abstention on), in each mode, with
    the topic gap its answer recorded (the ``topic_gap`` signal)."""
    asked = [q for q in questions if q.speaker]
    out = []
    with one_thread():
        for q in tqdm(asked, desc="topic gaps", unit="q", disable=not progress):
            for mode in modes:
                result = engine.ask(Request(q.question, mode=mode, history=q.previous), corpus)
                gap = result.signals.get("topic_gap")
                out.append(Gap(q.id, mode, in_calibration_part(q.id), q.answerable, gap))
    return out


@dataclass(frozen=True)
class Summary:
    mode: AnswerMode
    part: str
    answerable: int  # measured
    unanswerable: int  # measured
    not_measured: int
    lowest_answerable: float | None
    highest_unanswerable: float | None
    #: Measured questions the shipped margin sorts rightly (answerable within it,
    #: unanswerable outside).
    right: int

    @property
    def separated(self) -> bool:
        low, high = self.lowest_answerable, self.highest_unanswerable
        return low is None or high is None or high < low


def summarise(gaps: Sequence[Gap], margins: Mapping[str, float] = TOPIC_MARGIN) -> list[Summary]:
    rows = []
    for mode in dict.fromkeys(g.mode for g in gaps):
        for part, keep in (("tuning", True), ("reported", False)):
            mine = [g for g in gaps if g.mode == mode and g.tuning == keep]
            yes = [g.gap for g in mine if g.answerable and g.gap is not None]
            no = [g.gap for g in mine if not g.answerable and g.gap is not None]
            margin = margins[mode]
            rows.append(
                Summary(
                    mode=mode,
                    part=part,
                    answerable=len(yes),
                    unanswerable=len(no),
                    not_measured=sum(1 for g in mine if g.gap is None),
                    lowest_answerable=min(yes) if yes else None,
                    highest_unanswerable=max(no) if no else None,
                    right=sum(1 for v in yes if v >= margin) + sum(1 for v in no if v < margin),
                )
            )
    return rows


def chosen_margin(summary: Summary) -> float | None:
    """The margin the tuning half chooses: halfway between its lowest answerable gap and its
    highest unanswerable one (None when one side has no measured question, or they
    overlap)."""
    low, high = summary.lowest_answerable, summary.highest_unanswerable
    if low is None or high is None or high >= low:
        return None
    return (low + high) / 2


def markdown(gaps: Sequence[Gap], command: str, date: str) -> str:
    def num(v: float | None) -> str:
        return "–" if v is None or not math.isfinite(v) else f"{v:.2f}"

    lines = [
        "## Who said what: the topic margin (issue 18)",
        "",
        f"Command: `{command}` — run {date}. The question set's speaker questions asked as the "
        "service asks them; the gap is how far the speaker's best statement, read against the "
        "question without the name, scores below the best sentence found without the "
        "narrowing (cross-encoder logits in accurate mode, support in fast mode; "
        "`rag.pipeline.topic_gap`). Answerable questions should be within the margin, "
        "unanswerable ones outside; questions the margin does not decide (the statement is in "
        "the best passage, the question names no topic, or the speaker's reading was refused "
        "first) are counted as not measured. The chosen margin is halfway between the tuning "
        "half's lowest answerable gap and highest unanswerable one.",
        "",
        "| mode | half | answerable measured | unanswerable measured | not measured | lowest "
        "answerable gap | highest unanswerable gap | separated | shipped margin | right at "
        "the shipped margin | margin the tuning half chooses |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for s in summarise(gaps):
        chosen = num(chosen_margin(s)) if s.part == "tuning" else ""
        measured = s.answerable + s.unanswerable
        lines.append(
            f"| {s.mode} | {s.part} | {s.answerable} | {s.unanswerable} | {s.not_measured} | "
            f"{num(s.lowest_answerable)} | {num(s.highest_unanswerable)} | "
            f"{'yes' if s.separated else 'no'} | {TOPIC_MARGIN[s.mode]:.2f} | "
            f"{s.right}/{measured} | {chosen} |"
        )
    return "\n".join(lines) + "\n"
