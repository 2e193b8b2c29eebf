"""The labels' reproducibility (eval/attribution_agreement.py): two relabellings of a sample of
the second held-out set, compared with its labels. Pure logic and the shipped label files; no
parser."""

from __future__ import annotations

import json
import random

import pytest

from eval.attribution import LABELS, read_labels
from eval.attribution_agreement import agreement, kappa, main


def test_kappa_is_cohens() -> None:
    assert kappa(["a", "b", "a"], ["a", "b", "a"]) == 1.0
    assert kappa(["a", "a"], ["a", "a"]) == 1.0  # both constant and equal
    # the textbook case: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o 0.7, p_e 0.5
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert kappa(a, b) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        kappa([], [])


def test_the_relabelled_sample_is_the_seeded_draw_of_the_held_out_set() -> None:
    held = [
        json.loads(line) for line in (LABELS / "heldout2.jsonl").read_text("utf-8").splitlines()
    ]
    drawn = random.Random(20261212).sample(held, 80)
    for name in ("x", "y"):
        golds = read_labels(LABELS / "agreement" / f"{name}.jsonl")
        assert [(g.source, [g.sentence.start, g.sentence.end]) for g in golds] == [
            (r["source"], r["sentence"]) for r in drawn
        ]


def test_the_labels_are_reproducible_under_the_guide(capsys) -> None:
    pairs = agreement()
    assert set(pairs) == {"heldout2 / x", "heldout2 / y", "x / y"}
    for m in pairs.values():
        assert m["sentences"] == 80
        assert m["same_voice"] >= 78 and m["kappa"] >= 0.9
        assert m["same_speaker"] == m["both_reported"] >= 27
    assert main([]) == 0
    assert "heldout2 / x" in capsys.readouterr().out


@pytest.mark.slow  # loads the spaCy parser
def test_the_module_scores_the_same_against_identical_labellings() -> None:
    from eval.attribution_agreement import module_scores

    scores = module_scores()
    assert set(scores) == {"heldout2", "x", "y"}
    # the first relabelling agrees with the held-out labels on every sentence (above)
    assert scores["x"] == scores["heldout2"]
    precision, recall = scores["heldout2"]
    assert 0.0 < recall <= precision < 1.0
