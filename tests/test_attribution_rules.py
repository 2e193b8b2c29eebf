"""The general reporting constructions of attribution version 3 (rag/attribution.py), one test
per rule, on sentences written for these tests (not taken from the labelled set).

They run the real spaCy pipeline (en_core_web_sm 3.8.0, an installed package). Where a rule
exists to survive a parser or tagger error that the pipeline does not make on a short sentence
(a name the tagger misses, two subjects across a semicolon), the test edits the real parse to
show that error: :class:`Edited` changes the dependencies or entities of named sentences.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_attribution_support import Edited, index_of, run, text_of, voice

from rag import attribution as attr
from rag.attribution import Parse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser() -> attr.SpacyParser:
    return attr.shared_parser()


# --------------------------------------------------------------------------- the main clause


def test_a_reporting_clause_hung_under_a_later_clause_is_the_main_clause(parser) -> None:
    # the parser makes the quotation's second clause ("hence it is unsafe") the root and the
    # reporting clause its complement; the reporting clause opens the sentence all the same
    doc, (quoted,) = run(
        'The philosopher Anna Berg stated that "great crimes are often committed by pious men; '
        'hence it is unsafe to judge a man by his prayers."',
        parser,
    )
    assert voice(doc, quoted) == (
        "reported",
        "Anna Berg",
        "Anna Berg",
        "great crimes are often committed by pious men; hence it is unsafe to judge a man by "
        "his prayers",
    )
    # outside quotation marks, a semicolon or "however" hands the sentence back to the author
    doc, (lopez,) = run(
        "The economist Maria Lopez argued that inflation would fall by spring; however, prices "
        "kept rising through the summer.",
        parser,
    )
    assert voice(doc, lopez) == (
        "reported",
        "Maria Lopez",
        "Maria Lopez",
        "inflation would fall by spring",
    )
    doc, (tariff,) = run(
        "Officials announced a new tariff on steel; the two countries signed the agreement a "
        "month later.",
        parser,
    )
    assert voice(doc, tariff) == ("reported", "Officials", "Officials", "a new tariff on steel")


def test_a_subordinate_or_parenthetical_reporting_clause_stays_the_authors(parser) -> None:
    _doc, (aside,) = run(
        "While many towns blamed the river (the farmers blamed the mill for the flooding), the "
        "damage was probably caused by the storm.",
        parser,
    )
    assert aside.voice == "author"


def test_a_phrase_fronted_before_the_reporting_verb_is_not_its_content(parser) -> None:
    doc, (knox,) = run(
        "Against the teaching of his church that the faithful are saved by their deeds, Knox "
        "wrote that believers receive grace freely; that grace not only comes from God but is "
        "God himself.",
        parser,
    )
    assert voice(doc, knox) == ("reported", "Knox", "Knox", "believers receive grace freely")


def test_a_cleft_sentence_reports_its_focus(parser) -> None:
    doc, (cleft,) = run(
        "It was the prime minister who announced the new tax, saying that the deficit had to "
        "be closed.",
        parser,
    )
    assert voice(doc, cleft)[:3] == ("reported", "prime minister", "the prime minister")
    assert text_of(doc, cleft.content).startswith("the new tax")


# --------------------------------------------------------------------------- tags after the content


def test_an_inverted_tag_whose_content_was_parsed_as_an_adverbial_clause(parser) -> None:
    doc, (ruiz,) = run(
        "Since the flood, the council and local charities have rebuilt most of the homes, said "
        "Ana Ruiz, the mayor of the town.",
        parser,
    )
    assert voice(doc, ruiz) == (
        "reported",
        "Ana Ruiz",
        "Ana Ruiz",
        "Since the flood, the council and local charities have rebuilt most of the homes",
    )


def test_a_tag_inside_or_after_a_quotation(parser) -> None:
    doc, (around, middle, after) = run(
        '"We lost the vote," Ana Ruiz wrote, "but the fight for the park goes on." '
        "The war, the minister said, will end soon. "
        "The war will end soon, the minister said.",
        parser,
    )
    assert voice(doc, around) == (
        "reported",
        "Ana Ruiz",
        "Ana Ruiz",
        'We lost the vote," Ana Ruiz wrote, "but the fight for the park goes on',
    )
    assert voice(doc, middle) == (
        "reported",
        "minister",
        "the minister",
        "The war, the minister said, will end soon",
    )
    # the speaker after the content is no part of it
    assert voice(doc, after)[3] == "The war will end soon"


# --------------------------------------------------------------------------- the cue


def test_coordinated_verbs_share_their_object(parser) -> None:
    doc, (groups,) = run(
        "Several consumer groups reported and published serious flaws in the new safety rules.",
        parser,
    )
    assert voice(doc, groups)[:3] == (
        "reported",
        "Several consumer groups",
        "Several consumer groups",
    )
    assert text_of(doc, groups.content).startswith("serious flaws")


def test_writing_with_an_object_is_creation_not_report(parser) -> None:
    _doc, (hymns,) = run("In his youth he wrote several hymns on the psalms.", parser)
    assert hymns.voice == "author"


# --------------------------------------------------------------------------- the speaker


def test_of_two_subjects_the_one_nearest_the_verb_speaks(parser) -> None:
    # the parser takes the title before the colon for a second subject of "warned"
    doc, (nrc,) = run(
        "In its report: Floods, Fires and Famine in the Valley, the NRC warned of 300 deaths "
        "over the period.",
        parser,
    )
    assert voice(doc, nrc) == ("reported", "NRC", "NRC", "300 deaths over the period")


def test_two_subjects_across_a_semicolon_are_two_clauses(parser) -> None:
    text = (
        "Some critics, including followers of Adam Smith, found the plan too timid; and "
        "modern historians note the caution of its authors."
    )

    def merged(parse: Parse) -> Parse:
        # the parser's error on such sentences: the first clause's subject hangs on "note"
        critics, note = index_of(parse, "critics"), index_of(parse, "note")
        found = index_of(parse, "found")
        tokens = list(parse.tokens)
        tokens[critics] = replace(tokens[critics], head=note)
        tokens[found] = replace(tokens[found], dep="acl", head=critics)
        return replace(parse, tokens=tuple(tokens))

    _doc, (only,) = run(text, parser)
    assert only.voice == "author"
    _doc, (only,) = run(text, Edited(parser, {text: merged}))
    assert only.voice == "author"  # "note" is not the first clause's verb


def test_a_document_with_a_named_author_wins_over_its_title(parser) -> None:
    text = (
        "Author and critic Jane Holt's influential 1961 book The Death of Great Towns criticized "
        "large-scale projects which were part of a government plan."
    )

    def two_subjects(parse: Parse) -> Parse:
        # the parser's error on such sentences: the title as a second subject
        death, verb = index_of(parse, "Death"), index_of(parse, "criticized")
        tokens = list(parse.tokens)
        tokens[death] = replace(tokens[death], dep="nsubj", head=verb)
        book = index_of(parse, "book")
        tokens[book] = replace(tokens[book], dep="nsubj", head=verb)
        return replace(parse, tokens=tuple(tokens))

    _doc, (holt,) = run(text, Edited(parser, {text: two_subjects}))
    assert (holt.voice, holt.speaker) == ("reported", "Jane Holt")


def test_an_apposition_not_closed_by_a_comma_is_the_subject(parser) -> None:
    doc, (lund,) = run(
        "In a long dispute, the Harbour Authority v Lund, a local fisherman named Erik Lund "
        "claimed that the new quay blocked his moorings.",
        parser,
    )
    assert voice(doc, lund) == (
        "reported",
        "Erik Lund",
        "Erik Lund",
        "the new quay blocked his moorings",
    )


def test_a_name_with_a_place_is_one_name_up_to_its_comma(parser) -> None:
    doc, (meir,) = run(
        "Meir of Rothenburg, the rabbi who tried to help the Jews of Mainz in 1286, later "
        "blamed their plight on the emperor.",
        parser,
    )
    assert voice(doc, meir)[:3] == ("reported", "Meir of Rothenburg", "Meir of Rothenburg")


def test_a_legal_provision_is_no_speaker(parser) -> None:
    _doc, (charter,) = run("Article 12 of the charter says members must vote every year.", parser)
    assert charter.voice == "author"


def test_adherents_of_a_political_movement_can_speak(parser) -> None:
    doc, (tories,) = run("During downturns, conservatives usually argue for lower taxes.", parser)
    assert voice(doc, tories) == ("reported", "conservatives", "conservatives", "lower taxes")


def test_a_name_cut_short_by_the_tagger_runs_to_its_head(parser) -> None:
    text = (
        "According to statistics compiled by the Royal Navy Sea Rescue Unit, 1,020 sailors "
        "were rescued from the coast."
    )

    def cut(parse: Parse) -> Parse:
        # the tagger's error on long names: the entity stops at "Navy"
        ent = next(e for e in parse.entities if e.label == "ORG")
        navy = index_of(parse, "Navy")
        ents = tuple(replace(e, end=navy + 1) if e == ent else e for e in parse.entities)
        tokens = tuple(replace(t, ent="") if navy < t.i < ent.end else t for t in parse.tokens)
        return replace(parse, tokens=tokens, entities=ents)

    _doc, (rescue,) = run(text, Edited(parser, {text: cut}))
    assert (rescue.voice, rescue.speaker) == ("reported", "Royal Navy Sea Rescue Unit")


# --------------------------------------------------------------------------- pronouns


def test_a_pronoun_resolves_to_the_latest_subject_in_the_order_of_the_text(parser) -> None:
    # "Westbrook" is no entity, "Daniel Moreau" is: both are subjects, Moreau the later one
    doc, (_, insisted) = run(
        "Westbrook suffered a major setback when Daniel Moreau, a veteran who had overcome two "
        "injuries, went down with a broken wrist in the final. Despite this, he insisted he "
        "would still play in the cup.",
        parser,
    )
    assert voice(doc, insisted)[:3] == ("reported", "Daniel Moreau", "he")


def test_a_proper_noun_with_an_honorific_is_a_person(parser) -> None:
    first = "The EU fined a trader named Mr Amazon in March."
    text = f"{first} He claimed the fine was unfair."

    def untagged(parse: Parse) -> Parse:
        # the tagger's error in long sentences: no PERSON for the name
        return replace(parse, entities=tuple(e for e in parse.entities if e.label != "PERSON"))

    doc, (_, claimed) = run(text, Edited(parser, {first: untagged}))
    assert voice(doc, claimed) == ("reported", "Mr Amazon", "He", "the fine was unfair")
