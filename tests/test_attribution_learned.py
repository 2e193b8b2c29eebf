"""The pure pieces of the learned-attribution experiment (eval/attribution_learned.py): the
features of a real parse of the seed article, the grouped split, and the keep decision as the
scorer of eval/attribution.py counts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.types import Document, DocumentMeta, Span
from eval import attribution_learned as learned
from eval.attribution import Gold
from rag import attribution as attr
from rag.chunk import chunk_document
from rag.load import load_document

SEED = Path(__file__).resolve().parent.parent / "data" / "sasse-coalition-of-the-willing.txt"


@pytest.fixture(scope="module")
def seed_parsed() -> tuple[Document, attr.DocumentAttribution, list[tuple[int, Span, attr.Parse]]]:
    if not SEED.is_file():
        pytest.skip("the seed article is not in data/")
    doc = load_document(SEED)
    chunks = chunk_document(doc)
    recorder = learned.RecordingParser(attr.load())
    (result,) = attr.analyse_many([(doc, chunks)], recorder)
    (sents,) = learned.split_parses([(doc, chunks)], recorder.parses)
    return doc, result, sents


def _features_of(seed_parsed, opening: str) -> dict[str, float]:
    doc, result, sents = seed_parsed
    start = doc.text.index(opening)
    position, (_, span, parse) = next((i, s) for i, s in enumerate(sents) if s[1].start == start)
    a = next(a for a in result.attributions if a.sentence == span)
    return learned.features(parse, span, a, "seed", position)


def test_features_read_the_rules_output_and_the_parse_of_a_real_sentence(seed_parsed) -> None:
    doc, result, sents = seed_parsed
    # the recorded parses line up with the sentences the rules attributed
    assert [s for _, s, _ in sents] == [a.sentence for a in result.attributions]
    for _, span, parse in sents:
        assert parse.tokens[-1].end == len(doc.text[span.start : span.end].rstrip())

    merz = _features_of(seed_parsed, "The German chancellor, Friedrich Merz")
    assert merz["speaker=entity"] == merz["speaker_entity=PERSON"] == 1.0
    assert merz["cue=speech"] == merz["tense=past"] == 1.0
    assert merz["speaker_from_context"] == 0.0 and merz["corpus=seed"] == 1.0

    added = _features_of(seed_parsed, "He added that")
    assert added["speaker=pronoun"] == 1.0
    assert added["speaker_from_context"] == 1.0  # "Friedrich Merz", from the sentence before
    assert added["cue_clause"] == 1.0 and added["question"] == 0.0

    putin = _features_of(seed_parsed, "President Putin thinks")
    assert putin["cue=mental"] == putin["tense=present"] == 1.0


def test_the_grouped_split_never_puts_a_document_on_both_sides() -> None:
    groups = [f"doc{i // 3}" for i in range(60)]  # 20 documents of three sentences
    labels = [int(i % 7 == 0) for i in range(60)]
    folds = learned.grouped_folds(groups, labels, n_splits=5)
    assert len(folds) == 5
    tested = sorted(i for _, te in folds for i in te)
    assert tested == list(range(60))  # every row is tested exactly once
    for tr, te in folds:
        assert {groups[i] for i in tr}.isdisjoint({groups[i] for i in te})


def test_a_rejected_attribution_becomes_the_authors_voice() -> None:
    text = "Merz said that troops could go. The rest is mine."
    doc = Document(id="d", text=text, meta=DocumentMeta())
    sentence = Span(0, 31)
    gold = Gold(
        "dev", "d", "d", sentence, text[:31], "reported", ("Friedrich Merz",), None, Span(10, 30)
    )
    rules = attr.Attribution(sentence, "Merz", Span(0, 4), Span(15, 30), "reported", 1)
    row = learned.Row(gold, doc, "squad", rules, True, None, False, {"corpus=squad": 1.0})
    assert learned.right(gold, doc, rules)

    kept = learned.decide(row, keep=0.9, flag=None, keep_at=0.5, flag_at=1.01)
    assert kept is rules
    rejected = learned.decide(row, keep=0.1, flag=None, keep_at=0.5, flag_at=1.01)
    assert rejected is not None and rejected.voice == "author"
    assert not learned.right(gold, doc, rejected)
    scores = learned.tally([row, row], [kept, rejected], lambda r: r.corpus)["squad"]
    assert (scores.correct, scores.predicted_reported, scores.gold_reported) == (1, 1, 2)
