"""Exact rewrites of a Brevitas QCDQ graph so ONNX Runtime runs every Conv / Gemm as an int8 kernel.

ORT fuses ``DequantizeLinear -> Conv -> QuantizeLinear`` into ``QLinearConv`` only when (among others) the
input and output activations have the same integer type, every input comes through a DequantizeLinear and
the output goes to a QuantizeLinear (``ConvNodeGroupSelector``; a float bias is quantized to int32 by ORT).
Brevitas mixes int8 (signed quantizers) and uint8 (after ReLU, pixels) activations; ORT's own int8 -> uint8
conversion (``QDQS8ToU8``) skips quantizers with several consumers, i.e. every shared residual quantizer,
so most convs stayed float. The rewrites, each exact (the dequantized values do not change):

- :class:`UnsignedActivations`: int8 activation quantizers -> uint8 with the zero point moved by 128
  (``clamp(round(x/s), -128, 127) + 128 == clamp(round(x/s) + 128, 0, 255)``; Clip bounds of low-bit
  activations move with it).
- :class:`UnsignedWeights`: int8 weights -> uint8 with the zero point moved by 128, so ORT runs u8 x u8 kernels.
  Its u8 x s8 kernels on x86 CPUs without VNNI (AVX2: ``vpmaddubsw``) add pairs of products in int16 and
  saturate (measured: the bundled models up to 31 output steps off, a top-1 flipped); u8 x u8 is exact
  on every CPU.
- :class:`QuantizeCopyConvOutput`: the all-ones tile(T) conv copies its (quantized) input to every tile,
  so quantizing its output with the input's scale and zero point changes nothing; it then fuses.
- :class:`FlattenBeforeDequantize`: ``DQ -> Flatten`` becomes ``Flatten -> DQ`` (per-tensor scale), so the
  head's Gemm sees a DequantizeLinear input.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _forget_types(model: ModelWrapper, tensors: list[str]) -> None:
    """Drop the recorded value_info of ``tensors`` (their element type changed; ORT infers it again)."""
    names = set(tensors)
    keep = [vi for vi in model.graph.value_info if vi.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)


def _as_uint8(values: np.ndarray) -> np.ndarray:
    """int8 values moved by 128 into uint8 (with the zero point moved alike, every dequantized value is kept)."""
    return (values.astype(np.int16) + 128).astype(np.uint8)


def _is_scalar(model: ModelWrapper, name: str) -> bool:
    value = model.get_initializer(name)
    return value is not None and np.asarray(value).size == 1


class UnsignedActivations(Transformation):
    """Every int8 activation QuantizeLinear (and the Clip/DequantizeLinear nodes reading it) -> uint8."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for q in [n for n in model.graph.node if n.op_type == "QuantizeLinear"]:
            if len(q.input) < 3 or model.get_initializer(q.input[0]) is not None:
                continue
            zp = model.get_initializer(q.input[2])
            if zp is None or zp.dtype != np.int8:
                continue
            chain = self._readers(model, q.output[0])
            if chain is None or any(
                n.op_type == "DequantizeLinear" and not np.array_equal(model.get_initializer(n.input[2]), zp) for n in chain
            ):
                continue
            new_zp = f"{q.name}/zero_point_u8"
            model.set_initializer(new_zp, _as_uint8(zp))
            q.input[2] = new_zp
            for node in chain:
                if node.op_type == "DequantizeLinear":
                    node.input[2] = new_zp
                else:  # Clip of a low-bit activation: bounds move by 128
                    for i in (1, 2):
                        bound = model.get_initializer(node.input[i])
                        name = f"{node.name}/bound{i}_u8"
                        model.set_initializer(name, _as_uint8(bound))
                        node.input[i] = name
            _forget_types(model, [q.output[0], *(n.output[0] for n in chain if n.op_type == "Clip")])
        return model, False

    @staticmethod
    def _readers(model: ModelWrapper, tensor: str) -> list[onnx.NodeProto] | None:
        """The Clip/DequantizeLinear nodes reading ``tensor`` (through Clips), or None if anything else does."""
        found = []
        for node in model.find_consumers(tensor):
            if node.op_type == "DequantizeLinear" and len(node.input) > 2:
                found.append(node)
            elif node.op_type == "Clip" and all(model.get_initializer(i) is not None for i in node.input[1:3]):
                below = UnsignedActivations._readers(model, node.output[0])
                if below is None:
                    return None
                found += [node, *below]
            else:
                return None
        return found if found else None


