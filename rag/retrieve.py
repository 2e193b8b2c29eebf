"""Retrieval: dense (FAISS), lexical (BM25 via bm25s), and reciprocal rank fusion.

:class:`Corpus` is the searchable, immutable state built from a persisted index snapshot; the
functions below are pure over it. A document change builds a new ``Corpus`` and swaps it in,
so a search in flight always sees one consistent version.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import numpy as np

from core.errors import InvalidParameter, UnknownFilter
from core.text import fold
from core.types import Chunk, Document, Hit
from index.persist import IndexSnapshot
from index.store import FaissIndex, chunk_key
from rag.load import validate_doc_id
from rag.settings import Fusion, RetrievalMode
from rag.spell import Speller

MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)


class LexicalIndex:
    """BM25 over chunk texts, and the term statistics used to score sentences lexically.

    Token ids are the tokenizer's vocabulary ids, used as BM25's columns directly. Each
    chunk's tokens are kept, so that :meth:`updated` builds the index of a changed corpus by
    tokenizing only the new chunks (the vocabulary only grows; a term no chunk holds any more
    has document frequency 0 and counts as unknown)."""

    def __init__(self, stemming: bool = True) -> None:
        self._stemming = stemming
        self._tokenizer: Any = None  # bm25s.tokenization.Tokenizer (untyped library)
        self._bm25: Any = None  # bm25s.BM25
        self._idf = np.zeros(0, dtype=np.float32)
        self._df = np.zeros(0, dtype=np.int64)
        self._tokens: list[list[int]] = []  # each chunk's token ids
        self._size = 0

    @property
    def stemming(self) -> bool:
        return self._stemming

    def _make_tokenizer(self) -> Any:
        from bm25s.tokenization import Tokenizer

        stemmer = None
        if self._stemming:
            import Stemmer

            stemmer = Stemmer.Stemmer("english").stemWord
        return Tokenizer(stemmer=stemmer, stopwords="en")

    def build(self, texts: Sequence[str]) -> LexicalIndex:
        self._tokenizer = self._make_tokenizer()
        ids = (
            self._tokenizer.tokenize(list(texts), return_as="ids", show_progress=False)
            if texts
            else []
        )
        return self._index([list(x) for x in ids])

    def updated(self, kept: Sequence[int], new_texts: Sequence[str]) -> LexicalIndex:
        """A new index over this one's chunks at positions ``kept`` (in that order) followed
        by ``new_texts``; only those are tokenized. This index is not changed (a search may
        be using it): the new one has its own copy of the vocabulary."""
        out = LexicalIndex(self._stemming)
        if self._tokenizer is None:
            return out.build(new_texts)
        tokenizer = copy.copy(self._tokenizer)
        for name in ("word_to_stem", "stem_to_sid", "word_to_id"):
            setattr(tokenizer, name, dict(getattr(self._tokenizer, name)))
        out._tokenizer = tokenizer
        new_ids = (
            tokenizer.tokenize(
                list(new_texts), update_vocab=True, return_as="ids", show_progress=False
            )
            if new_texts
            else []
        )
        new_tokens = [list(x) for x in new_ids]
        # Document frequencies from the old ones: minus the chunks dropped, plus the new.
        df = np.zeros(max(len(tokenizer.get_vocab_dict()), 1), dtype=np.int64)
        df[: len(self._df)] = self._df
        for i in set(range(len(self._tokens))).difference(kept):
            df[list(set(self._tokens[i]))] -= 1
        for doc in new_tokens:
            df[list(set(doc))] += 1
        return out._index([self._tokens[i] for i in kept] + new_tokens, df)

    def _index(self, ids: list[list[int]], df: np.ndarray | None = None) -> LexicalIndex:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
        self._tokens = ids  # never changed in place: an update makes new lists
        self._size = len(ids)
        if not ids:
            return self
        vocab_size = max(len(self._tokenizer.get_vocab_dict()), 1)
        self._bm25 = bm25s.BM25()
        # The vocabulary's ids are BM25's columns as they are (queries are tokenized with it).
        self._bm25.index((self._tokens, {i: i for i in range(vocab_size)}), show_progress=False)
        if df is None:
            df = np.zeros(vocab_size, dtype=np.int64)
            for doc in self._tokens:
                df[list(set(doc))] += 1
        df[0] = 0  # bm25s's empty token
        n = max(len(ids), 1)
        self._df = df
        self._idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        return self

    def terms(self, text: str) -> np.ndarray:
        """Known vocabulary ids of ``text`` (unknown words and stopwords dropped), unique."""
        return self.terms_of([text])[0]

    def terms_of(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`terms` for many texts in one tokenizer pass."""
        if self._tokenizer is None or self._bm25 is None or not texts:
            return [np.zeros(0, dtype=np.int64) for _ in texts]
        tokenized = self._tokenizer.tokenize(
            list(texts), update_vocab=False, return_as="ids", show_progress=False
        )
        out = []
        df = self._df
        for ids in tokenized:
            arr = np.unique(np.asarray(ids, dtype=np.int64))
            arr = arr[(arr > 0) & (arr < len(df))]  # 0 is bm25s's empty token
            out.append(arr[df[arr] > 0])  # a term no chunk holds is unknown
        return out

    def scores(self, terms: np.ndarray) -> np.ndarray:
        """BM25 score of every chunk for the query terms."""
        if self._bm25 is None or len(terms) == 0:
            return np.zeros(self._size, dtype=np.float32)
        return np.asarray(
            self._bm25.get_scores_from_ids(terms.tolist()),
            dtype=np.float32,
        )

    def overlap(self, query_terms: np.ndarray, text_terms: np.ndarray) -> float:
        """Share of the query's idf weight that ``text`` contains (0..1)."""
        if len(query_terms) == 0:
            return 0.0
        total = float(self._idf[query_terms].sum())
        if total <= 0:
            return 0.0
        shared = np.intersect1d(query_terms, text_terms, assume_unique=True)
        return float(self._idf[shared].sum()) / total


