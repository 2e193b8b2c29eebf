"""``rag eval topic-margin``'s arithmetic (eval/topic_margin.py): which gaps count, how the
shipped margin sorts them, and the margin the tuning half chooses. Pure logic on hand-made
gaps; the gap itself is measured on the seed article in tests/test_speakers.py."""

from __future__ import annotations

import math

from eval.topic_margin import Gap, chosen_margin, markdown, summarise
from rag.speakers import TOPIC_MARGIN


def gap(n: int, answerable: bool, value: float | None, *, tuning: bool = True) -> Gap:
    return Gap(f"q{n}", "accurate", tuning, answerable, value)


def test_the_tuning_half_chooses_halfway_between_the_two_kinds() -> None:
    gaps = [
        gap(1, True, -1.0),
        gap(2, True, -4.0),
        gap(3, False, -9.0),
        gap(4, False, -7.0),
        gap(5, True, None),  # not decided by the margin: counted apart
        gap(6, False, -20.0, tuning=False),
    ]
    tuning, reported = summarise(gaps)
    assert (tuning.part, tuning.answerable, tuning.unanswerable, tuning.not_measured) == (
        "tuning",
        2,
        2,
        1,
    )
    assert (tuning.lowest_answerable, tuning.highest_unanswerable) == (-4.0, -7.0)
    assert tuning.separated and chosen_margin(tuning) == -5.5
    # The shipped accurate margin (-6) puts -4 and -1 within, -7 and -9 outside.
    assert TOPIC_MARGIN["accurate"] == -6.0 and tuning.right == 4
    assert (reported.unanswerable, reported.right) == (1, 1)


def test_overlapping_or_one_sided_halves_choose_nothing() -> None:
    overlap = summarise([gap(1, True, -8.0), gap(2, False, -3.0)])[0]
    assert not overlap.separated and chosen_margin(overlap) is None
    assert overlap.right == 0  # -8 is outside the margin, -3 within: both wrong
    one_sided = summarise([gap(1, True, -2.0)])[0]
    assert one_sided.separated and chosen_margin(one_sided) is None


def test_the_section_shows_every_mode_and_half() -> None:
    text = markdown(
        [gap(1, True, -1.0), gap(2, False, -math.inf), gap(3, False, -9.0, tuning=False)],
        "rag eval topic-margin",
        "2026-12-07 07:00 UTC",
    )
    assert text.startswith("## Who said what: the topic margin (issue 18)")
    rows = [line for line in text.splitlines() if line.startswith("| accurate |")]
    assert [r.split(" | ")[1] for r in rows] == ["tuning", "reported"]
    assert "| -1.00 | – |" in rows[0]  # an infinite gap is shown as none
