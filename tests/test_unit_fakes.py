"""The fake models of the fast tier (tests/fakes.py) keep the protocols the pipeline depends on,
and score the way the unit tests reason about them. No model is loaded."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from fakes import FakeEncoder, FakeReranker, articles, content_words

from rag.chunk import chunk_document
from rag.embed import Encoder
from rag.rerank import Reranker


def _members(protocol: type) -> dict[str, object]:
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


@pytest.mark.parametrize(
    ("fake", "protocol"), [(FakeEncoder, Encoder), (FakeReranker, Reranker)], ids=str
)
def test_fakes_have_every_member_of_the_protocol_with_its_signature(
    fake: type, protocol: type
) -> None:
    """The runtime side of the ``_conforms`` checks in tests/fakes.py: a member added to or
    changed in a protocol shows up here even where mypy does not check tests/."""
    members = _members(protocol)
    assert members, protocol
    for name, member in members.items():
        ours = inspect.getattr_static(fake, name, None)
        assert ours is not None, f"{fake.__name__} lacks {name}"
        if isinstance(member, property):
            assert isinstance(ours, property), f"{fake.__name__}.{name} must be a property"
        else:
            assert inspect.signature(ours) == inspect.signature(member), name  # type: ignore[arg-type]


def test_fake_encoder_vectors_are_unit_rows_and_follow_shared_words() -> None:
    encoder = FakeEncoder()
    texts = [
        "The harbour master counted the boats.",
        "Boats in the harbour were counted.",
        "Free school meals began in 2019.",
        "the of and",  # no content word
    ]
    vectors = encoder.encode(texts, kind="passage")
    assert vectors.shape == (4, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    query = encoder.encode(["How many boats did the harbour master count?"], kind="query")[0]
    cosines = vectors @ query
    assert cosines[0] > cosines[1] > cosines[2]  # 4, then 3, then none of its words shared
    assert encoder.encoded[-1] == ("query", ("How many boats did the harbour master count?",))
    assert encoder.encode([]).shape == (0, encoder.dim)
    # Deterministic: the same text, the same vector, in any batch.
    np.testing.assert_array_equal(encoder.encode(texts[:1])[0], vectors[0])


def test_fake_encoder_counts_tokens_so_that_long_paragraphs_are_split() -> None:
    encoder = FakeEncoder(max_tokens=24)
    doc = articles()[0]
    chunks = chunk_document(doc, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens)
    paragraph_two = [c for c in chunks if c.paragraph == 2]
    assert len(paragraph_two) == 2  # two sentences of about 20 tokens each: one a part
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert encoder.count_tokens(chunk.text) <= encoder.max_tokens


def test_fake_reranker_scores_the_share_of_question_words_as_a_logit() -> None:
    reranker = FakeReranker()
    question = "How many boats did the harbour master count?"
    assert content_words(question) == ["many", "boat", "harbour", "master", "count"]
    scores = reranker.score(
        question,
        [
            "The harbour master counted many boats.",  # all five words
            "The harbour master counted forty boats.",  # four of five
            "Free school meals began in 2019.",  # none
        ],
    )
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, [5.0, 3.0, -5.0])
    assert reranker.pairs == 3
    assert reranker.score(question, []).shape == (0,)
