"""Our fix-up before HLS/RTL code generation.

The tile(T) conv has all-ones weights; FINN's value-based bit-width minimisation makes them BINARY
(0/1), which the HLS VVAU/MVAU templates only take in XNOR (bipolar) mode. UINT2 holds the same
values and generates code.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

from vidconv_edge.hw.config import HwBuildConfig


def step_widen_binary_weights(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Weights minimised to BINARY (0/1) become UINT2 in layers not in XNOR mode."""
    widened = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        attrs = inst.get_nodeattr_types()
        if "weightDataType" not in attrs or inst.get_nodeattr("weightDataType") != "BINARY":
            continue
        if "binaryXnorMode" in attrs and inst.get_nodeattr("binaryXnorMode") == 1:
            continue
        inst.set_nodeattr("weightDataType", "UINT2")
        widened.append(node.name)
    cfg.io.binary_weights_widened = widened
    return model
