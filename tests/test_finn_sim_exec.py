"""finn-sim runs the HW graphs without qonnx's per-node rounding and checks the integers itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("finn")

from qonnx.core.onnx_exec import execute_onnx  # noqa: E402

from vidconv_edge.stream.backends.finn_sim import HwGraph, check_integers  # noqa: E402

LATER = next((Path(__file__).parent / "data" / "tiny_fpga" / "later" / "intermediate_models").glob("*_verify_hw_python.onnx"))


def _input(graph: HwGraph, seed: int) -> np.ndarray:
    shape = graph.model.get_tensor_shape(graph.input)
    dtype = graph.model.get_tensor_datatype(graph.input)
    return np.random.default_rng(seed).integers(dtype.min(), dtype.max() + 1, shape).astype(np.float32)


def test_unsanitized_execution_equals_qonnx_sanitized_execution_and_restores_the_environment():
    graph = HwGraph(LATER)
    for seed in range(3):
        x = _input(graph, seed)
        ours = graph(x)
        assert "SANITIZE_QUANT_TENSORS" not in os.environ
        reference = execute_onnx(graph.model, {graph.input: x})[graph.output]  # qonnx's default: sanitized
        np.testing.assert_array_equal(ours, reference)


def test_a_value_the_user_set_for_sanitize_survives_the_execution(monkeypatch):
    monkeypatch.setenv("SANITIZE_QUANT_TENSORS", "1")
    graph = HwGraph(LATER)
    graph(_input(graph, 0))
    assert os.environ["SANITIZE_QUANT_TENSORS"] == "1"


def test_a_tensor_off_its_integer_datatype_is_an_error_naming_it():
    graph = HwGraph(LATER)
    context = execute_onnx(graph.model, {graph.input: _input(graph, 0)}, True)
    check_integers(graph.model, context, "later")  # the real context passes
    name = next(n for n in context if (d := graph.model.get_tensor_datatype(n)) is not None and d.is_integer()
                and n != graph.input)  # fmt: skip
    context[name] = context[name] + 0.5
    with pytest.raises(RuntimeError, match=f"later: tensor {name} holds values that are not"):
        check_integers(graph.model, context, "later")
