"""The development set's draw (eval/attribution_draw.py) reproduces its candidates: every
labelled sentence of eval/attribution/dev.jsonl is one the command draws, and no drawn
paragraph is one of the stand-in or held-out parts'."""

from __future__ import annotations

import json

import pytest

from eval.attribution_draw import CORPUS, LABELS, ROUNDS, draw_round

pytestmark = pytest.mark.slow


def test_the_dev_set_is_what_the_draw_gives() -> None:
    if not CORPUS.is_file():
        pytest.skip(f"external benchmarks not found at {CORPUS} (../shared missing)")
    drawn = {n: draw_round(n) for n in sorted(ROUNDS)}
    candidates = {json.dumps([c["source"], c["sentence"]]) for r in drawn.values() for c in r}
    labelled = [json.loads(line) for line in (LABELS / "dev.jsonl").read_text("utf-8").splitlines()]
    assert len(labelled) == 358
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates for g in labelled)
    others = {
        json.loads(line)["source"]
        for part in ("standins", "heldout")
        for line in (LABELS / f"{part}.jsonl").read_text("utf-8").splitlines()
    }
    assert not others & {c["source"] for r in drawn.values() for c in r}
    # the rounds draw different paragraphs (that the draw repeats, the labelled sentences
    # being among today's candidates shows)
    first, second = ({c["source"] for c in drawn[n]} for n in (1, 2))
    assert not first & second
