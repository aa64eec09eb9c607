"""FINN's packed stream format, in numpy (no FINN, no pynq): what the DMA buffers of an accelerator hold.

A folded tensor (..., fold, SIMD) of a FINN datatype (``INT4``, ``UINT8``, ...) travels as one word per
SIMD group: element i in bits [i*bits, (i+1)*bits) (two's complement), the word padded to whole bytes
and stored little-endian. This is ``finnpy_to_packed_bytearray(x, dt, reverse_inner=True,
reverse_endian=True)`` / ``packed_bytearray_to_finnpy(...)``, the form FINN's drivers use.
"""

from __future__ import annotations

import re

import numpy as np


def parse_datatype(name: str) -> tuple[int, bool]:
    """(bits, signed) of an integer FINN datatype name (``UINT8``, ``INT4``, ``BIPOLAR`` is not supported)."""
    m = re.fullmatch(r"(U?)INT(\d+)", name.upper())
    if not m or not 1 <= int(m.group(2)) <= 32:
        raise ValueError(f"unsupported stream datatype '{name}': expected INTn or UINTn")
    return int(m.group(2)), m.group(1) == ""


def container_dtype(name: str) -> np.dtype:
    """The smallest numpy integer type holding every value of the FINN datatype ``name``."""
    bits, signed = parse_datatype(name)
    for size in (8, 16, 32):
        if bits <= size:
            return np.dtype(f"{'int' if signed else 'uint'}{size}")
    raise AssertionError("unreachable: parse_datatype limits bits to 32")


def packed_bytes(simd: int, bits: int) -> int:
    """Bytes of one packed word of ``simd`` elements of ``bits`` bits."""
    return -(-simd * bits // 8)


def pack(x: np.ndarray, datatype: str) -> np.ndarray:
    """Folded integer tensor (..., SIMD) -> packed uint8 (..., bytes per word)."""
    bits, signed = parse_datatype(datatype)
    v = np.asarray(x)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if v.size and (v.min() < lo or v.max() > hi or not np.array_equal(v, np.round(v))):
        raise ValueError(f"values outside {datatype} ({lo}..{hi}) or not integers")
    u = v.astype(np.int64) & ((1 << bits) - 1)
    simd = v.shape[-1]
    if bits == 8:
        return u.astype(np.uint8)
    if bits == 4 and simd % 2 == 0:
        return (u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.uint8)
    bitplanes = ((u[..., None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(*v.shape[:-1], simd * bits)
    return np.packbits(bitplanes, axis=-1, bitorder="little")


def unpack(buf: np.ndarray, datatype: str, simd: int) -> np.ndarray:
    """Packed uint8 (..., bytes per word) -> the folded tensor (..., SIMD) as float32 integer values."""
    bits, signed = parse_datatype(datatype)
    buf = np.asarray(buf, dtype=np.uint8)
    if buf.shape[-1] != packed_bytes(simd, bits):
        raise ValueError(f"a word of {simd} x {datatype} takes {packed_bytes(simd, bits)} bytes, got {buf.shape[-1]}")
    if bits == 8:
        u = buf.astype(np.int64)
    elif bits == 4 and simd % 2 == 0:
        u = np.stack([buf & 0xF, buf >> 4], axis=-1).reshape(*buf.shape[:-1], simd).astype(np.int64)
    else:
        planes = np.unpackbits(buf, axis=-1, bitorder="little")[..., : simd * bits]
        u = (planes.reshape(*buf.shape[:-1], simd, bits).astype(np.int64) << np.arange(bits)).sum(-1)
    if signed:
        u = np.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    return u.astype(np.float32)
