"""Attribution version 10 (rag/attribution.py): who "he", "she" and "they" refer to. "His" or
"her" before a subject carries the chain of subjects on; the possessor of a subject is a
subject; people counted in a subject ("five climate scientists") are what a later "they" can
refer to; a subject wins over later names in its own sentence, counted by sentence; and a
surname the recogniser calls an organisation is still the person named before. Sentences
written for these tests, not taken from the labelled sets; the real spaCy pipeline. Each fails
on version 9."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_attribution_support import Edited, index_of, run

from rag import attribution as attr
from rag.attribution import Entity, Parse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser() -> attr.SpacyParser:
    return attr.shared_parser()


def test_his_before_a_subject_carries_the_chain_past_later_names(parser) -> None:
    _doc, said = run(
        "Ortiz despised the United States, calling it an empire. Rallying against bankers in "
        'many of his speeches, his anger has been described as "almost furious" by Blundy and '
        "Lycett. From the late 1990s onward, his view seemed to become milder. In 2007, he "
        "argued that a single market would help everyone.",
        parser,
    )
    assert said[3].voice == "reported" and said[3].speaker == "Ortiz"


def test_the_possessor_of_a_subject_is_what_he_refers_to(parser) -> None:
    _doc, said = run(
        "Richard Harbison's purely morphological analysis in 1985 concluded that the sponges "
        "are not one group, in other words do not contain all the descendants of a single "
        "common ancestor. Instead he found that various sponge families were similar to other "
        "orders. He also suggested that the last common ancestor was small.",
        parser,
    )
    assert said[2].voice == "reported" and said[2].speaker == "Richard Harbison"


def test_people_counted_in_a_subject_are_they(parser) -> None:
    _doc, said = run(
        "In February 2010, in response to claims in the report, five climate scientists – all "
        "lead report authors – wrote in the journal Nature calling for changes to the IPCC. "
        "They suggested a range of new options, from tightening the selection of authors to "
        "dumping the IPCC in favor of a small body.",
        parser,
    )
    assert said[1].voice == "reported" and said[1].speaker == "five climate scientists"


def test_a_surname_tagged_as_an_organisation_is_the_person_named_before(parser) -> None:
    first = "The English sailor William Adams was the first Westerner to become a samurai."
    second = "The Shogun gave him two swords, and Adams also received a title from the Shogun."
    third = "He later wrote that God had provided for him."

    def adams_an_organisation(parse: Parse) -> Parse:
        # the tagger's reading in the article this comes from: the surname alone an ORG
        at = index_of(parse, "Adams")
        tokens = list(parse.tokens)
        tokens[at] = replace(tokens[at], ent="ORG")
        others = tuple(e for e in parse.entities if not e.start <= at < e.end)
        return replace(parse, tokens=tuple(tokens), entities=(*others, Entity(at, at + 1, "ORG")))

    text = f"{first} {second} {third}"
    _doc, said = run(text, Edited(parser, {second: adams_an_organisation}))
    assert said[2].voice == "reported" and said[2].speaker == "William Adams"
