"""Building the static question table (:mod:`rag.static_query`), once, from local files only.

Three steps, each from the bundled model; nothing is downloaded:

1. **distil** (model2vec's distillation, done with torch, so no new dependency): each
   vocabulary token alone, ``[CLS] token [SEP]``, through the model, mean-pooled over the
   three positions: one row per token.
2. **map**: an affine map, fitted by ridge least squares on training questions, from a
   question's SIF-weighted mean of rows to the model's own vector of the question. Pooling is
   a weighted mean and the map is affine, so the map folds into the rows exactly.
3. **tune**: every row fine-tuned (sparse Adam, loss 1 - cosine to the model's vector,
   model2vec's *tokenlearn* idea), keeping the epoch best on a validation part.

The training questions are any question text; ``rag eval static-query`` passes the external
benchmark's, about the half of its paragraphs that the benchmarks do not evaluate on
(docs/static-query.md). The table is written atomically with a JSON sidecar that records the
recipe, the data and the validation cosine.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed import Encoder
from rag.static_query import (
    SIF_COEFFICIENT,
    STATIC_QUERY_VERSION,
    provenance_path,
    sif_weights,
    table_digest,
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    """How a table is fitted (its defaults are the shipped recipe, version 1)."""

    validation_share: float = 0.1
    ridge: tuple[float, ...] = (0.1, 1.0, 10.0)
    epochs: int = 12
    lr: float = 1e-3
    batch: int = 64
    patience: int = 2
    seed: int = 0


@dataclass(frozen=True)
class Pairs:
    """Training and validation questions (token ids, no special tokens) with the model's own
    vectors of them: what the map and the tuning fit."""

    train: Sequence[list[int]]
    y_train: np.ndarray
    val: Sequence[list[int]]
    y_val: np.ndarray

    @classmethod
    def split(cls, ids: Sequence[list[int]], targets: np.ndarray, n_val: int) -> Pairs:
        """The last ``n_val`` questions validate, the others train."""
        return cls(ids[:-n_val], targets[:-n_val], ids[-n_val:], targets[-n_val:])


@dataclass(frozen=True)
class Fitted:
    table: np.ndarray
    provenance: dict[str, Any]


def distill(folder: Path, ids: Sequence[int] | None = None, *, say: Say = print) -> np.ndarray:
    """The distilled rows of the model in ``folder``: each token alone through the model,
    mean-pooled. ``ids``: only these tokens (the others stay zero, and a zero row adds
    nothing to a question); default: the whole vocabulary."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel
    from transformers import logging as hf_logging

    from rag.onnx import load_tokenizer

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(folder)).eval()
    config = model.config
    tok = load_tokenizer(folder, max_length=None)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    wanted = np.arange(config.vocab_size) if ids is None else np.unique(np.asarray(ids))
    table = np.zeros((config.vocab_size, config.hidden_size), dtype=np.float32)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(wanted), 1024):
            chunk = torch.from_numpy(wanted[start : start + 1024].astype(np.int64))
            x = torch.stack([torch.full_like(chunk, cls), chunk, torch.full_like(chunk, sep)], 1)
            states = model(
                input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x)
            ).last_hidden_state
            table[chunk.numpy()] = states.mean(1).numpy()
            if start // 1024 % 5 == 4:
                say(f"distilled {start + len(chunk)}/{len(wanted)} tokens")
    say(f"distilled {len(wanted)} tokens in {time.perf_counter() - started:.0f} s")
    return table


def weighted_means(table: np.ndarray, weights: np.ndarray, ids: Sequence[list[int]]) -> np.ndarray:
    out = np.zeros((len(ids), table.shape[1]), dtype=np.float64)
    for i, x in enumerate(ids):
        w = weights[x]
        out[i] = (w @ table[x]) / w.sum()
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(np.sum(unit(a) * unit(b), axis=1))


def fit_map(
    table: np.ndarray,
    weights: np.ndarray,
    pairs: Pairs,
    lambdas: Sequence[float] = (0.1, 1.0, 10.0),
) -> tuple[np.ndarray, float, float]:
    """The mapped table (affine ridge map folded into the rows), its lambda and validation
    cosine. Folding is exact: map(sum_i w_i e_i / sum_i w_i) = sum_i w_i map(e_i) / sum_i w_i."""
    x = weighted_means(table, weights, pairs.train)
    a = np.hstack([x, np.ones((len(x), 1))])
    xv = np.hstack([weighted_means(table, weights, pairs.val), np.ones((len(pairs.val), 1))])
    gram, rhs = a.T @ a, a.T @ pairs.y_train
    best: tuple[float, float, np.ndarray] | None = None
    for lam in lambdas:
        m = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        score = float(cosines(xv @ m, pairs.y_val).mean())
        if best is None or score > best[1]:
            best = (lam, score, m)
    if best is None:
        raise ValueError("fit_map needs at least one ridge lambda")
    lam, score, m = best
    mapped = (table.astype(np.float64) @ m[:-1] + m[-1]).astype(np.float32)
    return mapped, lam, score