@dataclass(frozen=True)
class Corpus:
    """Everything a search needs, for one version of the index."""

    documents: dict[str, Document]
    chunks: tuple[Chunk, ...]
    keys: np.ndarray  # int64 FAISS id of each chunk
    positions: dict[int, int]  # FAISS id -> position in ``chunks``
    index: FaissIndex
    lexical: LexicalIndex
    sentence_vectors: np.ndarray  # float32 (n_sentences, dim)
    sentence_offsets: np.ndarray  # chunk i's sentences are rows [off[i], off[i+1])
    sentence_terms: tuple[np.ndarray, ...]  # vocabulary ids of each sentence, same rows
    #: Corrects a question's misspelled words toward this corpus's words (an unbuilt speller,
    #: which changes nothing, when spelling correction is off).
    speller: Speller = field(default_factory=Speller)
    #: What is derived from this version on first use (rag.speakers' registry), by key.
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: IndexSnapshot,
        *,
        stemming: bool = True,
        spelling: bool = True,
        previous: Corpus | None = None,
    ) -> Corpus:
        """The corpus of ``snapshot``. With ``previous`` (the version it replaces), the chunks
        both hold keep their tokens and sentence terms, and only new chunks are tokenized: a
        document write costs its article's tokenizing, not the corpus's."""
        chunks = tuple(snapshot.chunks)
        texts = {d.id: d.text for d in snapshot.documents}
        keys = np.array([chunk_key(c.id) for c in chunks], dtype=np.int64)
        offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum([len(c.sentences) for c in chunks], out=offsets[1:])
        if previous is not None and previous.lexical.stemming == stemming:
            old = [previous.positions.get(int(k)) for k in keys]
            kept = [i for i in old if i is not None]
            fresh = [c for c, i in zip(chunks, old, strict=True) if i is None]
            lexical = previous.lexical.updated(kept, [c.text for c in fresh])
            fresh_terms = iter(
                lexical.terms_of(
                    [texts[c.doc_id][s.start : s.end] for c in fresh for s in c.sentences]
                )
            )
            terms: list[np.ndarray] = []
            for chunk, i in zip(chunks, old, strict=True):
                if i is None:
                    terms.extend(next(fresh_terms) for _ in chunk.sentences)
                else:
                    terms.extend(previous.sentence_terms[previous.sentence_rows(i)])
            if spelling and not previous.speller.built and previous.chunks:
                speller = Speller().build(c.text for c in chunks)
            elif spelling:
                gone = set(range(len(previous.chunks))) - set(kept)
                speller = previous.speller.updated(
                    (previous.chunks[i].text for i in sorted(gone)), (c.text for c in fresh)
                )
            else:
                speller = Speller()
        else:
            lexical = LexicalIndex(stemming).build([c.text for c in chunks])
            sentences = [texts[c.doc_id][s.start : s.end] for c in chunks for s in c.sentences]
            terms = lexical.terms_of(sentences)
            speller = Speller().build(c.text for c in chunks) if spelling else Speller()
        return cls(
            documents={d.id: d for d in snapshot.documents},
            chunks=chunks,
            keys=keys,
            positions={int(k): i for i, k in enumerate(keys)},
            index=snapshot.index,
            lexical=lexical,
            sentence_vectors=snapshot.sentence_vectors,
            sentence_offsets=offsets,
            sentence_terms=tuple(terms),
            speller=speller,
        )

    def authors(self, allowed: np.ndarray | None = None) -> list[str]:
        """The distinct authors of the documents (of the ``allowed`` chunk positions), in
        document order; documents with no known author are left out."""
        if allowed is None:
            docs: Iterable[str] = self.documents
        else:
            docs = dict.fromkeys(self.chunks[int(i)].doc_id for i in allowed)
        names = (self.documents[d].meta.author for d in docs)
        return list(dict.fromkeys(a for a in names if a))

    def position_of(self, chunk: Chunk) -> int:
        return self.positions[chunk_key(chunk.id)]

    def sentence_rows(self, position: int) -> slice:
        return slice(int(self.sentence_offsets[position]), int(self.sentence_offsets[position + 1]))


