"""Static question vectors for fast mode: a token table in the embedding model's own space.

Fast mode spends most of an answer encoding the question with the transformer
(docs/benchmarks.md). :class:`StaticQueryEncoder` encodes it instead as a weighted mean of one
row per vocabulary token, normalised: a table look-up, about 30 times faster. The rows are
fitted so that a question's static vector lands near the model's own vector of it
(:mod:`rag.static_build`, ``rag eval static-query``), so the index is unchanged: passages and
sentences keep the model's vectors, and only questions are encoded otherwise.

It is opt-in (``RAG_FAST_QUERY_ENCODER=static``) and used only where it was measured to hold
up (docs/static-query.md): fast answers with hybrid retrieval. Dense or BM25 retrieval and
accurate mode keep the model. Its questions carry their own :attr:`~StaticQueryEncoder.query_name`,
so abstention parameters learned on the model's question vectors are never applied to these.

The table is built once, locally, from the bundled model and questions that are not shipped
(the external benchmark's); it lives in the model cache, like the ONNX export, never in git.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from rag.embed import Encoder, Kind, default_model_cache, resolve_model_path, weights_digest
from rag.settings import Settings

#: Bump when the recipe of the table changes (distillation, weights, fitting, training data):
#: it names the question vectors (:attr:`StaticQueryEncoder.query_name`), which is what
#: learned abstention parameters are checked against. The table's bytes are not part of the
#: name: the same recipe rounds differently on different CPUs.
STATIC_QUERY_VERSION = "1"

#: model2vec's SIF coefficient: the weight of a token of probability p is c / (c + p).
SIF_COEFFICIENT = 1e-4


def sif_weights(size: int, coefficient: float = SIF_COEFFICIENT) -> np.ndarray:
    """Each token id's weight (model2vec's): a Zipf estimate of its probability from its rank
    in the vocabulary, SIF-weighted, so that frequent tokens count for little."""
    inv_rank = 1.0 / np.arange(2, size + 2)
    proba = inv_rank / inv_rank.sum()
    return (coefficient / (coefficient + proba)).astype(np.float32)


def table_path(settings: Settings) -> Path:
    """Where the table of ``settings.model`` is, by default: the model cache, in a file named
    by the model's weights digest and the recipe version (``static_query_table`` overrides)."""
    if settings.static_query_table is not None:
        return Path(settings.static_query_table).expanduser()
    folder = Path(resolve_model_path(settings.model))
    if not folder.is_dir():
        raise ModelError(f"static questions need a local model folder, not {settings.model!r}")
    cache = Path(settings.model_cache_dir) if settings.model_cache_dir else default_model_cache()
    digest = weights_digest(folder)[:16]
    return cache / "static-query" / f"{folder.name}-{digest}-v{STATIC_QUERY_VERSION}.npy"


def provenance_path(table: Path) -> Path:
    """The JSON beside a table that says how it was built."""
    return table.with_suffix(".json")


