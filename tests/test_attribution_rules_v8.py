"""Attribution version 8 (rag/attribution.py): statements in the passive with their maker, a
"that" clause the parser hangs under a preposition, a name apposed to a description, "according
to" a practice or a coefficient, what a named body or author made, chains of clauses before
semicolons, an adverbial first clause, a tag that splits a quotation, a participle of a
conjoined verb, "so" before a reporting verb, titles of what is written, requests, clubs and
agreeing to do something. Sentences written for these tests, not taken from the labelled sets;
the real spaCy pipeline and the shipped WordNet noun list. Each fails on version 7, except the
guards (marked), which show that a rule stops where it should."""

from __future__ import annotations

import pytest
from test_attribution_support import run, voice

from rag import attribution as attr

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser() -> attr.SpacyParser:
    return attr.shared_parser()


# --------------------------------------------------------------------------- cues


def test_a_statement_in_the_passive_is_its_makers(parser) -> None:
    doc, said = run(
        "A ban on plastic bags in the old town was announced by the city council in May.", parser
    )
    assert voice(doc, said[0]) == (
        "reported",
        "city council",
        "city council",
        "A ban on plastic bags in the old town",
    )


def test_a_passive_that_names_the_one_spoken_to_does_not_report(parser) -> None:
    # guard
    _doc, said = run("The new stadium is mentioned by several guidebooks as a landmark.", parser)
    assert said[0].voice == "author"


def test_a_claim_to_land_in_the_passive_is_no_statement(parser) -> None:
    # guard
    _doc, said = run("The islands off the northern coast were claimed by both kingdoms.", parser)
    assert said[0].voice == "author"


def test_a_that_clause_after_a_prepositional_phrase_is_the_content(parser) -> None:
    doc, said = run(
        "Ortega said in interviews that the new logo was picked to please fans.", parser
    )
    assert voice(doc, said[0]) == (
        "reported",
        "Ortega",
        "Ortega",
        "the new logo was picked to please fans",
    )


def test_a_request_reports(parser) -> None:
    doc, said = run(
        "Since the rains had delayed the harvest, Okafor requested that the market open later.",
        parser,
    )
    assert said[0].voice == "reported" and said[0].speaker == "Okafor"
    assert doc.text[said[0].content.start : said[0].content.end].startswith("the market open")


def test_so_before_a_reporting_verb_makes_the_clause_before_it_a_cause(parser) -> None:
    _doc, said = run(
        "As they formed the first club in the town, no ball could be found, so Ames and Dorsey "
        "wrote home for help and received a ball.",
        parser,
    )
    assert said[0].voice == "author"


def test_a_quoted_title_of_what_is_written_is_no_quotation(parser) -> None:
    _doc, said = run(
        'At age twelve, Ruiz wrote a short story called "The Blue Door" and began to send it '
        "to magazines.",
        parser,
    )
    assert said[0].voice == "author"


def test_agreeing_to_do_something_is_an_act(parser) -> None:
    _doc, said = run(
        "However, under the terms of the Water Act, Parliament agreed to devolve some of its "
        "powers over local rivers to the regional councils.",
        parser,
    )
    assert said[0].voice == "author"


def test_agreeing_that_something_is_so_reports(parser) -> None:
    # guard
    doc, said = run("Both ministers agreed that the border should stay open.", parser)
    assert said[0].voice == "reported"
    assert doc.text[said[0].content.start : said[0].content.end] == "the border should stay open"


def test_a_participle_of_a_conjoined_verb_reports(parser) -> None:
    doc, said = run(
        'The mayor had first opposed the plan, but later relented, saying "We have to give '
        'it a chance."',
        parser,
    )
    assert said[0].voice == "reported" and said[0].speaker == "mayor"
    assert "We have to give it a chance" in doc.text[said[0].content.start : said[0].content.end]


# --------------------------------------------------------------------------- speakers


def test_a_name_apposed_to_a_description_speaks(parser) -> None:
    _doc, said = run(
        "Following the publication of the report, the officer heading Operation Lantern, "
        'Detective Superintendent Alan Reeve said the two firms had been in a "close, corrupt '
        'relationship".',
        parser,
    )
    assert said[0].voice == "reported"
    assert said[0].speaker == "Alan Reeve"


def test_a_club_speaks(parser) -> None:
    _doc, said = run(
        "Ajax signed two young strikers. In June, the club announced a new shirt sponsor.", parser
    )
    assert said[1].voice == "reported"
    assert said[1].speaker in {"Ajax", "club", "the club"}


def test_according_to_a_practice_is_the_authors(parser) -> None:
    for sentence in (
        "According to Lutheran piety, believers ought to pray before icons.",
        "Part of the wave is transmitted into the ground and part of it is reflected, according "
        "to the Fresnel coefficients.",
    ):
        _doc, said = run(sentence, parser)
        assert said[0].voice == "author", sentence


def test_according_to_what_a_named_body_or_author_made_reports(parser) -> None:
    # guard
    for sentence, speaker in (
        ("According to NHS guidelines, nurses should wash their hands often.", "NHS"),
        ("According to research by Nadia Petrov, most of the birds return in spring.", "Petrov"),
    ):
        _doc, said = run(sentence, parser)
        assert said[0].voice == "reported", sentence
        assert speaker in said[0].speaker, sentence


# --------------------------------------------------------------------------- clauses


def test_a_first_clause_the_semicolon_ends_inside_is_the_authors(parser) -> None:
    _doc, said = run(
        "The winning bidder was Tom Hale, the owner of a local bakery; asked about the price, "
        "Hale stated that the painting was worth every penny.",
        parser,
    )
    assert said[0].voice == "author"


def test_an_adverbial_first_clause_before_a_semicolon_is_the_authors(parser) -> None:
    _doc, said = run(
        "As in France, at the time novels were seen as a danger to young readers; critics "
        'stated that "none of them has any merit".',
        parser,
    )
    assert said[0].voice == "author"


def test_a_reporting_clause_before_two_semicolons_is_the_first(parser) -> None:
    _doc, said = run(
        "Anna Weiss put forward an explanation in 2001 that the name is derived from the Latin "
        "*pons, meaning 'bridge', and suggested that this was the name of the ford; from this, "
        "the town gained its arms; this view remains disputed.",
        parser,
    )
    assert said[0].voice == "reported"
    assert said[0].speaker == "Anna Weiss"


def test_a_tag_that_splits_a_quotation_reports_both_parts(parser) -> None:
    doc, said = run(
        'Martin Luther wrote often. "Quite suddenly, and while I was busy with other things," '
        'he wrote to his friend Link, "the Lord has given me a wife."',
        parser,
    )
    assert said[1].voice == "reported"
    assert said[1].speaker == "Martin Luther"
    content = doc.text[said[1].content.start : said[1].content.end]
    assert content.startswith("Quite suddenly") and content.endswith("given me a wife")
    assert "he wrote" in content  # one span from the first part to the second
