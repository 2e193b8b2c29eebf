"""Who said what (rag/attribution.py) and its scorer (eval/attribution.py).

The tests marked ``slow`` use the real spaCy pipeline (en_core_web_sm 3.8.0, an installed
package) on the seed article and on the labelled set; the rest test the pure logic: the speaker
registry and a hand-built parse through the :class:`~rag.attribution.Parser` seam.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.types import Document, DocumentMeta, Span
from rag import attribution as attr
from rag.attribution import Entity, Parse, Speaker, Token, resolve_speaker
from rag.chunk import chunk_document
from rag.load import load_document

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "data" / "sasse-coalition-of-the-willing.txt"
BENCHMARKS = REPO.parent / "shared" / "benchmarks"

slow = pytest.mark.slow


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def parser() -> attr.SpacyParser:
    return attr.load()


@pytest.fixture(scope="module")
def seed() -> Document:
    if not SEED.is_file():
        pytest.skip("the seed article is not in data/")
    return load_document(SEED)


@pytest.fixture(scope="module")
def seed_result(seed: Document, parser: attr.SpacyParser) -> attr.DocumentAttribution:
    return attr.analyse(seed, chunk_document(seed), parser)


def _at(doc: Document, result: attr.DocumentAttribution, opening: str) -> attr.Attribution:
    start = doc.text.index(opening)
    return next(a for a in result.attributions if a.sentence.start == start)


def _text(doc: Document, span: Span | None) -> str:
    return "" if span is None else doc.text[span.start : span.end]


@slow
def test_merz_sentences_are_attributed_to_friedrich_merz(seed, seed_result) -> None:
    spoke = _at(seed, seed_result, "The German chancellor, Friedrich Merz")
    assert (spoke.voice, spoke.speaker) == ("reported", "Friedrich Merz")
    assert spoke.mention == Span(2028, 2042)
    assert _text(seed, spoke.mention) == "Friedrich Merz"
    assert _text(seed, spoke.content) == (
        "the possible involvement of German troops in securing a ceasefire"
    )
    assert _text(seed, spoke.cue) == "spoke"

    added = _at(seed, seed_result, "He added that")
    assert (added.voice, added.speaker, added.resolved) == ("reported", "Friedrich Merz", True)
    assert added.mention == Span(2142, 2144) and _text(seed, added.mention) == "He"
    assert _text(seed, added.content) == (
        "they could only be stationed in Nato countries bordering Ukraine and that any such "
        "decision would require the approval of the German parliament"
    )


@slow
def test_other_reported_positions_in_the_seed_article(seed, seed_result) -> None:
    putin = _at(seed, seed_result, "President Putin thinks")
    assert (putin.voice, putin.speaker, _text(seed, putin.mention)) == (
        "reported",
        "Putin",
        "Putin",
    )
    assert _text(seed, putin.content).startswith("time is on his side")
    ukraine = _at(seed, seed_result, "So far, only Ukraine")
    assert (ukraine.speaker, _text(seed, ukraine.content)) == ("Ukraine", "such willingness")
    pair = _at(seed, seed_result, "As part of the multinational force")
    assert (pair.speaker, _text(seed, pair.mention)) == ("UK and France", "UK and France")
    assert _text(seed, pair.content).startswith("their willingness to station troops")


@slow
def test_sentences_without_another_speaker_are_the_authors_voice(seed, seed_result) -> None:
    reported = [a for a in seed_result.attributions if a.voice == "reported"]
    assert len(reported) == 5
    for opening in (
        "An end to Russia’s war",
        "He thus made a series of assumptions",  # about Merz, not by him
        "While the term “coalition of the willing”",  # "it ... signals": the term, no speaker
        "There is no ceasefire in place",  # "Russia does not want" sits in a later clause
    ):
        a = _at(seed, seed_result, opening)
        assert (a.voice, a.speaker, a.mention) == ("author", "Gwendolyn Sasse", None)
        assert a.content == a.sentence


@slow
def test_a_participle_reports_what_its_subject_said(parser) -> None:
    text = (
        "William Shirley, the governor of the Province of Massachusetts Bay, was particularly "
        "forceful, stating that British colonists would not be safe as long as the French "
        "were present. The harbour froze, leaving the boats stranded."
    )
    doc = Document(id="shirley", text=text)
    first, second = attr.analyse(doc, chunk_document(doc), parser).attributions
    assert (first.voice, first.speaker) == ("reported", "William Shirley")
    assert _text(doc, first.content) == (
        "British colonists would not be safe as long as the French were present"
    )
    assert second.voice == "author"  # "leaving" reports nothing


@slow
def test_one_attribution_per_chunker_sentence_with_exact_spans(seed, seed_result) -> None:
    sentences = [s for c in chunk_document(seed) for s in c.sentences]
    assert [a.sentence for a in seed_result.attributions] == sentences
    for a in seed_result.attributions:
        _check_spans(seed, a)


@slow
def test_the_seed_speakers_resolve_by_name_surname_title_and_author(seed_result) -> None:
    speakers = seed_result.speakers
    merz = resolve_speaker("Merz", speakers)
    assert merz is not None and merz.name == "Friedrich Merz" and merz.statements == 2
    assert resolve_speaker("the German chancellor", speakers) is merz
    assert resolve_speaker("Friedrich Merz", speakers) is merz
    assert resolve_speaker("President Putin", speakers).name == "Putin"  # type: ignore[union-attr]
    assert resolve_speaker("France", speakers).name == "UK and France"  # type: ignore[union-attr]
    author = resolve_speaker("the author", speakers)
    assert author is not None and author.kind == "author" and author.name == "Gwendolyn Sasse"
    assert resolve_speaker("Sasse", speakers) is author
    assert resolve_speaker("Macron", speakers) is None


def _check_spans(doc: Document, a: attr.Attribution) -> None:
    n = len(doc.text)
    assert 0 <= a.sentence.start < a.sentence.end <= n
    assert a.sentence.start <= a.content.start < a.content.end <= a.sentence.end
    assert (
        doc.text[a.content.start : a.content.end].strip()
        == doc.text[a.content.start : a.content.end]
    )
    if a.voice == "author":
        assert a.mention is None and a.content == a.sentence
    else:
        assert a.mention is not None and a.speaker
        assert a.sentence.start <= a.mention.start < a.mention.end <= a.sentence.end
    if a.cue is not None:
        assert a.sentence.start <= a.cue.start < a.cue.end <= a.sentence.end


NAMES = ["Angela Merkel", "The government", "He", "She", "Critics", "Nato", "They", "It", "I"]
CUES = ["said that", "warned that", "thinks", "added that", "argued that", "spoke about", "wants"]
WORDS = st.text(alphabet="abcdefghij “”\"',.;:—-()é", min_size=0, max_size=40)


@slow
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(NAMES), st.sampled_from(CUES), WORDS, st.booleans()),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", "Jane Doe"]),
)
def test_span_invariants_hold_on_generated_articles(parser, parts, author) -> None:
    text = ""
    for name, cue, words, new_paragraph in parts:
        text += ("\n\n" if new_paragraph and text else " " if text else "") + (
            f"{name} {cue} {words or 'peace'}."
        )
    doc = Document(id="generated", text=text, meta=DocumentMeta(author=author))
    chunks = chunk_document(doc)
    result = attr.analyse(doc, chunks, parser)
    assert [a.sentence for a in result.attributions] == [s for c in chunks for s in c.sentences]
    for a in result.attributions:
        _check_spans(doc, a)
        if a.voice == "author":
            assert a.speaker == (author or "the author")
    assert sum(s.kind == "author" for s in result.speakers) == 1


@slow
def test_the_scorer_meets_its_floor_on_the_labelled_set(tmp_path) -> None:
    """`rag eval attribution` scores every labelled part, writes report.md's section and the
    JSON from the same run (they show the same figures, and the shipped JSON is this run's),
    and the figures stay above their floors."""
    import argparse
    import json

    from eval import cli
    from eval.attribution import PARTS, REPORT

    if not (BENCHMARKS / "retrieval_bench" / "corpus.jsonl").is_file():
        pytest.skip(f"external benchmarks not found at {BENCHMARKS} (../shared missing)")
    command = argparse.ArgumentParser(prog="rag")
    cli.register(command.add_subparsers(dest="command", required=True))
    args = command.parse_args(["eval", "attribution", "--out-dir", str(tmp_path)])
    assert args.func(args) == 0
    parts = json.loads((tmp_path / "attribution.json").read_text(encoding="utf-8"))["parts"]
    assert set(parts) == set(PARTS)  # every labelled part is scored
    report_md = (tmp_path / "report.md").read_text(encoding="utf-8")
    for part, m in parts.items():
        assert f"| {part} | {m['sentences']} | {m['gold_reported']} |" in report_md
    assert json.loads(REPORT.read_text(encoding="utf-8"))["parts"] == parts
    seed, standins = parts["seed"], parts["standins"]
    assert seed["sentences"] == 25 and seed["gold_reported"] == 5
    assert seed["precision"] == 1.0 and seed["recall"] == 1.0
    assert seed["content_exact"] == 1.0
    assert standins["gold_reported"] >= 150
    # measured 0.974 / 0.950 / 0.926 (docs/attribution.md); the floor sits a little below
    assert standins["precision"] >= 0.94
    assert standins["recall"] >= 0.92
    assert standins["content_token_f1"] >= 0.90
    assert standins["unaligned"] == 0
    # The second development part (informal text among it; versions 4 and 5 were written on
    # its rounds): version 5 measured 0.842 / 0.828 / 0.893, a floor two sentences below
    dev = parts["dev"]
    assert dev["gold_reported"] == 116 and dev["unaligned"] == 0
    assert dev["precision"] >= 0.82
    assert dev["recall"] >= 0.81
    assert dev["content_token_f1"] >= 0.87
    # The first held-out part (labelled after version 3; version 5 read its changes against
    # version 4, so it is no longer held out): version 5 measured 0.862 / 0.800 / 0.886
    heldout = parts["heldout"]
    assert heldout["gold_reported"] == 70 and heldout["unaligned"] == 0
    assert heldout["precision"] >= 0.83
    assert heldout["recall"] >= 0.77
    assert heldout["content_token_f1"] >= 0.85
    # The second held-out part (labelled before version 5; version 6 was written while
    # reading its misses, so it is development now): version 5 measured 0.738 / 0.676,
    # version 6 0.853 / 0.817 / 0.825
    heldout2 = parts["heldout2"]
    assert heldout2["gold_reported"] == 71 and heldout2["unaligned"] == 0
    assert heldout2["precision"] >= 0.82
    assert heldout2["recall"] >= 0.79
    # The third held-out part (drawn and labelled before version 6 was written; version 7 was
    # written while reading its misses, so it is development now): version 5 measured 0.657 /
    # 0.667, version 6 0.697 / 0.697, version 7 0.906 / 0.879
    heldout3 = parts["heldout3"]
    assert heldout3["gold_reported"] == 66 and heldout3["unaligned"] == 0
    assert heldout3["precision"] >= 0.87
    assert heldout3["recall"] >= 0.84
    # The fourth held-out part (drawn and labelled before version 7 was written; version 8 was
    # written while reading its misses, so it is development now): versions 6 and 7 both
    # measured 0.821 / 0.848, version 8 0.925 / 0.935
    heldout4 = parts["heldout4"]
    assert heldout4["gold_reported"] == 92 and heldout4["unaligned"] == 0
    assert heldout4["precision"] >= 0.90
    assert heldout4["recall"] >= 0.91
    # The fifth held-out part (drawn and labelled before version 8 was written; version 9 was
    # written while reading its misses, so it is development now): version 7 measured 0.800 /
    # 0.800, version 8 0.840 / 0.800, version 9 0.938 / 0.894
    heldout5 = parts["heldout5"]
    assert heldout5["gold_reported"] == 85 and heldout5["unaligned"] == 0
    assert heldout5["precision"] >= 0.91
    assert heldout5["recall"] >= 0.87
    # The sixth and seventh held-out parts (drawn and labelled before versions 9 and 10 were
    # written; their errors never read): on the sixth, version 7 measured 0.773 / 0.800 and
    # versions 8 to 10 0.798 / 0.788; on the seventh, versions 9 and 10 0.879 / 0.833. Floors
    # two sentences below, so that a rule that overfits the development parts at their cost
    # fails.
    heldout6 = parts["heldout6"]
    assert heldout6["gold_reported"] == 85 and heldout6["unaligned"] == 0
    assert heldout6["precision"] >= 0.77
    assert heldout6["recall"] >= 0.76
    heldout7 = parts["heldout7"]
    assert heldout7["gold_reported"] == 96 and heldout7["unaligned"] == 0
    assert heldout7["precision"] >= 0.85
    assert heldout7["recall"] >= 0.81


# --------------------------------------------------------------------------- pure logic


MERZ = Speaker(
    "Friedrich Merz", ("Friedrich Merz", "German chancellor", "Merz"), "person", "seed", 2
)
PUTIN = Speaker("Vladimir Putin", ("President Putin", "Putin", "Vladimir Putin"), "person")
GOV = Speaker("German government", ("German government",), "organisation")
AUTHOR = Speaker(
    "Gwendolyn Sasse",
    ("Gwendolyn Sasse", "Sasse", "author", "the author", "the writer", "writer"),
    "author",
)
SPEAKERS = (MERZ, PUTIN, GOV, AUTHOR)


@pytest.mark.parametrize(
    ("question_name", "expected"),
    [
        ("Merz", MERZ),
        ("friedrich merz", MERZ),
        ("Friedrich Merz's", MERZ),
        ("the German chancellor", MERZ),
        ("Chancellor Friedrich Merz", MERZ),
        ("Putin", PUTIN),
        ("President Putin", PUTIN),
        ("the German government", GOV),
        ("the author", AUTHOR),
        ("the writer", AUTHOR),
        ("Gwendolyn Sasse", AUTHOR),
        ("Sasse", AUTHOR),
        ("Macron", None),
        ("", None),
        ("the", None),
    ],
)
def test_resolve_speaker_aliases(question_name: str, expected: Speaker | None) -> None:
    assert resolve_speaker(question_name, SPEAKERS) == expected


def test_resolve_speaker_refuses_an_ambiguous_name() -> None:
    other = Speaker("Anna Merz", ("Anna Merz", "Merz"), "person")
    assert resolve_speaker("Merz", (MERZ, other)) is None
    assert resolve_speaker("Anna Merz", (MERZ, other)) == other


def _tok(i, start, text, lemma, pos, dep, head, ent="", tag="") -> Token:
    return Token(i, start, start + len(text), text, lemma, pos, tag, dep, head, ent)


class FakeParser:
    """Returns hand-built parses for known sentences: the seam the pure-logic tests use."""

    def __init__(self, parses: dict[str, Parse]) -> None:
        self.parses = parses

    def parse(self, texts):
        return [self.parses[t] for t in texts]


S1 = "Olaf Scholz spoke about troops."
S2 = "He added that they stay."
S3 = "Peace is far away."
FAKE = FakeParser(
    {
        S1: Parse(
            (
                _tok(0, 0, "Olaf", "olaf", "PROPN", "compound", 1, "PERSON"),
                _tok(1, 5, "Scholz", "scholz", "PROPN", "nsubj", 2, "PERSON"),
                _tok(2, 12, "spoke", "speak", "VERB", "ROOT", 2),
                _tok(3, 18, "about", "about", "ADP", "prep", 2),
                _tok(4, 24, "troops", "troop", "NOUN", "pobj", 3),
                _tok(5, 30, ".", ".", "PUNCT", "punct", 2),
            ),
            (Entity(0, 2, "PERSON"),),
        ),
        S2: Parse(
            (
                _tok(0, 0, "He", "he", "PRON", "nsubj", 1),
                _tok(1, 3, "added", "add", "VERB", "ROOT", 1),
                _tok(2, 9, "that", "that", "SCONJ", "mark", 4),
                _tok(3, 14, "they", "they", "PRON", "nsubj", 4),
                _tok(4, 19, "stay", "stay", "VERB", "ccomp", 1),
                _tok(5, 23, ".", ".", "PUNCT", "punct", 1),
            )
        ),
        S3: Parse(
            (
                _tok(0, 0, "Peace", "peace", "NOUN", "nsubj", 1),
                _tok(1, 6, "is", "be", "AUX", "ROOT", 1),
                _tok(2, 9, "far", "far", "ADV", "advmod", 3),
                _tok(3, 13, "away", "away", "ADV", "advmod", 1),
                _tok(4, 17, ".", ".", "PUNCT", "punct", 1),
            )
        ),
    }
)


def test_rules_on_a_hand_built_parse_resolve_the_pronoun() -> None:
    text = f"{S1} {S2}\n\n{S3}"
    doc = Document(id="d", text=text, meta=DocumentMeta(author="A. Writer"))
    result = attr.analyse(doc, chunk_document(doc), FAKE)
    first, second, third = result.attributions
    assert (first.speaker, _text(doc, first.mention), _text(doc, first.content)) == (
        "Olaf Scholz",
        "Olaf Scholz",
        "troops",
    )
    assert (second.speaker, _text(doc, second.mention), _text(doc, second.content)) == (
        "Olaf Scholz",
        "He",
        "they stay",
    )
    assert (third.voice, third.speaker, third.paragraph) == ("author", "A. Writer", 2)
    scholz = resolve_speaker("Scholz", result.speakers)
    assert scholz is not None and scholz.statements == 2
    assert resolve_speaker("the writer", result.speakers).name == "A. Writer"  # type: ignore[union-attr]


def test_a_pronoun_with_no_antecedent_is_reported_but_unresolved() -> None:
    doc = Document(id="d", text=S2)
    (only,) = attr.analyse(doc, chunk_document(doc), FAKE).attributions
    assert (only.voice, only.speaker, only.resolved) == ("reported", "He", False)


def test_indexing_parses_beside_the_encoder_and_keeps_the_order() -> None:
    """rag.build.embed_documents parses in a thread while the encoder runs: the chunks come
    back in order, with the voices a parse alone gives, and each vector is its text's."""
    from fakes import FakeEncoder

    from rag.build import ATTRIBUTION_BATCH, embed_documents

    # more documents than one parse batch, so that batches are joined in order
    docs = [
        Document(id=f"d{i:02d}", text=f"{S1} {S2}\n\n{S3}" if i % 2 else S3, meta=DocumentMeta())
        for i in range(ATTRIBUTION_BATCH + 3)
    ]
    encoder = FakeEncoder()
    got = embed_documents(docs, encoder, progress=False, parser=FAKE)
    per_doc = [
        (d, chunk_document(d, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens))
        for d in docs
    ]
    expected = [c for voiced in attr.with_voices(per_doc, FAKE) for c in voiced]
    assert list(got.chunks) == expected
    assert [v.speaker for c in got.chunks for v in c.voices if v.voice == "reported"] == [
        "Olaf Scholz",
        "Olaf Scholz",
    ] * ((ATTRIBUTION_BATCH + 3) // 2)
    texts = {d.id: d.text for d in docs}
    sentences = [texts[c.doc_id][s.start : s.end] for c in expected for s in c.sentences]
    assert (got.chunk_vectors == encoder.encode([c.text for c in expected])).all()
    assert (got.sentence_vectors == encoder.encode(sentences)).all()


def test_a_parse_that_fails_fails_the_indexing() -> None:
    from fakes import FakeEncoder

    from rag.build import embed_documents

    class Broken:
        def parse(self, texts):
            raise RuntimeError("parser broke")

    doc = Document(id="d", text=S1, meta=DocumentMeta())
    with pytest.raises(RuntimeError, match="parser broke"):
        embed_documents([doc], FakeEncoder(), progress=False, parser=Broken())


def test_nothing_is_loaded_at_import_time() -> None:
    import subprocess
    import sys

    code = "import sys, rag.attribution; print('spacy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "False"


def test_the_printed_table_takes_precision_and_recall_from_the_counts() -> None:
    from eval.attribution import PartScore, render

    # 56/66 = 0.84848...: the summary keeps 0.8485, which a second rounding would print 0.849
    held = PartScore(sentences=214, gold_reported=70, predicted_reported=66, correct=56)
    assert held.summary()["precision"] == 0.8485
    assert "   0.848   0.800" in render({"heldout": held})
