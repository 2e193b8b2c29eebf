"""A smaller cross-encoder distilled from the bundled one (issue 16): ``rag eval distill-reranker``.

The bundled reranker (ms-marco-MiniLM-L-12-v2, 12 layers, int8 ONNX) costs about five times
more on CPUs without AVX-512 VNNI, where its integer products have no fast kernel. The student
is the teacher itself with every other layer dropped (layers 0, 2, 4, 6, 8 and 10 by default,
as DistilBERT initialises its student): the teacher's int8 weights are dequantized into a
float32 BERT (:func:`dequantize`), the chosen layers kept (:func:`student_state`), and the
result trained to reproduce the teacher's logits (mean squared error) on (question, passage)
pairs the teacher labels (:func:`teacher_pairs`): questions about the half of the external
benchmark's paragraphs that its evaluations leave out (the static question table's split,
seed 0), each with its gold paragraph and the best BM25 paragraphs that are not it. The
student is written as a float32 ONNX folder (``model.onnx``, ``tokenizer.json`` and a
``distill.json`` of what made it) that ``RAG_RERANKER=<folder>`` serves. In float32, CPUs
differ only in the last bits of rounding (summation order), not by the integer kernels'
saturating sums that make the int8 teacher need an exact-arithmetic copy for the gate.

Keeping every other layer starts the student close to the teacher (before any training, its
logits followed the teacher's closely in a scratch comparison on benchmark pairs, and the
bottom six layers' hardly at all; docs/benchmarks.md), so a few thousand pairs are enough
where a student cut from the bi-encoder learned nothing (docs/benchmarks.md).

torch and transformers are imported on first use; nothing here runs at import time.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from core.types import sha256_file

#: Every other layer of the teacher's twelve.
DEFAULT_LAYERS: tuple[int, ...] = (0, 2, 4, 6, 8, 10)
#: The teacher's shape (ms-marco-MiniLM-L-12-v2).
HIDDEN, HEADS, INTERMEDIATE, VOCAB, POSITIONS = 384, 12, 1536, 30522, 512
#: Stand-in articles of the SQuAD question set: never training data.
STAND_IN_TITLES = frozenset({"French_and_Indian_War", "Islamism", "Packet_switching"})
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@dataclass(frozen=True)
class Pair:
    """One training example: the teacher's logit for (question, passage)."""

    question: str
    passage: str
    logit: float


@dataclass(frozen=True)
class TrainConfig:
    layers: tuple[int, ...] = DEFAULT_LAYERS
    steps: int = 200
    batch: int = 32
    learning_rate: float = 7e-5
    max_length: int = 256
    seed: int = 0


def dequantize(model_file: Path) -> dict[str, np.ndarray]:
    """The int8 ONNX cross-encoder's weights as a float32 BERT state dict (Hugging Face
    names): each quantized initializer is ``(q - zero_point) * scale``; a ``MatMulInteger``
    weight is named after the bias its output is added to, found by walking the graph."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise ModelError("onnx is missing; reinstall the project (make setup)") from exc
    graph = onnx.load(str(model_file)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    init[node.output[0]] = numpy_helper.to_array(a.t)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def real(base: str) -> np.ndarray:
        q = init[f"{base}_quantized"].astype(np.float32)
        zero = init[f"{base}_zero_point"].astype(np.float32)
        return (q - zero) * init[f"{base}_scale"].astype(np.float32)

    state: dict[str, np.ndarray] = {}
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        state[f"bert.embeddings.{name}.weight"] = real(f"bert.embeddings.{name}.weight")
    for key, value in init.items():
        if key.startswith(("bert.", "classifier.")) and not key.endswith(
            ("_quantized", "_scale", "_zero_point")
        ):
            state[key] = value.astype(np.float32)
    for node in graph.node:
        if node.op_type not in {"MatMulInteger", "MatMul"}:
            continue
        weight = node.input[1]
        base = weight.removesuffix("_quantized")
        if f"{base}_quantized" in init:
            matrix = real(base)
        elif weight in init:
            matrix = init[weight].astype(np.float32)
        else:
            continue  # attention's activation products: no weight
        bias = _bias_after(node.output[0], consumers, init)
        if bias is None:
            raise ModelError(f"{model_file}: no bias follows the product of {weight!r}")
        state[bias.removesuffix(".bias") + ".weight"] = np.ascontiguousarray(matrix.T)
    return state


def _bias_after(
    output: str, consumers: Mapping[str, list[Any]], init: Mapping[str, np.ndarray]
) -> str | None:
    """The ``*.bias`` initializer of the first ``Add`` downstream of ``output`` (within six
    nodes: the integer product is cast and scaled before its bias is added)."""
    frontier = [output]
    for _ in range(6):
        following: list[str] = []
        for name in frontier:
            for node in consumers.get(name, []):
                if node.op_type == "Add":
                    biases = [i for i in node.input if i.endswith(".bias") and i in init]
                    if biases:
                        return str(biases[0])
                following.extend(node.output)
        frontier = following
    return None


def student_state(teacher: Mapping[str, np.ndarray], layers: Sequence[int]) -> dict[str, Any]:
    """The teacher's state with only ``layers`` (renumbered 0..n-1) of its encoder."""
    if not layers or sorted(set(layers)) != list(layers):
        raise ValueError(f"layers must be distinct and increasing, not {list(layers)}")
    present = {int(k.split(".")[3]) for k in teacher if k.startswith("bert.encoder.layer.")}
    if not set(layers) <= present:
        raise ValueError(f"the teacher has layers 0..{max(present)}, not {list(layers)}")
    out: dict[str, Any] = {}
    for key, value in teacher.items():
        if key.startswith("bert.encoder.layer."):
            index = int(key.split(".")[3])
            if index in layers:
                out[key.replace(f"layer.{index}.", f"layer.{layers.index(index)}.", 1)] = value
        else:
            out[key] = value
    return out


