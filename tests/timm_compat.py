"""Import timm beside the CPU torch: the registry's torchvision lacks its C++ ops here, so the
``torchvision::nms``/``qnms`` schemas it registers fake kernels for must exist first."""

from __future__ import annotations

import torch


def import_timm():
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in (
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    ):
        try:
            lib.define(schema)
        except RuntimeError:  # already defined (a real torchvision build, or a second call)
            pass
    import timm

    return timm
