"""Quantization-aware fine-tuning with the training loop of ``vidconv_edge.train`` (same progress,
checkpoints, metrics and resume): the loop trains the given Brevitas model and tags every checkpoint
it writes with the ``quant`` entry, so each one loads back as a quantized model.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from vidconv_edge.quant.model import QUANT_KEY, quant_metadata, require_calibrated
from vidconv_edge.train.config import Recipe
from vidconv_edge.train.loop import Trainer


class QATTrainer(Trainer):
    """:class:`vidconv_edge.train.loop.Trainer` on a given (calibrated) quantized model."""

    def __init__(self, qmodel: torch.nn.Module, recipe: Recipe, out_dir: str | os.PathLike, **options):
        require_calibrated(qmodel)
        super().__init__(recipe, None, out_dir, None, model=qmodel, **options)

    def checkpoint_extra(self) -> dict:
        return {QUANT_KEY: quant_metadata(self.model)}


def qat_recipe(base: Recipe | None, lr: float, epochs: int, batch_size: int) -> Recipe:
    """The float run's recipe with a fine-tuning learning rate, no warm-up, ``epochs`` epochs."""
    r = base or Recipe(name="qat")
    optim = dataclasses.replace(r.optim, lr=lr, min_lr=lr * 0.01, warmup_epochs=0.0, backbone_lr_factor=1.0)
    train = dataclasses.replace(r.train, epochs=epochs, batch_size=batch_size, step_batch_size=batch_size)
    return dataclasses.replace(r, name=f"{r.name}-qat", optim=optim, train=train, model={})


def run_qat(qmodel, datasets, out_dir, epochs: int, recipe: Recipe | None = None, lr: float = 1e-4,
            batch_size: int = 4, resume: bool = False, workers: int = 0, progress: bool = True) -> dict:  # fmt: skip
    """Fine-tune ``qmodel`` for ``epochs`` epochs; checkpoints ``last.pt``/``best.pt`` in ``out_dir``."""
    trainer = QATTrainer(
        qmodel, qat_recipe(recipe, lr, epochs, batch_size), out_dir, epochs=epochs, resume=resume,
        datasets=datasets, workers=workers, progress=progress, device="cpu" if not torch.cuda.is_available() else None,
    )  # fmt: skip
    return trainer.fit()