def resolve_filter(
    corpus: Corpus, doc_ids: Iterable[str] | None = None, author: str | None = None
) -> np.ndarray | None:
    """Chunk positions allowed by the filters (None: no filter). Unknown values raise."""
    if doc_ids is None and author is None:
        return None
    allowed_docs = set(corpus.documents)
    if doc_ids is not None:
        wanted = [validate_doc_id(d) for d in dict.fromkeys(doc_ids)]
        if not wanted:
            raise UnknownFilter("doc_ids is empty: leave it out to search every document")
        unknown = [d for d in wanted if d not in corpus.documents]
        if unknown:
            raise UnknownFilter(f"unknown document id(s): {', '.join(map(repr, unknown))}")
        allowed_docs &= set(wanted)
    if author is not None:
        folded = fold(author)
        if not folded:
            raise UnknownFilter("author is empty: leave it out to search every author")
        by_author = {d.id for d in corpus.documents.values() if folded in fold(d.meta.author)}
        if not by_author:
            raise UnknownFilter(f"no document by an author matching {author!r}")
        allowed_docs &= by_author
    return np.array(
        [i for i, c in enumerate(corpus.chunks) if c.doc_id in allowed_docs], dtype=np.int64
    )


def _ranked_dense(
    corpus: Corpus, query_vec: np.ndarray, depth: int, allowed: np.ndarray | None
) -> list[tuple[int, float]]:
    if len(corpus.chunks) == 0 or (allowed is not None and len(allowed) == 0):
        return []
    keys = corpus.keys[allowed] if allowed is not None else None
    scores, ids = corpus.index.search(query_vec.reshape(1, -1), depth, allowed=keys)
    return [
        (corpus.positions[int(k)], float(s))
        for s, k in zip(scores[0], ids[0], strict=True)
        if k >= 0
    ]


def _ranked_bm25(
    corpus: Corpus, terms: np.ndarray, depth: int, allowed: np.ndarray | None
) -> list[tuple[int, float]]:
    scores = corpus.lexical.scores(terms)
    if allowed is not None:
        masked = np.full_like(scores, -np.inf)
        masked[allowed] = scores[allowed]
        scores = masked
    candidates = np.flatnonzero(scores > 0)
    if len(candidates) > depth:
        candidates = candidates[np.argpartition(-scores[candidates], depth - 1)[:depth]]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [(int(i), float(scores[i])) for i in order]


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the lists an item appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def score_fusion(
    rankings: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float]
) -> dict[int, float]:
    """Weighted sum of min-max normalised scores: each list's scores are mapped onto 0..1
    over its own candidates, and an item missing from a list gets 0 from it."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        values = [score for _, score in ranking]
        lo, hi = min(values), max(values)
        for item, score in ranking:
            norm = (score - lo) / (hi - lo) if hi > lo else 1.0
            fused[item] = fused.get(item, 0.0) + weight * norm
    return fused


def retrieve(
    corpus: Corpus,
    query_vec: np.ndarray,
    query_terms: np.ndarray,
    *,
    mode: RetrievalMode = "hybrid",
    top_k: int = 3,
    candidates: int = 50,
    rrf_k: int = 60,
    fusion: Fusion = "score",
    dense_weight: float = 0.4,
    allowed: np.ndarray | None = None,
) -> list[Hit]:
    """The ``top_k`` best chunks for a query, best first. In hybrid mode the dense and BM25
    lists (``candidates`` deep each) are fused by normalised scores weighted ``dense_weight``
    to ``1 - dense_weight`` (``fusion="score"``) or by reciprocal rank (``"rrf"``, ``rrf_k``)."""
    if mode not in MODES:
        raise InvalidParameter(f"unknown retrieval mode {mode!r}; choose one of {MODES}")
    if fusion not in FUSIONS:
        raise InvalidParameter(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")
    depth = max(candidates, top_k)
    dense = _ranked_dense(corpus, query_vec, depth, allowed) if mode != "bm25" else []
    lexical = _ranked_bm25(corpus, query_terms, depth, allowed) if mode != "dense" else []
    dense_at = {pos: (rank, score) for rank, (pos, score) in enumerate(dense, start=1)}
    bm25_at = {pos: (rank, score) for rank, (pos, score) in enumerate(lexical, start=1)}
    if mode == "dense":
        fused = {pos: score for pos, score in dense}
    elif mode == "bm25":
        fused = {pos: score for pos, score in lexical}
    elif fusion == "score":
        fused = score_fusion([dense, lexical], [dense_weight, 1.0 - dense_weight])
    else:
        fused = rrf([[p for p, _ in dense], [p for p, _ in lexical]], k=rrf_k)
    order = sorted(fused, key=lambda p: (-fused[p], dense_at.get(p, (depth + 1, 0.0))[0], p))
    hits = []
    for pos in order[:top_k]:
        d_rank, d_score = dense_at.get(pos, (None, None))
        b_rank, b_score = bm25_at.get(pos, (None, None))
        hits.append(
            Hit(
                chunk=corpus.chunks[pos],
                score=float(fused[pos]),
                dense_score=d_score,
                bm25_score=b_score,
                dense_rank=d_rank,
                bm25_rank=b_rank,
            )
        )
    return hits
