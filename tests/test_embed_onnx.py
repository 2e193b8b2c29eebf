"""The ONNX backend of the bundled encoder against sentence-transformers (torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.embed import SentenceTransformerEncoder, onnx_layout, resolve_model_path
from rag.settings import BUNDLED_MODEL

TEXTS = [
    "Who were the Normans?",
    "When did Herve serve as a Byzantine general?",
    "One of the first Norman mercenaries to serve as a Byzantine general was Hervé in the "
    "1050s. By then however, there were already Norman mercenaries serving as far away as "
    "Trebizond and Georgia.",
    "“Curly quotes”, dashes — and an emoji 🙂 survive tokenisation.",
    "x",
    # Longer than the 256-token window: both backends truncate it the same way.
    " ".join(["The distinct cultural and ethnic identity of the Normans emerged."] * 60),
]


@pytest.fixture(scope="module")
def encoders() -> tuple[SentenceTransformerEncoder, SentenceTransformerEncoder]:
    onnx = SentenceTransformerEncoder(backend="onnx").load()  # the shared per-user cache
    torch = SentenceTransformerEncoder(backend="torch").load()
    return onnx, torch


def test_onnx_vectors_match_torch(encoders: tuple[SentenceTransformerEncoder, ...]) -> None:
    onnx, torch = encoders
    assert onnx.backend == "onnx" and torch.backend == "torch"
    for kind in ("query", "passage"):
        a = onnx.encode(TEXTS, kind=kind)  # type: ignore[arg-type]
        b = torch.encode(TEXTS, kind=kind)  # type: ignore[arg-type]
        assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
        assert (a * b).sum(axis=1).min() > 0.9999


def test_onnx_batches_do_not_change_vectors(
    encoders: tuple[SentenceTransformerEncoder, ...],
) -> None:
    onnx, _ = encoders
    together = onnx.encode(TEXTS)
    alone = np.vstack([onnx.encode([t]) for t in TEXTS])
    assert (together * alone).sum(axis=1).min() > 0.99999


def test_int8_questions_stay_close_and_passages_stay_exact(
    encoders: tuple[SentenceTransformerEncoder, ...],
) -> None:
    """With query_int8 (a setting, off by default) only questions run on the int8 copy: passages,
    and so an index, are the fp32 ones; questions stay within cosine 0.98 of fp32; and the
    change shows in ``query_name``, which the learned abstention checks, never in ``name``."""
    fp32, _ = encoders
    int8 = SentenceTransformerEncoder(backend="onnx", query_int8=True).load()
    assert int8.name == fp32.name == fp32.query_name == BUNDLED_MODEL
    assert int8.query_name == f"{BUNDLED_MODEL}#int8-queries"
    np.testing.assert_array_equal(int8.encode(TEXTS), fp32.encode(TEXTS))
    questions = TEXTS[:2] + TEXTS[3:5]
    a = int8.encode(questions, kind="query")
    b = fp32.encode(questions, kind="query")
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.98
    assert not np.array_equal(a, b)  # the int8 copy really ran
    # one question at a time or several: the same vectors
    alone = np.vstack([int8.encode([q], kind="query") for q in questions])
    np.testing.assert_allclose(alone, a, atol=1e-6)


def test_onnx_window_and_tokens_match_torch(
    encoders: tuple[SentenceTransformerEncoder, ...],
) -> None:
    onnx, torch = encoders
    assert (onnx.name, onnx.dim, onnx.max_tokens) == (torch.name, torch.dim, torch.max_tokens)
    assert [onnx.count_tokens(t) for t in TEXTS] == [torch.count_tokens(t) for t in TEXTS]
    assert onnx.encode([]).shape == (0, 384)


def test_bundled_model_layout_is_supported() -> None:
    assert onnx_layout(Path(resolve_model_path(BUNDLED_MODEL))) == ("mean", 256)


def test_unsupported_folder_falls_back_to_torch(tmp_path: Path) -> None:
    assert onnx_layout(tmp_path) is None


def test_cached_onnx_encoder_never_imports_torch(
    encoders: tuple[SentenceTransformerEncoder, ...],
) -> None:
    """With the export cached, loading and encoding must not import torch (start-up time)."""
    code = (
        "import sys\n"
        "from rag.embed import SentenceTransformerEncoder\n"
        "e = SentenceTransformerEncoder(backend='onnx').load()\n"
        "e.encode(['hello'], kind='query')\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
