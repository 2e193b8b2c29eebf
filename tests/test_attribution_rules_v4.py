"""Attribution version 4 (rag/attribution.py): unnamed people as speakers, judgements with
"consider", and guesses that report nothing. Sentences written for these tests, not taken from
the labelled sets; the real spaCy pipeline and the shipped WordNet noun list."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_attribution_support import Edited, index_of, run, voice

from rag import attribution as attr
from rag.attribution import Parse
from rag.lexicon import LEXICON, noun_kind, speaker_nouns

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parser() -> attr.SpacyParser:
    return attr.shared_parser()


# --------------------------------------------------------------------------- the lexicon


def test_the_shipped_noun_list_is_wordnets_people_and_groups() -> None:
    nouns = speaker_nouns()
    assert len(nouns) > 5000  # WordNet 3.0 has about 6,400 single-word ones
    assert LEXICON.read_text(encoding="utf-8").startswith("# Nouns whose most frequent")
    assert "Princeton University" in LEXICON.read_text(encoding="utf-8")  # the licence notice
    for person in ("mom", "landlord", "stranger", "colonist", "reviewer", "boss", "vet"):
        assert noun_kind(person) == "person", person
    for group in ("government", "police", "family", "team", "audience"):
        assert noun_kind(group) == "group", group
    # the first sense decides: a substance, an object, a device; a person first but a device
    # soon after ("calculator", and "guy", a rope: the hand list has it); a person first by
    # chance, with no frequency count ("fossil")
    for thing in ("paper", "bank", "fan", "phone", "manual", "label", "data", "calculator"):
        assert noun_kind(thing) is None, thing
    for thing in ("guy", "fossil", "monitor"):
        assert noun_kind(thing) is None, thing


# --------------------------------------------------------------------------- unnamed people


def test_people_named_by_a_common_noun_speak(parser) -> None:
    doc, said = run(
        "The guy said that the part was out of stock. My landlord insists the heating works. "
        "So mom told me about the new rules at school.",
        parser,
    )
    assert [voice(doc, a) for a in said] == [
        ("reported", "guy", "The guy", "the part was out of stock"),
        ("reported", "My landlord", "My landlord", "the heating works"),
        ("reported", "mom", "mom", "the new rules at school"),
    ]


def test_a_thing_is_still_no_speaker(parser) -> None:
    _doc, said = run("The instructions say to soak it first. The label states 100% cotton.", parser)
    assert [a.voice for a in said] == ["author", "author"]


def test_a_pronoun_can_refer_to_an_unnamed_person(parser) -> None:
    doc, (_, _, told) = run(
        "A few years ago the lady who cleans my house told me to buy a new vacuum. I let her "
        "pick it out. She recently told me that the bags were running out.",
        parser,
    )
    assert voice(doc, told) == ("reported", "lady", "She", "the bags were running out")
    doc, (_, said) = run(
        "In the game yesterday a stranger in the chat told us to farm the caves. "
        "He said that the gear can drop from silver chests.",
        parser,
    )
    assert voice(doc, said)[:3] == ("reported", "stranger in the chat", "He")


def test_the_family_named_with_the_is_no_he(parser) -> None:
    # "The Karlarks" is a family: a later "he" is the named person before them
    _doc, (_, _, thought) = run(
        "Tristan Whent read the letter from Harroway. The Karlarks won't show their faces for "
        "another year. It was just a threat, he thought.",
        parser,
    )
    assert (thought.voice, thought.speaker) == ("reported", "Tristan Whent")


# --------------------------------------------------------------------------- judgements


def test_consider_reports_a_judgement_not_a_deliberation(parser) -> None:
    doc, (judged, weighed, bought) = run(
        "Many economists consider the tax to be a mistake. The committee will consider the "
        "proposal next week. He considered buying a new car.",
        parser,
    )
    assert voice(doc, judged)[:3] == ("reported", "Many economists", "Many economists")
    assert weighed.voice == "author"
    assert bought.voice == "author"


def test_a_guess_about_what_someone_will_think_is_the_authors(parser) -> None:
    doc, (guess, past) = run(
        "Once she has a phone, she will probably want to use it all day. Her brother said "
        "that she wanted a phone.",
        parser,
    )
    assert guess.voice == "author"
    assert voice(doc, past)[:2] == ("reported", "Her brother")


def test_a_feeling_needs_someone_who_can_feel(parser) -> None:
    doc, (knife, they, merkel) = run(
        "The knife feels sharp. Additionally, they felt quite slick. Angela Merkel felt "
        "confident about the vote.",
        parser,
    )
    assert knife.voice == "author" and they.voice == "author"
    assert voice(doc, merkel) == (
        "reported",
        "Angela Merkel",
        "Angela Merkel",
        "confident about the vote",
    )


def test_a_survey_finds_a_person_only_discovers(parser) -> None:
    doc, (survey, person) = run(
        "A 2019 survey by the city found that most residents wanted more buses. He found that "
        "the door was locked.",
        parser,
    )
    assert voice(doc, survey)[:2] == ("reported", "2019 survey by the city")
    assert person.voice == "author"


def test_according_to_a_view_the_holders_speak(parser) -> None:
    doc, (view,) = run(
        "According to the prevailing view among economists, the tax slowed growth.", parser
    )
    assert voice(doc, view) == ("reported", "economists", "economists", "the tax slowed growth")


# --------------------------------------------------------------------------- names


def test_a_surname_is_not_another_person_of_the_same_surname(parser) -> None:
    _doc, (_, announced) = run(
        "When Yesün Temür died in 1328, Tugh Temür was recalled to the capital. Afterwards, "
        "Tugh Temür stepped down and announced that he would welcome his brother.",
        parser,
    )
    assert (announced.voice, announced.speaker) == ("reported", "Tugh Temür")


def test_a_surname_the_tagger_took_for_a_noun_is_the_person_named_before(parser) -> None:
    doc, (_, claims) = run(
        "The architect Michael E. Arth proposed a new plan for the city. Arth claims that this "
        "would cost less than any other solution.",
        parser,
    )
    assert voice(doc, claims)[:2] == ("reported", "Michael E. Arth")


def test_a_reduced_thought_to_reports_nothing(parser) -> None:
    text = "Two historians thought to represent the old school have been invited to the panel."

    def reduced(parse: Parse) -> Parse:
        # the tagger's reading in longer sentences ("Despite their soft bodies, fossils thought
        # to represent ... have been found"): "thought" a past participle with no auxiliary
        thought = index_of(parse, "thought")
        tokens = list(parse.tokens)
        tokens[thought] = replace(tokens[thought], tag="VBN")
        return replace(parse, tokens=tuple(tokens))

    _doc, (historians,) = run(text, Edited(parser, {text: reduced}))
    assert historians.voice == "author"


def test_a_name_inside_a_quotation_is_no_antecedent(parser) -> None:
    doc, (_, _, wanted) = run(
        'My son got a new set for Christmas. He builds with ease and rarely shouts "Dad come '
        'help". After it was finished he wanted to play with it.',
        parser,
    )
    assert voice(doc, wanted)[:3] == ("reported", "My son", "he")


def test_a_tag_inside_a_quotation_the_author_quotes_is_the_authors(parser) -> None:
    _doc, (crafted,) = run(
        'In 1912, he crafted "a plan to make students bright. The whole room will thus, Mr. '
        'Tesla claims, be converted into a health-giving field."',
        parser,
    )
    assert crafted.voice == "author"


def test_a_posts_tag_in_brackets_and_a_question_to_readers_are_the_authors(parser) -> None:
    _doc, (tag, question, doctor) = run(
        "[Build Ready] Just wanted a once-over on this build. What do you guys think of the "
        "case? A while back, my doctor said I could take more, but when should I test again?",
        parser,
    )
    assert tag.voice == "author" and question.voice == "author"
    assert (doctor.voice, doctor.speaker) == ("reported", "my doctor")
