"""Spelling correction of questions (rag/spell.py): the rules on their own, on a real article,
and what it changes for an answer with the real models."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.types import Answer
from rag.pipeline import answer
from rag.spell import _WORD, Speller, english_words


@pytest.fixture(scope="module")
def islamism(squad_articles) -> str:
    return next(a.document.text for a in squad_articles if a.document.id == "squad2-Islamism")


@pytest.fixture(scope="module")
def speller(islamism: str) -> Speller:
    return Speller().build([islamism])


def test_misspelled_words_become_the_articles_words(speller: Speller) -> None:
    asked = "how many muslim volonteers came to afganistan to fight the soviets"
    assert speller.correct(asked) == (
        "how many muslim volunteers came to afghanistan to fight the soviets"
    )
    assert speller.correct("Which Tunisian partty took part in elections?") == (
        "Which Tunisian party took part in elections?"
    )
    assert speller.correct("Afganistan?") == "Afghanistan?"  # capital kept


def test_known_short_and_first_letter_words_are_left_alone(speller: Speller) -> None:
    # "davis" is an English word (a name), though "Davies" might be meant: left alone.
    assert speller.suggest("davis") is None
    assert speller.suggest("sufy") is None  # four letters: too short to guess
    assert speller.suggest("Bakistan") is None  # "Pakistan" differs in the first letter
    assert speller.suggest("Pakistn") == "Pakistan"
    assert speller.suggest("zzzzzzzz") is None  # nothing in the article is one edit away
    assert speller.correct("the poster's view") == "the poster's view"  # possessive


def test_an_unbuilt_speller_changes_nothing() -> None:
    assert Speller().correct("afganistan govenor") == "afganistan govenor"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_correction_only_ever_replaces_whole_words(speller: Speller, text: str) -> None:
    out = speller.correct(text)
    assert _WORD.sub("", out) == _WORD.sub("", text)  # punctuation, digits, spaces in place
    before, after = _WORD.findall(text), _WORD.findall(out)
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        assert a == b or (len(a) >= 5 and not speller.known(a) and speller.known(b))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(sorted(english_words())[:5000]), max_size=12))
def test_english_words_are_never_changed(speller: Speller, words: list[str]) -> None:
    text = " ".join(words)
    assert speller.correct(text) == text


def _ask(corpus, encoder, settings, reranker, question: str) -> Answer:  # type: ignore[no-untyped-def]
    return answer(corpus, encoder, question, settings=settings, mode="accurate", reranker=reranker)


def test_a_misspelled_question_is_answered_like_the_spelled_one(
    squad_corpus, squad_settings, encoder
) -> None:
    from rag.rerank import make_reranker

    reranker = make_reranker(squad_settings)
    assert reranker is not None
    reranker.load()
    asked = "how many muslim volonteers came to afganistan to fight the soviets"
    spelled = "how many muslim volunteers came to afghanistan to fight the soviets"
    fixed = _ask(squad_corpus, encoder, squad_settings, reranker, asked)
    right = _ask(squad_corpus, encoder, squad_settings, reranker, spelled)
    assert fixed.question == asked  # answered as asked ...
    assert fixed.searched_as == spelled  # ... searched as spelled
    assert right.searched_as is None
    assert fixed.answer is not None and "16,000 to 35,000" in fixed.answer.text
    assert fixed.answer == right.answer
    assert fixed.confidence == pytest.approx(right.confidence, abs=1e-4)
    # Without the speller the same question reads as less certain (BM25 misses both words).
    off = dataclasses.replace(squad_corpus, speller=Speller())
    raw = _ask(off, encoder, squad_settings, reranker, asked)
    assert raw.searched_as is None
    assert raw.confidence < fixed.confidence
