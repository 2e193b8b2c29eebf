"""What a question asks for (rag.question): the author, names and their other names, and the
kind of answer. Pure functions over text; no model."""

from __future__ import annotations

import pytest

from rag.question import (
    answer_type_found,
    author_speaks,
    expected_answer,
    lacks,
    missing_names,
    names_found,
    question_names,
    refers_to_author,
    with_author,
)

AUTHOR = "Gwendolyn Sasse"
BIO = (
    "Gwendolyn Sasse is the director of the Centre for East European and International "
    "Studies and non-resident senior fellow at Carnegie Europe"
)


@pytest.mark.parametrize(
    ("question", "rewritten"),
    [
        ("Who is the author?", "Who is Gwendolyn Sasse?"),
        ("Where does the writer work?", "Where does Gwendolyn Sasse work?"),
        ("What is the columnist's job?", "What is Gwendolyn Sasse's job?"),
        ("author affiliation", "Gwendolyn Sasse affiliation"),
        ("Who wrote this article?", "Who wrote this article? Gwendolyn Sasse"),
    ],
)
def test_the_author_is_named_when_she_is_the_subject(question: str, rewritten: str) -> None:
    assert refers_to_author(question)
    assert with_author(question, AUTHOR) == rewritten


@pytest.mark.parametrize(
    "question",
    [
        "According to the author, what does Putin think?",
        "What does the writer think of the term coalition of the willing?",
        "In the columnist's view, is the declaration binding?",
        "What is the author's view on Trump?",
    ],
)
def test_the_author_as_speaker_leaves_the_question_about_the_content(question: str) -> None:
    # Her name would draw the search to her bio line instead of to what she wrote.
    assert author_speaks(question)
    assert with_author(question, AUTHOR) == question


def test_no_author_reference_and_no_author_change_nothing() -> None:
    assert not refers_to_author("What did Merz say about German troops?")
    assert with_author("What did Merz say?", AUTHOR) == "What did Merz say?"
    assert with_author("Who is the author?", "") == "Who is the author?"
    assert not refers_to_author("What is the authority of the state?")


def test_question_names_skip_question_words_and_titles() -> None:
    assert question_names("What did Chancellor Friedrich Merz say in 2025?") == [
        "Friedrich",
        "Merz",
        "2025",
    ]
    assert question_names("According to Sasse, is Nato involved?") == ["Sasse", "Nato"]


def test_a_capital_demonym_or_seat_of_government_counts_for_its_country() -> None:
    passage = "The German chancellor spoke. Russia attacked Ukrainian energy. The US joined."
    assert names_found("What did Berlin say?", passage) == 1.0
    assert names_found("What is the Kremlin doing to Ukrainians?", passage) == 1.0
    assert names_found("Does Washington back it?", passage) == 1.0
    assert names_found("What did Macron say?", passage) == 0.0
    assert names_found("What did Paris and Berlin say?", passage) == 0.5


def test_the_authors_name_and_typos_of_names_count_as_present() -> None:
    assert names_found(
        "What does Sasse think of the term?", "The term is unfortunate.", also=[AUTHOR]
    )
    assert names_found("What did Mertz say?", "Friedrich Merz said so.") == 1.0
    assert names_found("Gwendolin Sase affiliation", BIO) == 1.0
    assert missing_names("What did Zelensky say?", "Merz said so.") == ["Zelensky"]
    assert missing_names("Was Max there?", "Mac was there.") == ["Max"]  # short: exact only


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many troops will Germany send?", "number"),
        ("What share of the plants was destroyed?", "number"),
        ("When were the Paris talks held?", "time"),
        ("In what year did the war begin?", "time"),
        ("Which US official attended the talks?", "person"),
        ("Who is Ukraine's defence minister?", "person"),
        ("Who would lead the multinational force?", None),
        ("What did Merz say?", None),
    ],
)
def test_expected_answer_kinds(question: str, kind: str | None) -> None:
    assert expected_answer(question) == kind


def test_answer_type_found() -> None:
    assert answer_type_found("How many countries met?", "It brought 35 countries together.")
    assert answer_type_found("How many countries met?", "Dozens of countries met.")
    assert not answer_type_found("How many troops?", "They could be stationed in Nato states.")
    # A number the question gives is not its answer.
    assert not answer_type_found("How many of the 35 countries were European?", "35 countries")
    assert answer_type_found("When would troops be stationed?", "after a ceasefire is in place")
    assert answer_type_found("When did Herve serve?", "In the 1050s Hervé served.")
    assert not answer_type_found("When were the talks held?", "The latest talks in Paris met.")
    assert answer_type_found("name of the german chancellor", "The chancellor, Friedrich Merz,")
    assert not answer_type_found("Which official attended?", "The Paris declaration was vague.")
    assert answer_type_found("What did Merz say?", "anything at all")


def test_lacks_gives_the_reason_or_none() -> None:
    assert lacks("What did Merz say?", {"type_found": 1.0, "names_in_article": 1.0}, BIO) is None
    reason = lacks("How many troops?", {"type_found": 0.0}, BIO)
    assert reason is not None and "a number" in reason
    reason = lacks("What did Macron say?", {"type_found": 1.0, "names_in_article": 0.0}, BIO)
    assert reason is not None and reason.endswith("does not mention Macron.")


def test_an_article_is_folded_once_for_all_its_questions() -> None:
    from rag.question import _folded

    article = "Friedrich Merz spoke about German troops. " * 200
    names_found("What did Merz say?", article)
    first = _folded(article, ())
    assert names_found("What did Mertz say about Scholz?", article) == 0.5
    assert _folded(article, ()) is first