def read_provenance(table: Path) -> dict[str, Any]:
    """How the table at ``table`` was built (its JSON sidecar), or {} when there is none."""
    try:
        data = json.loads(provenance_path(table).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def table_digest(table: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(table).tobytes()).hexdigest()[:16]


class StaticQueryEncoder:
    """The :class:`~rag.embed.Encoder` protocol with static question vectors.

    ``teacher`` is the loaded model whose index is searched: passages (every ``kind`` but
    ``query``), token counts and names are its. ``table`` is the table's file, or the rows
    themselves (benchmarks compare tables in memory). The constructor is cheap; :meth:`load`
    maps the file (read-only, shared by every process that maps it) and the tokenizer."""

    def __init__(self, teacher: Encoder, table: Path | np.ndarray, tokenizer_folder: Path) -> None:
        self.teacher = teacher
        self.path = table if isinstance(table, Path) else Path("<memory>")
        self._given = None if isinstance(table, Path) else np.asarray(table, dtype=np.float32)
        self.tokenizer_folder = tokenizer_folder
        self._table: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._tokenizer: Any = None
        self._fallback: list[int] = [0]

    def load(self) -> StaticQueryEncoder:
        if self._table is not None:
            return self
        table = self._given if self._given is not None else self._read()
        if table.ndim != 2 or table.dtype != np.float32 or table.shape[1] != self.teacher.dim:
            raise ModelError(
                f"the static question table {self.path} is {table.dtype} {table.shape}, not "
                f"float32 rows of the model's {self.teacher.dim} dimensions: rebuild it with "
                "`rag eval static-query`"
            )
        self._check_provenance()
        from rag.onnx import load_tokenizer

        tokenizer = load_tokenizer(self.tokenizer_folder, max_length=self.teacher.max_tokens)
        if tokenizer.get_vocab_size() != table.shape[0]:
            raise ModelError(
                f"the static question table {self.path} has {table.shape[0]} rows, the "
                f"tokenizer {tokenizer.get_vocab_size()} tokens: rebuild it with "
                "`rag eval static-query`"
            )
        self._tokenizer = tokenizer
        self._fallback = [int(tokenizer.token_to_id("[CLS]") or 0)]
        self._weights = sif_weights(table.shape[0])
        self._table = table
        return self

    def _read(self) -> np.ndarray:
        if not self.path.is_file():
            raise ModelError(
                f"no static question table at {self.path}: build it with `rag eval "
                "static-query` (about a minute; it needs ../shared/benchmarks), or unset "
                "RAG_FAST_QUERY_ENCODER"
            )
        try:
            return np.load(self.path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the static question table {self.path}: {exc}") from exc

    def _check_provenance(self) -> None:
        """A table whose sidecar names another model or recipe version is refused: its
        questions would carry this recipe's name, and abstention parameters learned on it."""
        made = self.provenance()
        wrong = {
            key: (made[key], ours)
            for key, ours in (("model", self.teacher.name), ("version", STATIC_QUERY_VERSION))
            if key in made and made[key] != ours
        }
        if wrong:
            detail = ", ".join(f"{k} {v[0]!r} (loaded: {v[1]!r})" for k, v in wrong.items())
            raise ModelError(
                f"the static question table {self.path} was built with {detail}: rebuild it "
                "with `rag eval static-query`"
            )

    @property
    def loaded(self) -> bool:
        return self._table is not None

    @property
    def name(self) -> str:
        return self.teacher.name  # the index's passages are the teacher's

    @property
    def query_name(self) -> str:
        return f"{self.teacher.name}#static-v{STATIC_QUERY_VERSION}"

    @property
    def dim(self) -> int:
        return self.teacher.dim

    @property
    def max_tokens(self) -> int:
        return self.teacher.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.teacher.count_tokens(text)

    def token_ids(self, text: str) -> list[int]:
        """The question's token ids, without special tokens (``[CLS]`` for an empty one)."""
        if self._tokenizer is None:
            raise ModelError("the static question encoder is not loaded: call load() first")
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return list(ids) or self._fallback

    def vector(self, text: str) -> np.ndarray:
        ids = self.token_ids(text)
        assert self._table is not None and self._weights is not None
        v = self._weights[ids] @ self._table[ids]  # the weighted mean, up to a positive scale
        n = float(np.sqrt(v @ v))
        return (v / n if n > 0 else v).astype(np.float32, copy=False)

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        if kind != "query":
            return self.teacher.encode(texts, kind=kind, progress=progress)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts]).astype(np.float32, copy=False)

    def provenance(self) -> dict[str, Any]:
        """How the table was built (its JSON sidecar), or {} when there is none."""
        return read_provenance(self.path)


def make_fast_encoder(settings: Settings, teacher: Encoder) -> StaticQueryEncoder | None:
    """The question encoder fast mode uses instead of ``teacher`` (not loaded), or None when
    fast mode keeps the model (``fast_query_encoder="model"``, the default)."""
    if settings.fast_query_encoder != "static":
        return None
    if settings.query_prefix:
        raise ModelError("static questions cannot take RAG_QUERY_PREFIX: unset one of them")
    folder = Path(resolve_model_path(settings.model))
    return StaticQueryEncoder(teacher, table_path(settings), folder)
