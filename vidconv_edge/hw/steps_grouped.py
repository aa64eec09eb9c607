"""Grouped convs as depthwise VVAUs: the exact lowering that stores only the grouped conv's own weights.

FINN has no grouped conv (1 < groups < C). ``quant.sevnet_fpga`` exports one as a dense conv with
*interleaved* channels: input j of group k at channel j*G + k, output r of group k at r*G + k (G groups
of g inputs and o outputs); FINN lowers it to ``[FMPadding] -> ConvolutionInputGenerator -> MVAU`` whose
weight matrix is zero wherever input and output group differ (G times the grouped conv's weights).

In channels-last order, pixel w with channel j*G + k is element w*g + j, k of the (H, W*g, G) view of the
same stream. On that view, output r of every group k is a *depthwise* conv with kernel (kh, kw*g),
stride (sh, sw*g) and padding (ph, pw*g): its window holds exactly the g inputs of group k at the kh*kw
positions. :class:`LowerGroupedMVAU` rewrites the MVAU as

    Reshape (H, W, C) -> (H, W*g, G)  [stream order unchanged]
    -> FMPadding on the view -> DuplicateStreams (o) -> o x (ConvolutionInputGenerator -> VVAU r) -> StreamingConcat

with VVAU r holding the weights of output r of each group and the thresholds of channels r*G .. r*G + G-1:
o*G*kh*kw*g weights, the grouped conv's own count, and the MVAU's MACs divided by G. Exact: the same
integer products summed per output, the same thresholds.
"""

from __future__ import annotations

import finn.custom_op.fpgadataflow.reshape  # noqa: F401  (registers FINN's HW Reshape)
import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import SortGraph
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes

from vidconv_edge.hw.config import HwBuildConfig

HW_DOMAIN = "finn.custom_op.fpgadataflow"


def interleaved_groups(weights: np.ndarray, kernel: tuple[int, int], channels: int) -> int:
    """The largest G > 1 such that the conv weight matrix ``weights`` ((kh*kw*C, O), rows (ky, kx, c)) is zero
    wherever ``c % G != o % G``; 1 when there is none."""
    outputs = weights.shape[1]
    w = weights.reshape(kernel[0] * kernel[1], channels, outputs)
    nonzero = (w != 0).any(axis=0)  # (C, O)
    for groups in range(min(channels, outputs), 1, -1):
        if channels % groups or outputs % groups:
            continue
        cross = (np.arange(channels)[:, None] % groups) != (np.arange(outputs)[None, :] % groups)
        if not nonzero[cross].any():
            return groups
    return 1


def vvau_weights(weights: np.ndarray, kernel: tuple[int, int], channels: int, groups: int, r: int) -> np.ndarray:
    """VVAU r's weights (G, 1, kh, kw*g): output r of group k over its g inputs at each kernel position."""
    kh, kw = kernel
    g = channels // groups
    w = weights.reshape(kh, kw, g, groups, -1)[..., r * groups : (r + 1) * groups]  # (kh, kw, g, G, G)
    diag = np.diagonal(w, axis1=3, axis2=4)  # (kh, kw, g, G): input group == output group
    return np.ascontiguousarray(diag.transpose(3, 0, 1, 2).reshape(groups, 1, kh, kw * g)).astype(np.float32)


def _producer(model: ModelWrapper, tensor: str, op_type: str):
    node = model.find_producer(tensor)
    return node if node is not None and node.op_type == op_type else None