def tune(
    table: np.ndarray,
    weights: np.ndarray,
    pairs: Pairs,
    recipe: Recipe,
    *,
    say: Say = print,
) -> tuple[np.ndarray, int, float]:
    """Fine-tune every row (sparse Adam, loss 1 - cosine to the model's vector, one thread),
    keeping the epoch best on ``val`` (epoch 0: ``table`` untouched), stopping after
    ``patience`` epochs without gain."""
    import torch

    torch.manual_seed(recipe.seed)
    before = torch.get_num_threads()
    torch.set_num_threads(1)

    def bag(items: Sequence[list[int]]) -> tuple[Any, Any, Any]:
        flat = np.concatenate([np.asarray(x, dtype=np.int64) for x in items])
        offsets = np.cumsum([0] + [len(x) for x in items[:-1]])
        w = np.concatenate([weights[x] / weights[x].sum() for x in items]).astype(np.float32)
        return torch.from_numpy(flat), torch.from_numpy(offsets), torch.from_numpy(w)

    emb = torch.nn.EmbeddingBag(len(table), table.shape[1], mode="sum", sparse=True)
    emb.weight.data = torch.from_numpy(table.copy())
    opt = torch.optim.SparseAdam(list(emb.parameters()), lr=recipe.lr)
    train = pairs.train
    targets = torch.from_numpy(np.asarray(pairs.y_train, dtype=np.float32))
    val_bag = bag(pairs.val)
    val_targets = torch.from_numpy(np.asarray(pairs.y_val, dtype=np.float32))
    cos = torch.nn.functional.cosine_similarity

    def validation() -> float:
        with torch.no_grad():
            out = emb(val_bag[0], val_bag[1], per_sample_weights=val_bag[2])
            return float(cos(out, val_targets).mean())

    # Epoch 0 is the table as given: tuning never returns a worse one.
    best_score, best_epoch, best = validation(), 0, table
    try:
        for epoch in range(1, recipe.epochs + 1):
            order = np.random.default_rng(recipe.seed + epoch).permutation(len(train))
            for start in range(0, len(order), recipe.batch):
                idx = order[start : start + recipe.batch]
                ids, offsets, w = bag([train[i] for i in idx])
                loss = 1 - cos(emb(ids, offsets, per_sample_weights=w), targets[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            score = validation()
            say(f"tuning epoch {epoch}: validation cosine {score:.4f}")
            if score > best_score:
                best_score, best_epoch = score, epoch
                best = emb.weight.detach().numpy().copy()
            elif epoch - best_epoch >= recipe.patience:
                break
    finally:
        torch.set_num_threads(before)
    return best, best_epoch, best_score


def fit(
    folder: Path,
    teacher: Encoder,
    questions: Sequence[str],
    recipe: Recipe = Recipe(),
    *,
    vocabulary: Sequence[str] | None = None,
    say: Say = print,
) -> Fitted:
    """Distil, map and tune a table for the model in ``folder`` (loaded as ``teacher``) on
    ``questions``. ``vocabulary``: distil only the tokens that the questions and these texts
    use (a quick table for tests; other tokens get zero rows and add nothing to a question);
    default: the whole vocabulary."""
    from rag.onnx import load_tokenizer

    if len(questions) < 20:
        raise ValueError(
            f"a static table needs at least 20 training questions, not {len(questions)}"
        )
    started = time.perf_counter()
    texts = list(dict.fromkeys(questions))
    random.Random(recipe.seed).shuffle(texts)
    tok = load_tokenizer(folder, max_length=teacher.max_tokens)
    fallback = [int(tok.token_to_id("[CLS]") or 0)]
    ids = [list(tok.encode(t, add_special_tokens=False).ids) or fallback for t in texts]
    wanted = None
    if vocabulary is not None:
        extra = [tok.encode(t, add_special_tokens=False).ids for t in vocabulary]
        wanted = sorted({i for x in [*ids, *extra] for i in x} | set(fallback))
    table = distill(folder, wanted, say=say)
    weights = sif_weights(len(table))
    say(f"encoding {len(texts)} training questions with {teacher.name}")
    targets = teacher.encode(texts, kind="query", progress=False).astype(np.float64)
    n_val = max(10, int(len(texts) * recipe.validation_share))
    pairs = Pairs.split(ids, targets, n_val)
    base = float(cosines(weighted_means(table, weights, pairs.val), pairs.y_val).mean())
    mapped, lam, map_val = fit_map(table, weights, pairs, recipe.ridge)
    say(f"mapped: validation cosine {map_val:.4f} (lambda {lam:g}; distilled {base:.4f})")
    tuned, epoch, tune_val = tune(mapped, weights, pairs, recipe, say=say)
    provenance = {
        "version": STATIC_QUERY_VERSION,
        "model": teacher.name,
        "sif_coefficient": SIF_COEFFICIENT,
        "recipe": asdict(recipe),
        "questions": {
            "given": len(questions),
            "distinct": len(texts),
            "train": len(pairs.train),
            "validation": n_val,
        },
        "tokens_distilled": len(table) if wanted is None else len(wanted),
        "validation_cosine": {
            "distilled": round(base, 4),
            "mapped": round(map_val, 4),
            "tuned": round(tune_val, 4),
        },
        "ridge_lambda": lam,
        "best_epoch": epoch,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return Fitted(np.ascontiguousarray(tuned, dtype=np.float32), provenance)


def write(fitted: Fitted, path: Path, **extra: Any) -> Path:
    """Write the table and its sidecar atomically (the sidecar records ``extra`` too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    provenance = {**fitted.provenance, **extra, "sha256_16": table_digest(fitted.table)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".static-", suffix=".npy")
    os.close(fd)
    try:
        np.save(tmp, fitted.table)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the table from a service user
        side = provenance_path(path)
        side_tmp = side.with_suffix(".json.tmp")
        side_tmp.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        os.replace(side_tmp, side)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
