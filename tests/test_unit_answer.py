"""Answer choice (rag.quote) on a hand-made article: which sentence is the answer, how far it is
widened, and which quotes each passage carries, from sentence scores given by hand. The index
is built with the fake encoder (tests/fakes.py) only to have real chunks and sentence spans."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeEncoder, build_corpus

from core.types import Chunk, Document, Hit
from rag.chunk import chunk_document
from rag.load import make_document
from rag.quote import (
    FAST_PAIR_MARGIN,
    RANK_PENALTY,
    SEMANTIC_WEIGHT,
    Evidence,
    WindowScores,
    answer_quote,
    build_passages,
    choose_answer,
    sentence_evidence,
    widen,
)
from rag.retrieve import Corpus

TEXT = (
    "The committee met on Monday.\n\n"
    "Anna Berg chairs the committee. She said the plan would fail. Rain fell all day.\n\n"
    "The minister spoke last. He added that the budget was late. Nobody asked why.\n\n"
    "Prices rose in March. Wages stayed flat. Shops closed early.\n"
)
DOC = make_document("committee", TEXT)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("answer"), [DOC])[1]


def chunk(corpus: Corpus, number: int) -> Chunk:
    (found,) = [c for c in corpus.chunks if c.paragraph == number]
    return found


def evidence(*support: float) -> Evidence:
    """Evidence whose support is exactly ``support`` (cosine and lexical both equal to it)."""
    values = np.array(support, dtype=np.float32)
    return Evidence(cosine=values, lexical=values.copy())


def sentences(text: str, c: Chunk, first: int, last: int) -> str:
    return text[c.sentences[first].start : c.sentences[last].end]


def test_chunks_and_sentences_are_exact_spans_of_the_document() -> None:
    chunks = chunk_document(DOC)
    assert [c.paragraph for c in chunks] == [1, 2, 3, 4]
    for c in chunks:
        assert DOC.text[c.start : c.end] == c.text
        assert c.start <= c.sentences[0].start and c.sentences[-1].end <= c.end
    assert [DOC.text[s.start : s.end] for s in chunks[1].sentences] == [
        "Anna Berg chairs the committee.",
        "She said the plan would fail.",
        "Rain fell all day.",
    ]


@pytest.mark.parametrize(
    ("paragraph", "best", "expected"),
    [
        (2, 1, (0, 1)),  # "She said ..." takes in the sentence naming her
        (3, 0, (0, 1)),  # "He added that ..." after the best sentence continues it
        (2, 2, (2, 2)),  # a sentence that stands alone
        (3, 2, (2, 2)),  # "Nobody" is no pronoun
        (4, 1, (1, 1)),
    ],
)
def test_widen_with_document_offsets(
    corpus: Corpus, paragraph: int, best: int, expected: tuple[int, int]
) -> None:
    c = chunk(corpus, paragraph)
    assert c.start > 0  # offsets into the document, not into the paragraph
    assert widen(TEXT, c.sentences, best) == expected


def test_the_weights_make_equal_cosine_and_lexical_the_support() -> None:
    ev = Evidence(cosine=np.array([0.5, 1.0]), lexical=np.array([1.0, 0.0]))
    expected = [SEMANTIC_WEIGHT * 0.5 + (1 - SEMANTIC_WEIGHT), SEMANTIC_WEIGHT]
    np.testing.assert_allclose(ev.support, expected, rtol=1e-6)
    np.testing.assert_allclose(evidence(0.25, 0.75).support, [0.25, 0.75], rtol=1e-6)


@pytest.mark.parametrize(("lower_best", "chosen"), [(-0.01, 0), (0.01, 1)])
def test_a_lower_ranked_passage_must_beat_the_top_one_by_the_rank_penalty(
    corpus: Corpus, lower_best: float, chosen: int
) -> None:
    hits = [Hit(chunk(corpus, 2), 1.0), Hit(chunk(corpus, 3), 0.5)]
    top_best = 0.6
    second = top_best + RANK_PENALTY + lower_best
    choice = choose_answer(corpus, hits, [evidence(0.1, 0.1, top_best), evidence(0.1, 0.1, second)])
    assert choice is not None
    assert (choice.passage, choice.sentence) == (chosen, 2)
    assert choice.support == pytest.approx([top_best, second][chosen])
    assert choice.rerank is None


def test_fast_mode_quotes_a_neighbour_supported_almost_as_well(corpus: Corpus) -> None:
    hits = [Hit(chunk(corpus, 4), 1.0)]
    close = 0.8 - FAST_PAIR_MARGIN + 0.01
    far = 0.8 - FAST_PAIR_MARGIN - 0.01
    alone = choose_answer(corpus, hits, [evidence(0.8, far, 0.1)])
    assert alone is not None and (alone.sentence, alone.first, alone.last) == (0, 0, 0)
    pair = choose_answer(corpus, hits, [evidence(0.8, close, 0.1)])
    assert pair is not None and (pair.sentence, pair.first, pair.last) == (0, 0, 1)
    quote = answer_quote(corpus, hits, pair)
    assert quote.text == "Prices rose in March. Wages stayed flat."
    assert TEXT[quote.start : quote.end] == quote.text
    assert quote.score == pytest.approx(0.8)  # the best sentence's support
    # The better of the two neighbours.
    later = choose_answer(corpus, hits, [evidence(0.1, 0.8, close + 0.05)])
    assert later is not None and (later.sentence, later.first, later.last) == (1, 1, 2)


def test_a_neighbour_that_needs_its_speaker_brings_it_along(corpus: Corpus) -> None:
    hits = [Hit(chunk(corpus, 2), 1.0)]
    close = 0.8 - FAST_PAIR_MARGIN + 0.01
    # Sentence 2 with its neighbour "She said ...", which takes in the sentence naming her.
    widened = choose_answer(corpus, hits, [evidence(0.1, close, 0.8)])
    assert widened is not None and (widened.sentence, widened.first, widened.last) == (2, 0, 2)
    assert answer_quote(corpus, hits, widened).text == hits[0].chunk.text


def test_the_answer_is_widened_to_the_statement_and_quoted_exactly(corpus: Corpus) -> None:
    hits = [Hit(chunk(corpus, 3), 1.0), Hit(chunk(corpus, 2), 0.9)]
    choice = choose_answer(corpus, hits, [evidence(0.9, 0.2, 0.1), evidence(0.1, 0.1, 0.1)])
    assert choice is not None
    assert (choice.passage, choice.sentence, choice.first, choice.last) == (0, 0, 0, 1)
    quote = answer_quote(corpus, hits, choice)
    assert quote.text == "The minister spoke last. He added that the budget was late."
    assert TEXT[quote.start : quote.end] == quote.text
    assert (quote.doc_id, quote.paragraph) == ("committee", 3)
    assert choice.support == pytest.approx(0.9)  # the best sentence's, not the span's


def test_no_sentence_no_answer(corpus: Corpus) -> None:
    assert choose_answer(corpus, [], []) is None
    empty = Evidence(cosine=np.zeros(0, dtype=np.float32), lexical=np.zeros(0, dtype=np.float32))
    assert choose_answer(corpus, [Hit(chunk(corpus, 2), 1.0)], [empty]) is None


def test_accurate_mode_takes_the_cross_encoders_sentence_of_the_top_passage(
    corpus: Corpus,
) -> None:
    hits = [Hit(chunk(corpus, 2), 1.0), Hit(chunk(corpus, 3), 0.9)]
    # The second passage has the better support; with window scores it does not count.
    ev = [evidence(0.2, 0.3, 0.4), evidence(0.9, 0.9, 0.9)]
    windows = WindowScores(
        sentences=np.array([-1.0, 1.0, 3.0], dtype=np.float32),
        pairs=np.array([0.0, 2.5], dtype=np.float32),
    )
    single = choose_answer(corpus, hits, ev, windows, pair_margin=0.0)
    assert single is not None
    assert (single.passage, single.sentence, single.first, single.last) == (0, 2, 2, 2)
    assert single.rerank == 3.0
    assert single.support == pytest.approx(0.4)  # the support of the chosen sentence
    better_pair = WindowScores(sentences=windows.sentences, pairs=np.array([0.0, 3.5]))
    pair = choose_answer(corpus, hits, ev, better_pair, pair_margin=0.0)
    # Sentences 1 and 2, the better of the two as "the" sentence; "She" takes in sentence 0.
    assert pair is not None and (pair.sentence, pair.first, pair.last) == (2, 0, 2)
    assert pair.rerank == 3.5
    # A pair must beat the best single sentence by the margin.
    held = choose_answer(corpus, hits, ev, better_pair, pair_margin=1.0)
    assert held is not None and (held.first, held.last, held.rerank) == (2, 2, 3.0)


def test_passages_carry_their_best_sentences_as_exact_quotes(corpus: Corpus) -> None:
    hits = [Hit(chunk(corpus, 2), 1.0), Hit(chunk(corpus, 1), 0.5)]
    supports = [np.array([0.2, 0.9, 0.2], dtype=np.float32), np.array([0.4], dtype=np.float32)]
    passages = build_passages(corpus, hits, supports, max_quotes=2)
    assert [p.hit for p in passages] == hits
    first = passages[0].quotes
    # Best first; of two equal scores, the earlier sentence.
    assert [q.text for q in first] == [
        "She said the plan would fail.",
        "Anna Berg chairs the committee.",
    ]
    assert [q.score for q in first] == [pytest.approx(0.9), pytest.approx(0.2)]
    assert [q.text for q in passages[1].quotes] == ["The committee met on Monday."]
    for passage in passages:
        for q in passage.quotes:
            assert TEXT[q.start : q.end] == q.text
            assert q.paragraph == passage.hit.chunk.paragraph
    assert len(build_passages(corpus, hits, supports, max_quotes=1)[0].quotes) == 1
    with pytest.raises(ValueError):
        build_passages(corpus, hits, supports[:1], max_quotes=2)


def test_sentence_evidence_is_cosine_to_the_question_and_its_share_of_idf(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    encoder = FakeEncoder()
    doc = Document(id="d", text="Anna Berg chairs the committee. Rain fell all day.\n")
    _, corpus = build_corpus(tmp_path_factory.mktemp("evidence"), [doc], encoder)
    question = "Who chairs the committee?"
    hit = Hit(corpus.chunks[0], 1.0)
    ev = sentence_evidence(corpus, hit, encoder.vector(question), corpus.lexical.terms(question))
    first, second = (encoder.vector(doc.text[s.start : s.end]) for s in hit.chunk.sentences)
    np.testing.assert_allclose(
        ev.cosine, [first @ encoder.vector(question), second @ encoder.vector(question)]
    )
    assert ev.cosine[0] > 0 and ev.cosine[1] == 0  # "chairs", "committee" are in the first
    # Lexical: the share of the idf weight of the question's words that the index knows
    # ("chairs", "committee"; "who" is in no text): all in the first sentence, none in the
    # second.
    np.testing.assert_allclose(ev.lexical, [1.0, 0.0])
    np.testing.assert_allclose(
        ev.support, SEMANTIC_WEIGHT * ev.cosine + (1 - SEMANTIC_WEIGHT) * ev.lexical, rtol=1e-6
    )
