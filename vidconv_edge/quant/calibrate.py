"""Post-training calibration of a Brevitas model: activation ranges from data, optional bias correction."""

from __future__ import annotations

from typing import Iterable

import torch
from brevitas.graph.calibrate import bias_correction_mode, calibration_mode

from vidconv_edge.progress import bar


@torch.no_grad()
def calibrate(
    qmodel: torch.nn.Module, batches: Iterable[torch.Tensor], bias_correction: bool = False, progress: bool = True
) -> int:
    """Set every activation scale from ``batches`` (pixel-valued clips, B x T x 3 x H x W); returns the batch count.

    With ``bias_correction`` a second pass moves each layer's mean quantization error into its bias
    (layers without a bias, such as the all-ones tile conv, are skipped).
    """
    batches = list(batches)
    qmodel.eval()
    with calibration_mode(qmodel):
        for x in bar(batches, desc="calibrate", unit="batch", enabled=progress):
            qmodel(x)
    if bias_correction:
        with bias_correction_mode(qmodel, skip_if_no_bias=True):
            for x in bar(batches, desc="bias correction", unit="batch", enabled=progress):
                qmodel(x)
    return len(batches)
