"""The reranker distillation (eval/distill.py, ``rag eval distill-reranker``): the dequantized
teacher reproduces the bundled int8 cross-encoder, the student keeps the layers asked for, and
the command writes an ONNX folder the service's reranker loads and scores with."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from api.schemas import CARD_QUESTION
from eval.distill import DEFAULT_LAYERS, build_model, dequantize, student_state
from rag.chunk import split_paragraphs
from rag.onnx import resolve_onnx_model
from rag.rerank import BUNDLED_RERANKER, CrossEncoderReranker

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "retrieval_bench"
SEED = Path(__file__).resolve().parents[1] / "data" / "sasse-coalition-of-the-willing.txt"
QUESTIONS = Path(__file__).resolve().parents[1] / "eval" / "questions.jsonl"
REPORT = Path(__file__).resolve().parents[1] / "eval" / "report.md"


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher_state() -> dict[str, np.ndarray]:
    return dequantize(resolve_onnx_model(BUNDLED_RERANKER) / "model.onnx")


def _paragraphs() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    found = [text[s.start : s.end] for s in split_paragraphs(text)]
    assert len(found) >= 8  # the seed article's paragraphs
    return found


def _torch_scores(model: object, question: str, passages: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_onnx_model(BUNDLED_RERANKER)))
    inputs = tokenizer(
        [question] * len(passages), passages, truncation="only_second", padding=True,
        return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        return model(**inputs).logits.squeeze(-1).numpy()  # type: ignore[operator]


def test_the_dequantized_teacher_scores_as_the_int8_model(teacher_state) -> None:
    passages = _paragraphs()
    ours = _torch_scores(build_model(teacher_state, 12), CARD_QUESTION, passages)
    onnx = CrossEncoderReranker(BUNDLED_RERANKER, exact=True).load().score(CARD_QUESTION, passages)
    # float32 weights against int8 activations: close, not equal; the same order
    assert np.corrcoef(ours, onnx)[0, 1] > 0.99
    assert np.abs(ours - onnx).max() < 1.0
    assert int(np.argmax(ours)) == int(np.argmax(onnx))


def test_the_student_keeps_the_layers_asked_for(teacher_state) -> None:
    state = student_state(teacher_state, DEFAULT_LAYERS)
    layers = {int(k.split(".")[3]) for k in state if k.startswith("bert.encoder.layer.")}
    assert layers == set(range(len(DEFAULT_LAYERS)))
    key = "attention.self.query.weight"
    assert np.array_equal(
        state[f"bert.encoder.layer.1.{key}"], teacher_state[f"bert.encoder.layer.2.{key}"]
    )
    assert np.array_equal(
        state["classifier.weight"], teacher_state["classifier.weight"]
    )  # the head is the teacher's
    with pytest.raises(ValueError, match="distinct and increasing"):
        student_state(teacher_state, (4, 2))
    with pytest.raises(ValueError, match=r"layers 0\.\.11"):
        student_state(teacher_state, (0, 12))


def test_the_exported_onnx_scores_as_the_torch_model(teacher_state, tmp_path) -> None:
    from eval.distill import export

    model = build_model(student_state(teacher_state, (0, 6)), 2)
    folder = resolve_onnx_model(BUNDLED_RERANKER)
    export(model, tmp_path / "s", folder, {"command": "test"})
    passages = _paragraphs()
    served = CrossEncoderReranker(str(tmp_path / "s")).load().score(CARD_QUESTION, passages)
    assert np.allclose(served, _torch_scores(model, CARD_QUESTION, passages), atol=1e-3)
    made = json.loads((tmp_path / "s" / "distill.json").read_text(encoding="utf-8"))
    assert made["command"] == "test" and len(made["model_sha256_16"]) == 16


def test_distill_reranker_writes_a_folder_the_reranker_serves(tmp_path, monkeypatch) -> None:
    from eval import cli

    if not (BENCH / "queries.jsonl").is_file():
        pytest.fail(f"external benchmarks not found at {BENCH} (../shared missing)")
    out = tmp_path / "student"
    parser = argparse.ArgumentParser(prog="rag")
    cli.register(parser.add_subparsers(dest="command", required=True))
    argv = ["eval", "distill-reranker", "--questions", "10", "--steps", "2", "--layers", "0,6"]
    args = parser.parse_args([*argv, "--out", str(out), "--quiet"])
    assert args.func(args) == 0
    made = json.loads((out / "distill.json").read_text(encoding="utf-8"))
    assert made["train"]["layers"] == [0, 6] and made["train"]["steps"] == 2
    assert "10 training-half questions, 40 pairs" in made["data"]
    student = CrossEncoderReranker(str(out)).load()
    passages = _paragraphs()
    scores = student.score(CARD_QUESTION, passages)
    assert scores.shape == (len(passages),) and np.isfinite(scores).all()
    _learned_abstention_goes_into_the_folder(out, tmp_path, parser, monkeypatch)


def _learned_abstention_goes_into_the_folder(
    folder: Path, tmp_path: Path, parser: argparse.ArgumentParser, monkeypatch
) -> None:
    """``RAG_RERANKER=<folder> rag eval learn-abstention`` learns accurate parameters for the
    student and writes them into its folder, leaving the shipped ones and the report alone; the
    service then finds them there, wherever the folder is."""
    from rag.abstain import FOLDER_FILE, SHIPPED_DIR, models_for, reranker_identity
    from rag.settings import Settings, get_settings

    records = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    answerable = [r for r in records if r["category"] != "unanswerable"][:24]
    unanswerable = [r for r in records if r["category"] == "unanswerable"][:16]
    subset = tmp_path / "questions.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in answerable + unanswerable))
    shipped = {p.name: p.read_bytes() for p in SHIPPED_DIR.glob("*.json")}
    report = REPORT.read_bytes()

    monkeypatch.setenv("RAG_RERANKER", str(folder))
    get_settings.cache_clear()
    try:
        args = parser.parse_args(
            ["eval", "learn-abstention", "--questions", str(subset), "--quiet",
             "--cache-dir", str(tmp_path / "cache")]
        )  # fmt: skip
        assert args.func(args) == 0
    finally:
        get_settings.cache_clear()

    written = json.loads((folder / FOLDER_FILE).read_text(encoding="utf-8"))
    assert written["mode"] == "accurate"
    assert written["reranker"] == reranker_identity(str(folder))
    assert written["reranker"].startswith("sha256:")
    assert written["provenance"]["train"]["questions"] + written["provenance"]["held_out"][
        "questions"
    ] == len(answerable) + len(unanswerable)
    assert {p.name: p.read_bytes() for p in SHIPPED_DIR.glob("*.json")} == shipped
    assert REPORT.read_bytes() == report

    learned = Settings(abstention="learned")
    moved = tmp_path / "moved"
    folder.rename(moved)
    found = models_for(learned, encoder=written["encoder"], reranker=str(moved))
    assert found["accurate"].coef == tuple(written["coef"])
    assert found["fast"].reranker == ""  # fast mode keeps the shipped parameters


def test_bad_layers_are_a_usage_error(capsys) -> None:
    from eval import cli

    parser = argparse.ArgumentParser(prog="rag")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", "distill-reranker", "--layers", "0,two"])
    assert args.func(args) == cli.EXIT_USAGE
    assert "--layers takes comma-separated numbers" in capsys.readouterr().err
