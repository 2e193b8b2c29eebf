"""The draws (eval/attribution_draw.py) reproduce their candidates: every labelled sentence of
eval/attribution/dev.jsonl (rounds 1 to 3), of eval/attribution/heldout2.jsonl (round 4), of
eval/attribution/heldout3.jsonl (round 5), of eval/attribution/heldout4.jsonl (round 6), of
eval/attribution/heldout5.jsonl (round 7), of eval/attribution/heldout6.jsonl (round 8) and of
eval/attribution/heldout7.jsonl (round 9) is one the command draws, and no drawn paragraph is
one of the stand-in or first held-out parts'."""

from __future__ import annotations

import json

import pytest

from eval.attribution_draw import CORPUS, LABELS, ROUNDS, draw_round

pytestmark = pytest.mark.slow


def test_the_dev_set_is_what_the_draw_gives() -> None:
    if not CORPUS.is_file():
        pytest.skip(f"external benchmarks not found at {CORPUS} (../shared missing)")
    drawn = {n: draw_round(n) for n in sorted(ROUNDS)}

    def candidates(rounds: tuple[int, ...]) -> set[str]:
        return {json.dumps([c["source"], c["sentence"]]) for n in rounds for c in drawn[n]}

    def labelled(part: str) -> list[dict[str, object]]:
        lines = (LABELS / f"{part}.jsonl").read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines]

    dev, held, third = labelled("dev"), labelled("heldout2"), labelled("heldout3")
    fourth, fifth, sixth = labelled("heldout4"), labelled("heldout5"), labelled("heldout6")
    seventh = labelled("heldout7")
    assert len(dev) == 555 and len(held) == 211 and len(third) == 214 and len(fourth) == 209
    assert len(fifth) == 208 and len(sixth) == 209 and len(seventh) == 209
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((1, 2, 3)) for g in dev)
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((4,)) for g in held)
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((5,)) for g in third)
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((6,)) for g in fourth)
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((7,)) for g in fifth)
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((8,)) for g in sixth)
    assert all(json.dumps([g["source"], g["sentence"]]) in candidates((9,)) for g in seventh)
    assert {c["part"] for c in drawn[4]} == {"heldout2"}
    assert {c["part"] for c in drawn[5]} == {"heldout3"}
    assert {c["part"] for c in drawn[6]} == {"heldout4"}
    assert {c["part"] for c in drawn[7]} == {"heldout5"}
    assert {c["part"] for c in drawn[8]} == {"heldout6"}
    assert {c["part"] for c in drawn[9]} == {"heldout7"}
    others = {g["source"] for part in ("standins", "heldout") for g in labelled(part)}
    assert not others & {c["source"] for r in drawn.values() for c in r}
    # the rounds draw different paragraphs (that the draw repeats, the labelled sentences
    # being among today's candidates shows)
    sources = [{c["source"] for c in drawn[n]} for n in sorted(drawn)]
    assert sum(len(s) for s in sources) == len(set().union(*sources))