def build_model(state: Mapping[str, Any], n_layers: int) -> Any:
    """A ``BertForSequenceClassification`` of the teacher's shape with ``n_layers`` layers,
    loaded from ``state`` (every key must fit)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=n_layers,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=POSITIONS,
        type_vocab_size=2,
    )
    config.num_labels = 1
    model = BertForSequenceClassification(config)
    tensors = {
        k: v if isinstance(v, torch.Tensor) else torch.from_numpy(v) for k, v in state.items()
    }
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model


def teacher_pairs(
    score: Callable[[str, Sequence[str]], np.ndarray],
    questions: Sequence[tuple[str, str]],
    texts: Mapping[str, str],
    *,
    negatives: int = 3,
    say: Callable[[str], None] = lambda _: None,
) -> list[Pair]:
    """The teacher's logits for each (question, gold paragraph id) with its gold paragraph and
    the ``negatives`` best BM25 paragraphs of ``texts`` that are not it."""
    import bm25s

    ids = list(texts)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([texts[i] for i in ids], stopwords="en", show_progress=False),
        show_progress=False,
    )
    pairs: list[Pair] = []
    started = time.monotonic()
    for n, (question, gold) in enumerate(questions, 1):
        found, _ = retriever.retrieve(
            bm25s.tokenize([question], stopwords="en", show_progress=False),
            k=negatives + 1,
            show_progress=False,
        )
        others = [ids[i] for i in found[0] if ids[i] != gold][:negatives]
        candidates = [gold, *others]
        logits = score(question, [texts[c] for c in candidates])
        pairs += [
            Pair(question, texts[c], float(x)) for c, x in zip(candidates, logits, strict=True)
        ]
        if n % 250 == 0 or n == len(questions):
            rate = n / max(time.monotonic() - started, 1e-9)
            say(f"labelled {n}/{len(questions)} questions ({rate:.1f} a second)")
    return pairs


def train(
    state: Mapping[str, Any],
    pairs: Sequence[Pair],
    tokenizer_dir: Path,
    config: TrainConfig,
    *,
    say: Callable[[str], None] = lambda _: None,
) -> Any:
    """Train the student (``state`` already cut to ``config.layers``) to the teacher's logits:
    AdamW with a one-cycle schedule, embeddings frozen, batches of similar length (sorted
    within runs of 50 batches, then shuffled), ``config.steps`` steps (cycling the pairs)."""
    import torch
    from transformers import AutoTokenizer

    if not pairs:
        raise ValueError("no training pairs")
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = build_model(state, len(config.layers))
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    order = list(range(len(pairs)))
    rng = random.Random(config.seed)
    rng.shuffle(order)
    batches: list[list[int]] = []
    run = config.batch * 50
    for start in range(0, len(order), run):
        chunk = sorted(
            order[start : start + run],
            key=lambda i: len(pairs[i].question) + len(pairs[i].passage),
        )
        batches += [chunk[k : k + config.batch] for k in range(0, len(chunk), config.batch)]
    rng.shuffle(batches)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.1
    )
    model.train()
    started = time.monotonic()
    tokens = 0
    for step in range(config.steps):
        batch = [pairs[i] for i in batches[step % len(batches)]]
        inputs = tokenizer(
            [p.question for p in batch],
            [p.passage for p in batch],
            truncation="only_second",
            max_length=config.max_length,
            padding=True,
            return_tensors="pt",
        )
        tokens += int(inputs["attention_mask"].sum())
        target = torch.tensor([p.logit for p in batch], dtype=torch.float32)
        loss = torch.nn.functional.mse_loss(model(**inputs).logits.squeeze(-1), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 25 == 0 or step == config.steps - 1:
            elapsed = max(time.monotonic() - started, 1e-9)
            say(
                f"step {step + 1}/{config.steps}: loss {loss.item():.2f}, "
                f"{tokens / elapsed:.0f} tokens a second"
            )
    model.eval()
    return model


def export(model: Any, folder: Path, tokenizer_dir: Path, provenance: Mapping[str, Any]) -> Path:
    """Write the student as ``folder/model.onnx`` (float32, dynamic batch and length) with the
    teacher's tokenizer files and ``distill.json``; returns the model file."""
    import shutil

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    names = ("input_ids", "attention_mask", "token_type_ids")
    example = tuple(torch.ones(2, 16, dtype=torch.long) for _ in names)
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}
    target = folder / "model.onnx"
    torch.onnx.export(
        model,
        example,
        str(target),
        input_names=list(names),
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, folder / name)
    digest = sha256_file(target)[:16]  # rag.abstain.reranker_identity names it the same way
    (folder / "distill.json").write_text(
        json.dumps({**provenance, "model_sha256_16": digest}, indent=2) + "\n", encoding="utf-8"
    )
    return target