class QuantizeCopyConvOutput(Transformation):
    """Quantize the output of a conv that only copies its quantized input (the all-ones tile(T) conv: depthwise,
    kernel of ones, padding (k-1)*dilation on an input of exactly dilation x dilation) with the input's
    scale and zero point: every output is one input value (or zero, at the zero point), so nothing changes."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for conv in [n for n in model.graph.node if n.op_type == "Conv"]:
            dq = model.find_producer(conv.input[0])
            if len(conv.input) > 2 or dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
                continue
            if not _is_scalar(model, dq.input[1]):
                continue
            if any(c.op_type == "QuantizeLinear" for c in model.find_consumers(conv.output[0])):
                continue
            if not self._copies(model, conv):
                continue
            quantized, out = f"{conv.output[0]}/copy_q", f"{conv.output[0]}/copy_dq"
            scale, zp = dq.input[1], dq.input[2]
            for node in model.find_consumers(conv.output[0]):
                for i, name in enumerate(node.input):
                    if name == conv.output[0]:
                        node.input[i] = out
            at = list(model.graph.node).index(conv) + 1
            q = helper.make_node("QuantizeLinear", [conv.output[0], scale, zp], [quantized], name=f"{conv.name}/copy_q")
            dq_out = helper.make_node("DequantizeLinear", [quantized, scale, zp], [out], name=f"{conv.name}/copy_dq")
            model.graph.node.insert(at, q)
            model.graph.node.insert(at + 1, dq_out)
        return model, False

    @staticmethod
    def _copies(model: ModelWrapper, conv: onnx.NodeProto) -> bool:
        wdq = model.find_producer(conv.input[1])
        if wdq is None or wdq.op_type != "DequantizeLinear":
            return False
        w_int = model.get_initializer(wdq.input[0])
        clip = model.find_producer(wdq.input[0])
        if w_int is None and clip is not None and clip.op_type == "Clip":
            w_int = model.get_initializer(clip.input[0])
        if w_int is None:
            return False
        scale = np.asarray(model.get_initializer(wdq.input[1]), dtype=np.float64)
        zp = model.get_initializer(wdq.input[2]) if len(wdq.input) > 2 else 0
        axis_shape = [-1] + [1] * (w_int.ndim - 1) if scale.size > 1 else [1] * w_int.ndim
        zp = np.asarray(zp, dtype=np.float64).reshape(axis_shape)
        weight = (w_int.astype(np.float64) - zp) * scale.reshape(axis_shape)
        shape = model.get_tensor_shape(conv.input[0])
        channels, kernel = w_int.shape[0], list(w_int.shape[2:])
        dil = list(_attr(conv, "dilations", [1] * len(kernel)))
        pads = list(_attr(conv, "pads", [0] * 2 * len(kernel)))
        return (
            shape is not None
            and np.all(weight == 1.0)
            and _attr(conv, "group", 1) == channels == shape[1]
            and list(_attr(conv, "strides", [1] * len(kernel))) == [1] * len(kernel)
            and list(shape[2:]) == dil
            and pads == [(k - 1) * d for k, d in zip(kernel, dil)] * 2
        )


class UnsignedWeights(Transformation):
    """Every constant int8 tensor read by a DequantizeLinear (weights, through a constant Clip for low-bit
    ones) -> uint8 with the zero point moved by 128: ``(w + 128) - (zp + 128) == w - zp``, so exact. ORT's x86
    u8s8 kernels (AVX2 without VNNI: ``vpmaddubsw``) add pairs of products in int16 and saturate; its u8u8
    kernels widen to int16 first and sum in int32, exact on every CPU."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear" and len(n.input) > 2]:
            zp = model.get_initializer(dq.input[2])
            values = self._constant_int8(model, dq.input[0])
            if zp is None or zp.dtype != np.int8 or values is None:
                continue
            weight, zero_point = f"{dq.name}/weight_u8", f"{dq.name}/zero_point_u8"
            model.set_initializer(weight, _as_uint8(values))
            model.set_initializer(zero_point, _as_uint8(zp))
            dq.input[0], dq.input[2] = weight, zero_point
        return model, False

    @staticmethod
    def _constant_int8(model: ModelWrapper, tensor: str) -> np.ndarray | None:
        """The int8 values of ``tensor``: an initializer, or a Clip of one with constant bounds (folded here)."""
        value = model.get_initializer(tensor)
        if value is None:
            clip = model.find_producer(tensor)
            if clip is None or clip.op_type != "Clip" or len(clip.input) < 3:
                return None
            value, low, high = (model.get_initializer(name) for name in clip.input[:3])
            if value is None or low is None or high is None:
                return None
            value = np.clip(value, low, high)
        return value if value.dtype == np.int8 else None


class FlattenBeforeDequantize(Transformation):
    """``Q -> DQ -> Flatten`` becomes ``Q -> Flatten -> DQ`` when the scale is per-tensor (an exact reorder)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for flat in [n for n in model.graph.node if n.op_type in ("Flatten", "Reshape")]:
            dq = model.find_producer(flat.input[0])
            if dq is None or dq.op_type != "DequantizeLinear" or not _is_scalar(model, dq.input[1]):
                continue
            if len(model.find_consumers(dq.output[0])) != 1:
                continue
            flat_out, int_in = flat.output[0], dq.input[0]
            flat.input[0], flat.output[0] = int_in, f"{flat_out}/int"
            dq.input[0], dq.output[0] = flat.output[0], flat_out
            nodes = list(model.graph.node)
            nodes.remove(flat)
            nodes.insert(nodes.index(dq), flat)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            _forget_types(model, [flat_out])
            return model, True
        return model, False


def ort_int8_friendly(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The four rewrites above on a Brevitas QCDQ model (shapes inferred first for the tile check)."""
    from qonnx.transformation.infer_shapes import InferShapes

    model = ModelWrapper(proto)
    model = model.transform(InferShapes(), cleanup=False)
    for t in (QuantizeCopyConvOutput(), UnsignedActivations(), UnsignedWeights(), FlattenBeforeDequantize()):
        model = model.transform(t, cleanup=False)
    return model.model
