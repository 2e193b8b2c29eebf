"""The whole pipeline through the façade (rag.engine.Engine) with the fake models of
tests/fakes.py: build an index of made-up articles, read it back, and ask.

The fakes score shared words (tests/fakes.py), so each expectation below follows from which
words a question shares with which paragraph; what is tested is the pipeline's own logic:
passage and sentence choice, exact spans, fast and accurate mode, filters, top_k and
abstention."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from fakes import FakeEncoder, FakeReranker, articles, fake_settings

from core.errors import InvalidParameter, RerankerUnavailable, UnknownFilter
from core.types import Answer, DocumentMeta
from rag.abstain import FAST_SIGNALS, AbstentionModel
from rag.chunk import CHUNKER_VERSION, chunk_document
from rag.engine import Engine, Request
from rag.load import make_document
from rag.retrieve import Corpus

HARBOUR = "How many boats did the harbour master count?"
#: Shares no word with any article (checked in the test that relies on it).
OFF_TOPIC = "What is the best recipe for pancakes?"
#: A short paragraph that holds three of the question's four content words (island, ferry,
#: service), and a long one that holds all four (and resume) among many others.
FERRY = make_document(
    "island-ferry",
    "Ferry service to the island is a lifeline.\n\n"
    "The council expects that the ferry will resume sailing to the island in May, once the new "
    "harbour wall is finished and the service has been inspected by the coastguard.\n",
    DocumentMeta(title="The ferry", author="Ines Duarte"),
)
FERRY_QUESTION = "Will the island ferry service resume?"


@pytest.fixture(scope="module")
def fake_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    settings = fake_settings(tmp_path_factory.mktemp("engine"))
    engine = Engine(settings, encoder=FakeEncoder(), reranker=FakeReranker(), abstention={})
    engine.load_models()
    report = engine.build_index(documents=[*articles(), FERRY])
    assert set(report.added) == {*(d.id for d in articles()), FERRY.id}
    return engine


@pytest.fixture(scope="module")
def fake_corpus(fake_engine: Engine) -> Corpus:
    return fake_engine.read_corpus()


def fast_engine(engine: Engine, **abstention: AbstentionModel) -> Engine:
    """An engine over the same index with the same encoder, no cross-encoder."""
    return Engine(engine.settings, encoder=engine.encoder, abstention=abstention)


def paragraph(corpus: Corpus, doc_id: str, number: int) -> str:
    (chunk,) = [c for c in corpus.chunks if c.doc_id == doc_id and c.paragraph == number]
    return chunk.text


def check_exact(result: Answer, corpus: Corpus) -> None:
    """Every chunk and quote of ``result`` is the exact slice of its document it claims."""
    for passage in result.passages:
        chunk = passage.hit.chunk
        text = corpus.documents[chunk.doc_id].text
        assert text[chunk.start : chunk.end] == chunk.text
        for quote in passage.quotes:
            assert quote.doc_id == chunk.doc_id and quote.paragraph == chunk.paragraph
            assert chunk.start <= quote.start < quote.end <= chunk.end
            assert text[quote.start : quote.end] == quote.text
    if result.answer is not None:
        quote = result.answer
        assert corpus.documents[quote.doc_id].text[quote.start : quote.end] == quote.text
        assert any(
            p.hit.chunk.doc_id == quote.doc_id
            and p.hit.chunk.start <= quote.start < quote.end <= p.hit.chunk.end
            for p in result.passages
        )


def test_the_index_holds_every_paragraph_with_exact_spans(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    encoder = fake_engine.encoder
    for doc in [*articles(), FERRY]:
        expected = chunk_document(
            doc, max_tokens=encoder.max_tokens, count_tokens=encoder.count_tokens
        )
        held = [c for c in fake_corpus.chunks if c.doc_id == doc.id]
        # the same chunks, each with one voice per sentence (attribution at index time)
        assert [replace(c, voices=()) for c in held] == expected
        assert all(len(c.voices) == len(c.sentences) for c in held)
        assert fake_corpus.documents[doc.id] == doc
    n_sentences = sum(len(c.sentences) for c in fake_corpus.chunks)
    assert fake_corpus.sentence_vectors.shape == (n_sentences, encoder.dim)


def test_fast_mode_puts_the_right_passage_first_and_quotes_the_statement_whole(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    result = fake_engine.ask(Request(HARBOUR, mode="fast"), fake_corpus)
    check_exact(result, fake_corpus)
    assert result.mode == "fast" and not result.abstained and result.reason is None
    top = result.passages[0].hit.chunk
    # The only paragraph with "harbour", "master", "count" and "boat".
    assert (top.doc_id, top.paragraph) == ("harbour-towns", 2)
    assert all(p.hit.rerank_score is None for p in result.passages)
    # The best sentence names the harbour master; "He added that ..." continues his statement,
    # so the answer runs over both sentences: the whole paragraph.
    answer = result.answer
    assert answer is not None
    assert (answer.start, answer.end) == (top.start, top.end)
    assert answer.text.startswith("The harbour master, Tomas Berg, counted forty boats")
    assert answer.text.endswith("every week.")
    # Under the threshold rule the confidence is the best sentence's support.
    assert result.threshold == fake_engine.settings.abstain_threshold
    assert result.confidence == pytest.approx(result.signals["support"])
    assert result.confidence >= result.threshold
    assert result.signals["lexical"] == pytest.approx(1.0)  # every known question word
    encoded = cast(FakeEncoder, fake_engine.encoder).encoded
    assert encoded[-1] == ("query", (HARBOUR,))


def test_accurate_mode_reranks_and_reports_the_cross_encoder_scores(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    result = fake_engine.ask(Request(HARBOUR), fake_corpus)  # a reranker: accurate by default
    check_exact(result, fake_corpus)
    assert result.mode == "accurate" and not result.abstained
    scores = [p.hit.rerank_score for p in result.passages]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    top = result.passages[0].hit.chunk
    assert (top.doc_id, top.paragraph) == ("harbour-towns", 2)
    assert scores[0] == FakeReranker.logit(HARBOUR, top.text)
    assert result.signals["rerank_top"] == scores[0]
    assert result.answer is not None and result.answer.paragraph == 2


def test_accurate_mode_puts_the_passage_holding_every_word_first(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    short, long = paragraph(fake_corpus, FERRY.id, 1), paragraph(fake_corpus, FERRY.id, 2)
    # The cross-encoder prefers the long paragraph (all four words) ...
    assert FakeReranker.logit(FERRY_QUESTION, long) > FakeReranker.logit(FERRY_QUESTION, short)
    fast = fake_engine.ask(Request(FERRY_QUESTION, mode="fast"), fake_corpus)
    accurate = fake_engine.ask(Request(FERRY_QUESTION, mode="accurate"), fake_corpus)
    # ... while the first stage prefers the short one (three of its four words are asked).
    assert fast.passages[0].hit.chunk.text == short
    assert accurate.passages[0].hit.chunk.text == long
    assert accurate.passages[1].hit.chunk.text == short
    assert accurate.answer is not None and accurate.answer.text == long
    # Asked "when", fast mode's answer gives no time: refused, saying so; accurate mode's
    # answer holds "in May".
    when = "When will the island ferry service resume?"
    refused = fake_engine.ask(Request(when, mode="fast"), fake_corpus)
    assert refused.abstained and refused.answer is None
    assert refused.reason is not None and "a date or time" in refused.reason
    answered = fake_engine.ask(Request(when, mode="accurate"), fake_corpus)
    assert not answered.abstained and answered.answer is not None
    assert "in May" in answered.answer.text
    check_exact(answered, fake_corpus)


def test_the_cross_encoder_stops_early_when_a_first_candidate_is_clearly_relevant(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    tuning = fake_engine.settings.tuning
    assert (tuning.rerank_first, tuning.rerank_stop) == (4, 2.0)
    counting = FakeReranker()
    engine = Engine(fake_engine.settings, encoder=fake_engine.encoder, reranker=counting)
    engine.load_models()
    top = paragraph(fake_corpus, "harbour-towns", 2)
    assert FakeReranker.logit(HARBOUR, top) >= 2.0
    engine.ask(Request(HARBOUR, mode="fast"), fake_corpus)
    assert counting.pairs == 0  # fast mode never asks the cross-encoder
    engine.ask(Request(HARBOUR, mode="accurate"), fake_corpus)
    # The first 4 candidates, then the top passage's 2 sentences (their 1 pair is the whole
    # passage, already scored: a question reads each text once, rag.rerank.MemoReranker).
    (chunk,) = [c for c in fake_corpus.chunks if c.text == top]
    assert len(chunk.sentences) == 2
    assert (chunk.sentences[0].start, chunk.sentences[1].end) == (chunk.start, chunk.end)
    assert counting.pairs == 4 + 2
    everything = engine.with_settings(engine.settings.tuned(rerank_stop=None))
    counting.pairs = 0
    everything.ask(Request(HARBOUR, mode="accurate"), fake_corpus)
    n_candidates = min(engine.settings.rerank_candidates, len(fake_corpus.chunks))
    assert counting.pairs == n_candidates + 2


@pytest.mark.parametrize("mode", ["fast", "accurate"])
def test_an_off_topic_question_abstains_with_a_reason_and_the_nearest_passages(
    fake_engine: Engine, fake_corpus: Corpus, mode: str
) -> None:
    encoder = cast(FakeEncoder, fake_engine.encoder)
    # No shared word and no hash collision: every sentence's cosine is 0, so the support
    # (0.7 cosine + 0.3 lexical) is at most 0.3, under the 0.42 threshold.
    assert float(np.max(fake_corpus.sentence_vectors @ encoder.vector(OFF_TOPIC))) == 0.0
    assert fake_engine.settings.abstain_threshold > 0.3
    result = fake_engine.ask(Request(OFF_TOPIC, mode=mode), fake_corpus)  # type: ignore[arg-type]
    check_exact(result, fake_corpus)
    assert result.abstained and result.answer is None
    assert result.reason is not None and "below the abstention threshold" in result.reason
    assert result.confidence < result.threshold
    assert len(result.passages) == fake_engine.settings.top_k  # the nearest, for the reader
    # Asked to answer anyway, it gives its best candidate.
    forced = fake_engine.ask(Request(OFF_TOPIC, mode=mode, abstain=False), fake_corpus)  # type: ignore[arg-type]
    assert not forced.abstained and forced.reason is None and forced.answer is not None
    check_exact(forced, fake_corpus)


def test_bm25_alone_finds_nothing_for_unknown_words_and_says_so(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    question = "Describe a recipe for chocolate cake."  # no word the index knows
    assert len(fake_corpus.lexical.terms(question)) == 0
    result = fake_engine.ask(Request(question, mode="fast", retrieval="bm25"), fake_corpus)
    assert result.abstained and result.passages == ()
    assert result.reason == "No passage in the indexed articles matches the question."


def test_a_learned_abstention_model_decides_for_hybrid_retrieval_only(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    # P(answerable) = sigmoid(10 * cosine - 3): answer when the best sentence's cosine >= 0.3.
    model = AbstentionModel(
        mode="fast",
        encoder=fake_engine.encoder.query_name,
        reranker="",
        chunker_version=CHUNKER_VERSION,
        features=FAST_SIGNALS,
        mean=(0.0, 0.0, 0.0),
        scale=(1.0, 1.0, 1.0),
        coef=tuple(10.0 if f == "cosine" else 0.0 for f in FAST_SIGNALS),
        intercept=-3.0,
        threshold=0.5,
    )
    engine = fast_engine(fake_engine, fast=model)
    engine.load_models()
    answered = engine.ask(Request(HARBOUR), fake_corpus)
    assert answered.mode == "fast" and not answered.abstained
    assert answered.signals["cosine"] >= 0.3
    assert answered.threshold == 0.5
    assert answered.confidence == pytest.approx(model.probability(answered.signals))
    refused = engine.ask(Request(OFF_TOPIC), fake_corpus)
    assert refused.abstained and refused.signals["cosine"] == 0.0
    assert refused.reason == model.reason(refused.signals)
    assert refused.reason is not None and "fast mode's abstention threshold 0.50" in refused.reason
    # Dense retrieval's signals are not what the model learned from: the threshold rule.
    dense = engine.ask(Request(HARBOUR, retrieval="dense"), fake_corpus)
    assert dense.threshold == engine.settings.abstain_threshold
    assert dense.confidence == pytest.approx(dense.signals["support"])


def test_filters_restrict_the_passages_to_the_chosen_documents(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    def docs(result: Answer) -> set[str]:
        return {p.hit.chunk.doc_id for p in result.passages}

    only = fake_engine.ask(Request(HARBOUR, doc_ids=("school-meals",), top_k=5), fake_corpus)
    # Both of its paragraphs, and nothing else, though neither mentions boats.
    assert docs(only) == {"school-meals"} and len(only.passages) == 2
    assert only.abstained  # its paragraphs do not answer the question
    by_lopez = fake_engine.ask(Request(HARBOUR, author="LOPEZ", top_k=5), fake_corpus)
    assert docs(by_lopez) == {"harbour-towns", "school-meals"}  # "María López", folded
    assert not by_lopez.abstained
    by_okafor = fake_engine.ask(Request(HARBOUR, author="okafor"), fake_corpus)
    assert docs(by_okafor) == {"rail-budget"}
    # Filters that allow nothing together: no passage at all.
    none = fake_engine.ask(Request(HARBOUR, doc_ids=("rail-budget",), author="López"), fake_corpus)
    assert none.passages == () and none.abstained
    with pytest.raises(UnknownFilter, match="'no-such-doc'"):
        fake_engine.ask(Request(HARBOUR, doc_ids=("no-such-doc",)), fake_corpus)
    with pytest.raises(UnknownFilter, match="Nobody Known"):
        fake_engine.ask(Request(HARBOUR, author="Nobody Known"), fake_corpus)


@pytest.mark.parametrize("top_k", [1, 2, 5])
def test_top_k_passages_are_returned(fake_engine: Engine, fake_corpus: Corpus, top_k: int) -> None:
    for mode in ("fast", "accurate"):
        result = fake_engine.ask(Request(HARBOUR, top_k=top_k, mode=mode), fake_corpus)
        assert len(result.passages) == top_k  # the corpus has more chunks than that
        assert result.passages[0].hit.chunk.paragraph == 2
        assert all(len(p.quotes) <= fake_engine.settings.max_quotes for p in result.passages)


@pytest.mark.parametrize("top_k", [0, 21, True])
def test_a_top_k_out_of_range_is_refused(
    fake_engine: Engine, fake_corpus: Corpus, top_k: int
) -> None:
    with pytest.raises(InvalidParameter, match="top_k"):
        fake_engine.ask(Request(HARBOUR, top_k=top_k), fake_corpus)


def test_mode_defaults_to_the_reranker_and_accurate_needs_one(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    engine = fast_engine(fake_engine)
    engine.load_models()
    assert engine.reranker is None
    assert engine.ask(Request(HARBOUR), fake_corpus).mode == "fast"
    with pytest.raises(RerankerUnavailable, match="RAG_RERANKER is empty"):
        engine.ask(Request(HARBOUR, mode="accurate"), fake_corpus)
    assert fake_engine.ask(Request(HARBOUR), fake_corpus).mode == "accurate"


def test_a_misspelled_question_is_searched_as_the_articles_spell_it(
    fake_engine: Engine, fake_corpus: Corpus
) -> None:
    typo = HARBOUR.replace("master", "mastr")
    result = fake_engine.ask(Request(typo, mode="fast"), fake_corpus)
    spelled = fake_engine.ask(Request(HARBOUR, mode="fast"), fake_corpus)
    assert result.question == typo  # answered as asked
    assert result.searched_as == HARBOUR
    assert result.answer == spelled.answer and result.answer is not None


def test_an_update_re_embeds_only_the_changed_article(tmp_path: Path) -> None:
    encoder = FakeEncoder()
    engine = Engine(fake_settings(tmp_path), encoder=encoder, abstention={})
    engine.load_models()
    docs = articles()
    engine.build_index(documents=docs)
    harbour = docs[0]
    changed = make_document(
        harbour.id,
        harbour.text.replace("forty boats", "sixty boats"),
        harbour.meta,
    )
    encoder.encoded.clear()
    report = engine.build_index(documents=[changed, *docs[1:]])
    assert report.updated == (harbour.id,) and report.added == () and report.removed == ()
    assert set(report.unchanged) == {d.id for d in docs[1:]}
    embedded = [t for _, texts in encoder.encoded for t in texts]
    assert embedded and all(t in changed.text for t in embedded)  # only its chunks/sentences
    result = engine.ask(Request(HARBOUR), engine.read_corpus())
    assert result.answer is not None and "sixty boats" in result.answer.text


@pytest.mark.parametrize(
    ("setting", "argument", "exact"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
def test_exact_reranker_reaches_the_cross_encoder_from_the_setting_or_the_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: bool, argument: bool, exact: bool
) -> None:
    """RAG_EXACT_RERANKER makes a served cross-encoder use the gate's exact arithmetic."""
    asked: list[bool] = []

    def record(settings: object, *, exact: bool = False) -> None:
        asked.append(exact)

    monkeypatch.setattr("rag.engine.make_reranker", record)
    settings = fake_settings(tmp_path, reranker="bundled:x", exact_reranker=setting)
    Engine(settings, encoder=FakeEncoder(), abstention={}, exact_reranker=argument).load_models()
    assert asked == [exact]