class LowerGroupedMVAU(Transformation):
    """Rewrite each conv MVAU with interleaved-group weights (:func:`interleaved_groups` > 1) as per-output
    depthwise VVAUs on the (H, W*g, G) view of its input (module docstring)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type == "MVAU" and self._lower(model, node):
                model = model.transform(SortGraph())
                model = model.transform(InferShapes())
                return model.transform(InferDataTypes()), True
        return model, False

    def _lower(self, model: ModelWrapper, mvau) -> bool:
        swg = _producer(model, mvau.input[0], "ConvolutionInputGenerator")
        if swg is None:
            return False
        swg_op, mvau_op = getCustomOp(swg), getCustomOp(mvau)
        kernel = tuple(swg_op.get_nodeattr("ConvKernelDim"))
        dilation = swg_op.get_nodeattr("Dilation")
        channels = swg_op.get_nodeattr("IFMChannels")
        weights = model.get_initializer(mvau.input[1])
        if weights is None or (kernel[1] > 1 and dilation[1] != 1) or swg_op.get_nodeattr("depthwise"):
            return False
        groups = interleaved_groups(weights, kernel, channels)
        if groups == 1:
            return False
        pad = _producer(model, swg.input[0], "FMPadding")
        if pad is not None and len(model.find_consumers(pad.output[0])) != 1:
            pad = None
        if len(model.find_consumers(swg.output[0])) != 1:
            return False
        source = pad.input[0] if pad is not None else swg.input[0]
        g, outputs = channels // groups, weights.shape[1] // groups
        shape = model.get_tensor_shape(source)  # (1, H, W, C)
        idt = model.get_tensor_datatype(source)
        new = []

        def tensor(shp, dt: DataType) -> str:
            t = model.make_new_valueinfo_name()
            model.set_tensor_shape(t, list(shp))
            model.set_tensor_datatype(t, dt)
            return t

        view_shape = [1, shape[1], shape[2] * g, groups]
        view = tensor(view_shape, idt)
        new.append(helper.make_node("Reshape", [source], [view], domain=HW_DOMAIN, backend="fpgadataflow",
                                    inp_shape=list(shape), out_shape=view_shape, dtype=idt.name,
                                    name=f"Reshape_{mvau.name}"))  # fmt: skip
        padded = view
        ifm = [view_shape[1], view_shape[2]]
        if pad is not None:
            p = getCustomOp(pad).get_nodeattr("Padding")
            ifm = [ifm[0] + p[0] + p[2], ifm[1] + (p[1] + p[3]) * g]
            padded = tensor([1, *ifm, groups], idt)
            new.append(helper.make_node("FMPadding", [view], [padded], domain=HW_DOMAIN, backend="fpgadataflow",
                                        ImgDim=view_shape[1:3], Padding=[p[0], p[1] * g, p[2], p[3] * g],
                                        NumChannels=groups, SIMD=1, inputDataType=idt.name,
                                        name=f"FMPadding_{mvau.name}"))  # fmt: skip
        copies = [padded]
        if outputs > 1:
            copies = [tensor([1, *ifm, groups], idt) for _ in range(outputs)]
            new.append(helper.make_node("DuplicateStreams", [padded], copies, domain=HW_DOMAIN,
                                        backend="fpgadataflow", NumChannels=groups, PE=1, NumOutputStreams=outputs,
                                        inputDataType=idt.name, numInputVectors=[1, *ifm],
                                        name=f"DuplicateStreams_{mvau.name}"))  # fmt: skip
        ofm = swg_op.get_nodeattr("OFMDim")
        stride = swg_op.get_nodeattr("Stride")
        wide = [kernel[0], kernel[1] * g]
        odt = DataType[mvau_op.get_nodeattr("outputDataType")]
        wdt = DataType[mvau_op.get_nodeattr("weightDataType")]
        thresholds = model.get_initializer(mvau.input[2]) if len(mvau.input) > 2 else None
        results = []
        for r, copy in enumerate(copies):
            windows = tensor([1, *ofm, wide[0] * wide[1] * groups], idt)
            new.append(helper.make_node("ConvolutionInputGenerator", [copy], [windows], domain=HW_DOMAIN,
                                        backend="fpgadataflow", ConvKernelDim=wide, IFMChannels=groups, IFMDim=ifm,
                                        OFMDim=list(ofm), SIMD=1, Stride=[stride[0], stride[1] * g],
                                        Dilation=[dilation[0], 1], inputDataType=idt.name, outputDataType=idt.name,
                                        depthwise=1, name=f"ConvolutionInputGenerator_{mvau.name}_{r}"))  # fmt: skip
            w_name = model.make_new_valueinfo_name()
            model.set_initializer(w_name, vvau_weights(weights, kernel, channels, groups, r))
            model.set_tensor_datatype(w_name, wdt)
            inputs = [windows, w_name]
            if thresholds is not None:
                t_name = model.make_new_valueinfo_name()
                rows = thresholds if thresholds.shape[0] == 1 else thresholds[r * groups : (r + 1) * groups]
                model.set_initializer(t_name, np.ascontiguousarray(rows))
                model.set_tensor_datatype(t_name, model.get_tensor_datatype(mvau.input[2]))
                inputs.append(t_name)
            out = mvau.output[0] if outputs == 1 else tensor([1, *ofm, groups], odt)
            new.append(helper.make_node("VVAU", inputs, [out], domain=HW_DOMAIN, backend="fpgadataflow", PE=1,
                                        Dim=list(ofm), Channels=groups, Kernel=wide, inputDataType=idt.name,
                                        weightDataType=wdt.name, outputDataType=odt.name,
                                        ActVal=mvau_op.get_nodeattr("ActVal"),
                                        noActivation=mvau_op.get_nodeattr("noActivation"),
                                        name=f"VVAU_{mvau.name}_{r}"))  # fmt: skip
            results.append(out)
        if outputs > 1:
            new.append(helper.make_node("StreamingConcat", results, [mvau.output[0]], domain=HW_DOMAIN,
                                        backend="fpgadataflow", SIMD=1, ChannelsPerStream=[groups] * outputs,
                                        inputDataTypes=[odt.name] * outputs, numInputVectors=[1, *ofm],
                                        name=f"StreamingConcat_{mvau.name}"))  # fmt: skip
        replaced = [n for n in (pad, swg, mvau) if n is not None]
        position = list(model.graph.node).index(replaced[0])
        for old in replaced:
            model.graph.node.remove(old)
        for i, n in enumerate(new):
            model.graph.node.insert(position + i, n)
        return True


def step_lower_grouped_convs(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Every interleaved-group conv MVAU as depthwise VVAUs (exact, the grouped conv's own weights)."""
    return model.transform(LowerGroupedMVAU())
