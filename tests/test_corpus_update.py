"""A document write rebuilds the searchable corpus from the one it replaces
(:meth:`rag.retrieve.Corpus.from_snapshot` with ``previous``): only the new chunks are
tokenized, and the speller gains a layer instead of being rebuilt. The result must search
exactly as a corpus built from scratch: the same BM25 scores for every chunk, the same
lexical overlap for every sentence, the same spelling suggestions. Real bm25s, stemmer and
symspellpy; a fake encoder (vectors do not enter here)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from fakes import FakeEncoder

from core.types import Document
from index.persist import IndexSnapshot, Manifest
from rag.build import snapshot_of, update_index
from rag.load import make_document
from rag.retrieve import Corpus
from rag.spell import MAX_LAYERS

ENCODER = FakeEncoder(dim=32)
VOCABULARY = [
    "harbour",
    "ferry",
    "council",
    "budget",
    "school",
    "railway",
    "minister",
    "troops",
    "ceasefire",
    "treaty",
    "election",
    "chancellor",
    "parliament",
    "coalition",
    "referendum",
    "pipeline",
    "sanctions",
    "embassy",
    "refugees",
    "tariffs",
    "governor",
    "senator",
    "quokka",
    "zebrafish",
    "archipelago",
    "monsoon",
    "cathedral",
    "orchestra",
]
QUESTIONS = [
    "What did the chancellor say about troops?",
    "ceasefire treaty sanctions",
    "the quokka and the zebrafish",
    "Who funds the railway budget?",
    "monsoon archipelago refugees",
    "nothing matches xylophone",
]
MISSPELLED = [
    "chancelor",
    "ceasfire",
    "quokkka",
    "zebrafsh",
    "archipelgo",
    "referendm",
    "goverrnor",
]
MANIFEST = Manifest(1, 1, "fake", 32, "1", "x", {}, {}, {}, "", {})


def article(doc_id: str, rng: random.Random) -> Document:
    paragraphs = [
        " ".join(
            f"The {rng.choice(VOCABULARY)} said the {rng.choice(VOCABULARY)} "
            f"{rng.choice(['would', 'will', 'must'])} {rng.choice(VOCABULARY)} {n}."
            for n in range(rng.randint(1, 3))
        )
        for _ in range(rng.randint(1, 4))
    ]
    return make_document(doc_id, "\n\n".join(paragraphs))


def version(previous: IndexSnapshot | None, documents: list[Document]) -> IndexSnapshot:
    return snapshot_of(update_index(previous, documents, ENCODER).parts, MANIFEST)


def assert_same_search(updated: Corpus, scratch: Corpus) -> None:
    assert updated.chunks == scratch.chunks
    for question in QUESTIONS:
        a, b = updated.lexical.terms(question), scratch.lexical.terms(question)
        assert len(a) == len(b)
        np.testing.assert_allclose(
            updated.lexical.scores(a), scratch.lexical.scores(b), rtol=1e-5, atol=1e-6
        )
        overlaps = [updated.lexical.overlap(a, t) for t in updated.sentence_terms]
        expected = [scratch.lexical.overlap(b, t) for t in scratch.sentence_terms]
        np.testing.assert_allclose(overlaps, expected, rtol=1e-5, atol=1e-6)
    assert updated.speller.vocabulary == scratch.speller.vocabulary
    for word in MISSPELLED:
        assert updated.speller.suggest(word) == scratch.speller.suggest(word), word


@pytest.mark.parametrize("seed", range(4))
def test_an_updated_corpus_searches_as_one_built_from_scratch(seed: int) -> None:
    rng = random.Random(seed)
    documents = [article(f"d{i}", rng) for i in range(12)]
    snapshot = version(None, documents)
    corpus = Corpus.from_snapshot(snapshot)
    for step in range(MAX_LAYERS + 3):  # past the speller's layer limit
        roll = rng.random()
        ids = [d.id for d in documents]
        if roll < 0.3 and len(documents) > 3:
            documents = [d for d in documents if d.id != rng.choice(ids)]
        else:
            doc_id = rng.choice([*ids, f"new{step}"])
            documents = [d for d in documents if d.id != doc_id] + [article(doc_id, rng)]
        snapshot = version(snapshot, documents)
        corpus = Corpus.from_snapshot(snapshot, previous=corpus)
        assert_same_search(corpus, Corpus.from_snapshot(snapshot))


def test_a_removed_word_is_no_longer_known_or_suggested() -> None:
    keep = [
        make_document(f"d{i}", f"The {word} said the budget would pass.")
        for i, word in enumerate(["chancellor", "senator", "governor"])
    ]
    rare = make_document("rare", "The quokka spoke about the zebrafish.")
    corpus = Corpus.from_snapshot(version(None, [*keep, rare]))
    assert corpus.speller.suggest("zebrafsh") == "zebrafish"
    updated = Corpus.from_snapshot(version(None, keep), previous=corpus)
    scratch = Corpus.from_snapshot(version(None, keep))
    if "zebrafish" not in scratch.speller.vocabulary:
        assert updated.speller.suggest("zebrafsh") is None
        assert len(updated.lexical.terms("zebrafish")) == 0  # unknown, as from scratch
    assert_same_search(updated, scratch)
