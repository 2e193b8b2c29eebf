"""The seed article's own checks: it is in data/, byte for byte as received, and answers the
card's question. A missing seed article fails these tests; nothing here skips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.schemas import CARD_QUESTION
from core.types import Document
from rag.build import build_index, load_corpus
from rag.load import load_data_dir
from rag.pipeline import answer
from rag.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "data"


SEED_SHA256 = "eba9f595ee8a2ea752b225d588afa75ca489ff778139e6d01bcc8d2fc1fe9b96"
SHARED_SEED = DATA.parent.parent / "shared" / "seed" / "sasse-coalition-of-the-willing.txt"


@pytest.fixture(scope="module")
def seed() -> Document:
    docs = [d for d in load_data_dir(DATA) if d.meta.author == "Gwendolyn Sasse"]
    assert docs, "the seed article (Gwendolyn Sasse) must be in data/"
    return docs[0]


def test_seed_article_is_stored_byte_for_byte() -> None:
    stored = (DATA / "sasse-coalition-of-the-willing.txt").read_bytes()
    assert hashlib.sha256(stored).hexdigest() == SEED_SHA256
    if SHARED_SEED.is_file():
        assert stored == SHARED_SEED.read_bytes()


@pytest.fixture(scope="module")
def seed_setup(seed: Document, encoder, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("seed")
    settings = Settings(data_dir=DATA, index_dir=folder / "index")
    build_index(settings, encoder)
    return settings, load_corpus(settings, encoder)


def test_seed_metadata_holds_only_what_the_file_states(seed: Document) -> None:
    # The bio line names the author and her two affiliations; nothing else is stated.
    assert seed.meta.author == "Gwendolyn Sasse"
    assert "Carnegie Europe" in seed.meta.affiliation
    assert seed.meta.affiliation in seed.text
    assert not (seed.meta.title or seed.meta.publisher or seed.meta.published or seed.meta.url)


def test_card_question_quotes_both_merz_sentences(seed_setup, encoder, seed) -> None:
    settings, corpus = seed_setup
    result = answer(corpus, encoder, CARD_QUESTION, settings=settings)
    assert result.passages[0].hit.chunk.doc_id == seed.id
    assert result.passages[0].hit.chunk.paragraph == 5
    assert result.answer is not None
    assert "The German chancellor, Friedrich Merz, for the first time spoke about" in (
        result.answer.text
    )
    assert "Nato countries bordering Ukraine" in result.answer.text
    assert seed.text[result.answer.start : result.answer.end] == result.answer.text


def test_off_topic_question_abstains(seed_setup, encoder) -> None:
    settings, corpus = seed_setup
    result = answer(
        corpus, encoder, "What did Macron say about nuclear deterrence?", settings=settings
    )
    assert result.abstained and result.answer is None and result.reason


def test_layout_noise_is_not_indexed(seed_setup, seed) -> None:
    _settings, corpus = seed_setup
    texts = {c.text.strip() for c in corpus.chunks if c.doc_id == seed.id}
    assert not texts & {"-", "8", "8 hours ago"}
    assert any("Sasse" in t for t in texts), "the author's bio line is kept"


@pytest.mark.parametrize("mode", ["fast", "accurate"])
def test_card_question_ranks_the_merz_paragraph_first_in_both_modes(
    seed_setup, encoder, seed, mode
) -> None:
    from rag.abstain import models_for
    from rag.rerank import make_reranker

    settings, corpus = seed_setup
    loaded = make_reranker(settings)
    reranker = loaded.load() if loaded is not None and mode == "accurate" else None
    result = answer(
        corpus,
        encoder,
        CARD_QUESTION,
        settings=settings,
        mode=mode,
        reranker=reranker,
        abstention=models_for(
            settings, encoder=encoder.query_name, reranker=reranker.name if reranker else None
        ),
    )
    assert result.mode == mode
    top = result.passages[0].hit.chunk
    assert (top.doc_id, top.paragraph) == (seed.id, 5)
    assert not result.abstained and result.answer is not None
    assert "Merz" in seed.text[result.answer.start : result.answer.end]
