"""Deterministic stand-ins for the models, for the fast test tier (tests/README.md).

:class:`FakeEncoder` satisfies :class:`rag.embed.Encoder` and :class:`FakeReranker` satisfies
:class:`rag.rerank.Reranker`, so the whole pipeline (chunk, index, retrieve, rerank, quote,
abstain) runs without sentence-transformers, onnxruntime or any model file. Both read text
as a bag of lower-cased, crudely stemmed content words:

* the encoder hashes each word into one of ``dim`` buckets (crc32, so the same vector in
  every process) and normalises the counts: texts that share words get a higher cosine, texts
  that share none get 0 (unless two words hash into one bucket, which the tests that rely on
  "no shared word" check);
* the reranker scores the share of the question's words that a passage holds as a
  logit-like number from -5 (none) to +5 (all).

Neither understands anything: a test that passes with them shows that the pipeline's logic
(choice of passage and sentence, spans, filters, fusion, abstention) works on the scores it is
given, not that the real models give good scores.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.text import fold
from core.types import Document, DocumentMeta
from rag.embed import Kind
from rag.load import make_document

if TYPE_CHECKING:
    from rag.embed import Encoder
    from rag.rerank import Reranker
    from rag.retrieve import Corpus
    from rag.settings import Settings

_WORD = re.compile(r"[^\W_]+")
#: Function words the fakes ignore, so that "What did ... say?" matches on its content words.
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
    }
)
_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    """A crude stemmer: "counted" -> "count", "boats" -> "boat" (enough to make a question's
    wording meet an article's)."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> list[str]:
    """The stemmed, folded words of ``text`` that are not :data:`STOPWORDS`, in order."""
    return [stem(w) for w in _WORD.findall(fold(text)) if w not in STOPWORDS]


class FakeEncoder:
    """Hashed bag-of-words vectors of unit length; :class:`rag.embed.Encoder` without a model.

    Bucket 0 is kept for texts without a content word (every row must have unit length), so
    words hash into buckets 1..dim-1. ``encoded`` records every call as (kind, texts)."""

    def __init__(self, dim: int = 256, max_tokens: int = 128, name: str = "fake-bow") -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2")
        self._dim = dim
        self._max_tokens = max_tokens
        self._name = name
        self.encoded: list[tuple[Kind, tuple[str, ...]]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def query_name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def count_tokens(self, text: str) -> int:
        """Words and punctuation marks, plus two for the special tokens a real tokenizer adds."""
        return len(re.findall(r"\w+|[^\w\s]", text)) + 2

    def bucket(self, word: str) -> int:
        """The vector row a content word (as :func:`content_words` gives it) counts in."""
        return 1 + zlib.crc32(word.encode("utf-8")) % (self._dim - 1)

    def vector(self, text: str) -> np.ndarray:
        out = np.zeros(self._dim, dtype=np.float32)
        for word, count in Counter(content_words(text)).items():
            out[self.bucket(word)] += count
        if not out.any():
            out[0] = 1.0
        return out / np.linalg.norm(out)

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        items = tuple(texts)
        self.encoded.append((kind, items))
        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self.vector(t) for t in items]).astype(np.float32)


class FakeReranker:
    """Word overlap as a cross-encoder logit; :class:`rag.rerank.Reranker` without a model.

    A passage scores ``10 * share - 5``, ``share`` being the share of the question's distinct
    content words that it holds: -5 for none, +5 for all. ``pairs`` counts the (question,
    passage) pairs read, as a cross-encoder's cost would be counted."""

    def __init__(self, name: str = "fake-overlap") -> None:
        self._name = name
        self.pairs = 0

    @property
    def name(self) -> str:
        return self._name

    @staticmethod
    def logit(query: str, passage: str) -> float:
        wanted = set(content_words(query))
        if not wanted:
            return -5.0
        share = len(wanted & set(content_words(passage))) / len(wanted)
        return 10.0 * share - 5.0

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.pairs += len(passages)
        return np.array([self.logit(query, p) for p in passages], dtype=np.float32)


# ------------------------------------------------------------------------ made-up articles

#: Three short made-up commentary articles (two by one author), each paragraph on its own
#: topic, so that a question's words point at one paragraph.
ARTICLES: dict[str, tuple[str, DocumentMeta]] = {
    "harbour-towns": (
        "Fishing towns along the northern coast are losing their young people.\n\n"
        "The harbour master, Tomas Berg, counted forty boats in the harbour last spring. "
        "He added that only twelve of them still go out to sea every week.\n\n"
        "Tourism has replaced fishing as the main source of income. Hotels now stand where "
        "the old fish market used to be.\n",
        DocumentMeta(title="Empty harbours", author="María López", published="2025-03-02"),
    ),
    "rail-budget": (
        "The national rail budget will grow by nine percent next year.\n\n"
        "The transport minister, Ana Silva, said the money would pay for new trains on the "
        "eastern line. Critics argue that the tracks themselves need repair first.\n\n"
        "Passengers have complained about delays on the eastern line for a decade.\n",
        DocumentMeta(title="Trains before tracks", author="Daniel Okafor"),
    ),
    "school-meals": (
        "Free school meals were introduced in the city in 2019.\n\n"
        "Teachers report that pupils concentrate better in the afternoon since the meals "
        "began. Parents say the lunches are healthier than what they could afford.\n",
        DocumentMeta(title="Lunch lessons", author="María López"),
    ),
}


def articles() -> list[Document]:
    """:data:`ARTICLES` as documents, made the way the API makes them."""
    return [make_document(doc_id, text, meta) for doc_id, (text, meta) in ARTICLES.items()]


def fake_settings(root: Path, **changes: Any) -> Settings:
    """Settings for an index under ``root`` that never load a real model: no cross-encoder
    configured (pass a :class:`FakeReranker` to the engine instead), and abstention by the
    support threshold unless ``changes`` say otherwise."""
    from rag.settings import Settings

    values: dict[str, Any] = {
        "data_dir": root / "data",
        "index_dir": root / "index",
        "reranker": "",
        "abstention": "threshold",
        "answer_mode": None,
        "retrieval_mode": "hybrid",
        "spell_correction": True,
    }
    values.update(changes)
    return Settings(_env_file=None, **values)


def build_corpus(
    root: Path, documents: Sequence[Document] | None = None, encoder: FakeEncoder | None = None
) -> tuple[Settings, Corpus]:
    """Index ``documents`` (default: :func:`articles`) under ``root`` with a fake encoder,
    through the real build and load, and return the settings and the corpus."""
    from rag.build import build_index, load_corpus

    settings = fake_settings(root)
    enc = encoder or FakeEncoder()
    build_index(settings, enc, documents=list(documents or articles()))
    return settings, load_corpus(settings, enc)


if TYPE_CHECKING:  # mypy checks that the fakes satisfy the protocols the pipeline needs

    def _encoder_conforms(encoder: FakeEncoder) -> Encoder:
        return encoder

    def _reranker_conforms(reranker: FakeReranker) -> Reranker:
        return reranker
