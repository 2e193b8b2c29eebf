"""Follow-up questions lean on the question before them."""

from __future__ import annotations

import pytest

from core.errors import InvalidQuestion
from rag.pipeline import answer
from rag.query import depends_on_previous, retrieval_text, validate_history


@pytest.mark.parametrize(
    "question",
    ["And France?", "What about him?", "Why?", "And what did Scholz say?", "What did he add?"],
)
def test_follow_ups_depend_on_the_previous_question(question: str) -> None:
    assert depends_on_previous(question)
    assert retrieval_text(question, ["What did Merz say?"]) == f"What did Merz say? {question}"


@pytest.mark.parametrize(
    "question",
    ["What did Merz say about German troops?", "Who wrote this?", "Who were the Normans?"],
)
def test_standalone_questions_are_searched_as_they_are(question: str) -> None:
    assert not depends_on_previous(question)
    assert retrieval_text(question, ["Earlier question?"]) == question


def test_history_is_validated() -> None:
    assert validate_history(None, 100) == []
    assert validate_history([" a ", "", "b"], 100) == ["a", "b"]
    assert validate_history([str(i) for i in range(9)], 100) == ["4", "5", "6", "7", "8"]
    for bad in ["just a string", [1, 2], ["x" * 101]]:
        with pytest.raises(InvalidQuestion):
            validate_history(bad, 100)


def test_follow_up_is_answered_from_the_topic_of_the_conversation(
    squad_corpus, encoder, squad_settings
) -> None:
    history = ["How did the Scottish Parliament come to be re-established?"]
    question = "And where does it meet?"
    alone = answer(squad_corpus, encoder, question, settings=squad_settings)
    followed = answer(squad_corpus, encoder, question, settings=squad_settings, history=history)
    assert followed.question == question
    assert {p.hit.chunk.doc_id for p in followed.passages} == {"squad2-Scottish_Parliament"}
    # The earlier question changes what is searched for: other passages, found with more
    # support (alone, "it" could be anything that meets).
    assert [p.hit.chunk.id for p in alone.passages] != [p.hit.chunk.id for p in followed.passages]
    assert followed.confidence > alone.confidence
