"""Quantization-aware fine-tuning with the training loop of ``vidconv_edge.train`` (same progress,
checkpoints, metrics and resume).

The loop builds its model by name and saves plain checkpoints; this adapter hands it the Brevitas
model instead and adds the ``quant`` entry to every checkpoint it writes. Nothing else changes.
"""

from __future__ import annotations

import functools
import os
from unittest import mock

import torch

from vidconv_edge.checkpoint import save_checkpoint
from vidconv_edge.quant.model import QUANT_KEY, quant_metadata
from vidconv_edge.train import loop
from vidconv_edge.train.config import Recipe


class QATTrainer(loop.Trainer):
    """:class:`vidconv_edge.train.loop.Trainer` on a given quantized model."""

    def __init__(self, qmodel: torch.nn.Module, recipe: Recipe, out_dir: str | os.PathLike, **options):
        self.qmodel = qmodel
        with mock.patch.object(loop, "create_model", self._model_factory):
            super().__init__(recipe, None, out_dir, qmodel.name, **options)

    def _model_factory(self, name: str, **_config) -> torch.nn.Module:
        return self.qmodel

    def _save(self, epoch: int, improved: bool) -> None:
        tagged = functools.partial(save_checkpoint, **{QUANT_KEY: quant_metadata(self.model)})
        with mock.patch.object(loop, "save_checkpoint", tagged):
            super()._save(epoch, improved)


def qat_recipe(base: Recipe | None, lr: float, epochs: int, batch_size: int) -> Recipe:
    """The float run's recipe with a fine-tuning learning rate, no warm-up, ``epochs`` epochs."""
    import dataclasses

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
