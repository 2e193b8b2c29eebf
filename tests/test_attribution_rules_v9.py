"""Attribution version 9 (rag/attribution.py): "according to" inside a name, a closing
"according to" after a semicolon, websites by their address, a passive with its own subject and
agent, "thought" as a noun, a publication's own title, a person apposed to a title, groups named
by "many" or "some", "assume" with a clause, and names the recogniser runs into a verb. Sentences
written for these tests, not taken from the labelled sets; the real spaCy pipeline. Each fails on
version 8, except the guards (marked), which show that a rule stops where it should."""

from __future__ import annotations

import pytest
from test_attribution_support import run, voice

from rag import attribution as attr

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser() -> attr.SpacyParser:
    return attr.shared_parser()


# --------------------------------------------------------------------------- according to


def test_according_to_inside_a_name_is_no_source(parser) -> None:
    _doc, said = run(
        "The account given in the Koran is nearly identical with that in the Gospel according "
        "to Mark, and both of these begin with the visit of an angel.",
        parser,
    )
    assert said[0].voice == "author"


def test_a_closing_according_to_after_a_semicolon_covers_only_its_clause(parser) -> None:
    _doc, said = run(
        "The browser was released in 1998; it has never been widely used, with less than 3% of "
        "the market in 2010 according to StatCounter.",
        parser,
    )
    assert said[0].voice == "author"


def test_according_to_set_off_by_commas_after_a_noun_reports(parser) -> None:
    # guard
    _doc, said = run(
        "A better account of the crisis, according to Keynes, is the fall in demand after the war.",
        parser,
    )
    assert said[0].voice == "reported" and said[0].speaker == "Keynes"


def test_a_website_by_its_address_speaks(parser) -> None:
    doc, said = run(
        "According to glassdoor.com, graduates of the college earn a median salary of $90,000.",
        parser,
    )
    assert voice(doc, said[0]) == (
        "reported",
        "glassdoor.com",
        "glassdoor.com",
        "graduates of the college earn a median salary of $90,000",
    )


# --------------------------------------------------------------------------- cues


def test_a_passive_with_its_own_subject_and_agent_is_no_report(parser) -> None:
    _doc, said = run(
        "Several islands are disputed by their neighbours: Corsica is claimed by Genoa, the "
        "Balearic Islands are claimed by Aragon, and Malta is claimed by Sicily.",
        parser,
    )
    assert said[0].voice == "author"


def test_a_passive_whose_subject_is_the_one_told_reports(parser) -> None:
    # guard
    doc, said = run("He was told by his doctor that he should rest for a month.", parser)
    assert said[0].voice == "reported" and said[0].speaker == "his doctor"
    assert doc.text[said[0].content.start : said[0].content.end] == "he should rest for a month"


def test_thought_as_a_noun_reports_nothing(parser) -> None:
    _doc, said = run(
        "Beginning roughly in the 15th century in Venice, and later spreading through Italy "
        "with the growth of trade, a Revival of letters challenged old doctrines in art and "
        "theology, with the Greek texts and thought bringing about rediscovery of ancient Roman "
        "law.",
        parser,
    )
    assert said[0].voice == "author"


def test_assuming_that_something_is_so_is_a_belief(parser) -> None:
    doc, said = run(
        "Hartmann assumed the white powder was the oxide of a new element and heated it to "
        "obtain a metal.",
        parser,
    )
    assert said[0].voice == "reported" and said[0].speaker == "Hartmann"
    content = doc.text[said[0].content.start : said[0].content.end]
    assert content.startswith("the white powder was the oxide")


def test_assuming_an_office_is_no_belief(parser) -> None:
    # guard
    _doc, said = run("Hartmann assumed office in 1921 and served two terms.", parser)
    assert said[0].voice == "author"


# --------------------------------------------------------------------------- speakers


def test_a_publication_speaks_by_its_own_title(parser) -> None:
    _doc, said = run(
        "His book Nature and Grace (1902) defended parts of the new theory, and argued that the "
        "old teachers had said much the same.",
        parser,
    )
    assert said[0].voice == "reported" and said[0].speaker == "Nature and Grace"


def test_a_person_apposed_to_a_title_speaks(parser) -> None:
    _doc, said = run(
        "The EU's Special Envoy for the Sahel and West Africa, Maria Lindqvist, who left the "
        "post a month later, met the leaders of Mali in June and stated that she hoped the "
        "talks would succeed.",
        parser,
    )
    assert said[0].voice == "reported" and said[0].speaker == "Maria Lindqvist"


def test_many_and_some_speak_for_a_group(parser) -> None:
    for sentence, speaker in (
        (
            "Many believed he was giving up his last chance to lead the party; his rival was "
            "considered the likely winner.",
            "Many",
        ),
        ("The treaty, signed in 1920, was believed by some to end the dispute.", "some"),
    ):
        _doc, said = run(sentence, parser)
        assert said[0].voice == "reported", sentence
        assert said[0].speaker == speaker, sentence


def test_a_name_run_into_the_verb_after_it_ends_before_the_verb(parser) -> None:
    """The recogniser sometimes takes the verb after a name into it ("Julian became"); the
    parse the rules read ends the name before the verb (here the entity is set by hand on a
    real spaCy document, since whether the model errs depends on the sentence)."""
    from spacy.tokens import Span as SpacySpan

    doc = parser.nlp("Julian became emperor in 361.")
    doc.ents = [SpacySpan(doc, 0, 2, label="PERSON")]
    parse = attr._from_spacy(doc)
    assert [(e.start, e.end, e.label) for e in parse.entities] == [(0, 1, "PERSON")]
    assert [t.ent for t in parse.tokens[:2]] == ["PERSON", ""]
