"""Answer spans: a statement continued by pronoun takes in the sentence naming its speaker."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.types import Document, DocumentMeta
from rag.build import build_index, load_corpus
from rag.chunk import split_sentences
from rag.pipeline import answer
from rag.quote import widen
from rag.settings import Settings


def _widen(text: str, best: int) -> str:
    sentences = split_sentences(text)
    first, last = widen(text, sentences, best)
    return text[sentences[first].start : sentences[last].end]


@pytest.mark.parametrize(
    ("text", "best", "expected"),
    [
        # The pronoun sentence is best: the sentence naming the speaker comes with it.
        (
            "Anna Berg, the minister, spoke first. She said the plan would fail. Then rain.",
            1,
            "Anna Berg, the minister, spoke first. She said the plan would fail.",
        ),
        # The naming sentence is best: the reported continuation comes with it.
        (
            "Anna Berg spoke about the plan. He added that it was late. Rain fell.",
            0,
            "Anna Berg spoke about the plan. He added that it was late.",
        ),
        # A pronoun sentence that reports nothing said is not a continuation.
        ("Anna Berg spoke. They listened in silence. Rain.", 0, "Anna Berg spoke."),
        # A sentence that stands alone is not widened ("Hence" is not "He").
        ("The plan failed. Hence the delay was long. Rain fell.", 1, "Hence the delay was long."),
        ("Rain fell. The plan failed.", 1, "The plan failed."),
        # At most two steps back: "It" -> "This" -> the sentence before.
        (
            "A treaty was signed. This was new. It changed everything.",
            2,
            "A treaty was signed. This was new. It changed everything.",
        ),
    ],
)
def test_widen(text: str, best: int, expected: str) -> None:
    assert _widen(text, best) == expected


def test_what_did_x_say_covers_both_sentences_of_the_statement(tmp_path: Path, encoder) -> None:
    """End to end with the real model: a statement continued by "He added that ..."."""
    text = (
        "Leaders of thirty countries met in Paris on Tuesday to discuss a ceasefire.\n\n"
        "The Finnish president, Alexander Stubb, for the first time spoke about sending Finnish "
        "soldiers abroad after a ceasefire. He added that they would only serve in countries "
        "that share a border with Russia, not inside the war zone.\n\n"
        "Other leaders were more cautious and asked for guarantees from Washington first.\n"
    )
    doc = Document(id="paris-summit", text=text, meta=DocumentMeta(author="A. Writer"))
    settings = Settings(data_dir=tmp_path, index_dir=tmp_path / "index")
    build_index(settings, encoder, documents=[doc])
    corpus = load_corpus(settings, encoder)
    result = answer(
        corpus, encoder, "What did Stubb say about Finnish soldiers?", settings=settings
    )
    assert result.answer is not None
    assert result.answer.paragraph == 2
    assert result.answer.text.startswith("The Finnish president, Alexander Stubb,")
    assert result.answer.text.endswith("not inside the war zone.")
    assert text[result.answer.start : result.answer.end] == result.answer.text


def test_fast_mode_takes_the_neighbour_that_reads_almost_as_well() -> None:
    import numpy as np

    from rag.quote import _with_close_neighbour

    support = np.array([0.2, 0.7, 0.6, 0.1], dtype=np.float32)
    assert _with_close_neighbour(support, 1, 0.2) == (1, 2)
    assert _with_close_neighbour(support, 1, 0.05) == (1, 1)
    assert _with_close_neighbour(support, 1, 0.0) == (1, 1)
    assert _with_close_neighbour(np.array([0.5], dtype=np.float32), 0, 0.2) == (0, 0)
    assert _with_close_neighbour(np.array([0.5, 0.45], dtype=np.float32), 1, 0.2) == (0, 1)
