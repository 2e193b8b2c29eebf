"""The exact-integer rewrite of an int8 model (rag.onnx.exact_integer_model): a
MatMulInteger computed as float32 must equal the exact integer product, on any CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rag.onnx import exact_integer_model  # noqa: E402


def tiny_int8_model(path: Path, weights: np.ndarray, weight_zero: int) -> None:
    """x (float) -> DynamicQuantizeLinear -> MatMulInteger with int8 weights -> int32."""
    graph = helper.make_graph(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
            helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, weights.shape[1]])],
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array(weight_zero, dtype=np.int8), "wz"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_exact_model_equals_the_integer_product(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    # Extreme values on purpose: u8 x s8 pairs that overflow a 16-bit lane when summed.
    weights = rng.integers(-127, 128, size=(384, 64), dtype=np.int8)
    weights[:, 0] = 127
    x = rng.normal(size=(5, 384)).astype(np.float32)
    x[0] = np.abs(x[0]) * 10
    source = tmp_path / "model.onnx"
    tiny_int8_model(source, weights, weight_zero=3)
    exact = exact_integer_model(source, tmp_path / "cache")
    assert exact != source and exact.is_file()
    ops = {n.op_type for n in onnx.load(str(exact)).graph.node}
    assert "MatMulInteger" not in ops

    # The integer product, computed exactly in int64 from the same quantised activations.
    scale = (max(x.max(), 0) - min(x.min(), 0)) / 255
    zero = np.clip(np.round(-min(x.min(), 0) / scale), 0, 255)
    xq = np.clip(np.round(x / scale) + zero, 0, 255).astype(np.int64)
    expected = (xq - int(zero)) @ (weights.astype(np.int64) - 3)
    got = run(exact, x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_exact_model_is_made_once_and_reused(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    tiny_int8_model(source, np.ones((8, 2), dtype=np.int8), weight_zero=0)
    first = exact_integer_model(source, tmp_path / "cache")
    stamp = first.stat().st_mtime_ns
    assert exact_integer_model(source, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == stamp
