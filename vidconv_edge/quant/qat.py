"""Quantization-aware fine-tuning with the training loop of ``vidconv_edge.train`` (same progress,
checkpoints, metrics and resume): the loop trains the given Brevitas model and tags every checkpoint
it writes with the ``quant`` entry, so each one loads back as a quantized model.

With ``distill`` > 0 the loss mixes in knowledge distillation from the float model:
``distill * KL(float || quantized) + (1 - distill) * cross-entropy``, so the quantized model learns the float
model's answers (its soft scores on every class) rather than only the labels of the fine-tuning clips.
With ``freeze_bn`` the BatchNorm layers keep the float model's statistics (they normalise with them and do not
update them), as in PyTorch's and TensorRT's QAT recipes: only weights, biases and quantizer scales move.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.nn.functional as F

from vidconv_edge.errors import UserError
from vidconv_edge.quant.model import QUANT_KEY, quant_metadata, require_calibrated
from vidconv_edge.train.config import Recipe
from vidconv_edge.train.evaluate import to_model_input
from vidconv_edge.train.loop import Trainer


def check_distill(distill: float) -> None:
    """``distill`` is a loss weight in [0, 1]."""
    if not 0.0 <= distill <= 1.0:
        raise UserError(f"distill must be in [0, 1], got {distill}")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the softmax scores, averaged over the batch."""
    student, teacher = F.log_softmax(student_logits.float(), 1), F.log_softmax(teacher_logits.float(), 1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean")


class QATTrainer(Trainer):
    """:class:`vidconv_edge.train.loop.Trainer` on a given (calibrated) quantized model, optionally distilling
    ``teacher`` (the float model, frozen) with weight ``distill`` and with frozen BatchNorm statistics."""

    def __init__(self, qmodel: torch.nn.Module, recipe: Recipe, out_dir: str | os.PathLike,
                 teacher: torch.nn.Module | None = None, distill: float = 0.0, freeze_bn: bool = False,
                 **options):  # fmt: skip
        require_calibrated(qmodel)
        check_distill(distill)
        if distill and teacher is None:
            raise UserError("distillation needs the float model as teacher")
        if distill and recipe.train.multilabel:
            raise UserError("distillation is for single-label classification (the recipe is multi-label)")
        super().__init__(recipe, None, out_dir, None, model=qmodel, **options)
        self.distill, self.freeze_bn = distill, freeze_bn
        self.teacher = teacher.eval().requires_grad_(False).to(self.dist.device) if distill else None

    def checkpoint_extra(self) -> dict:
        return {QUANT_KEY: quant_metadata(self.model)}

    def train_mode(self) -> None:
        super().train_mode()
        if self.freeze_bn:
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()

    def loss(self, logits: torch.Tensor, clips: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        hard = super().loss(logits, clips, target)
        if not self.distill:
            return hard
        with torch.no_grad():
            soft = self.teacher(to_model_input(clips, self.teacher, self.dist.device))
        return self.distill * distillation_loss(logits, soft) + (1.0 - self.distill) * hard


def qat_recipe(base: Recipe | None, lr: float, epochs: int, batch_size: int) -> Recipe:
    """The float run's recipe with a fine-tuning learning rate, no warm-up, ``epochs`` epochs."""
    r = base or Recipe(name="qat")
    optim = dataclasses.replace(r.optim, lr=lr, min_lr=lr * 0.01, warmup_epochs=0.0, backbone_lr_factor=1.0)
    train = dataclasses.replace(r.train, epochs=epochs, batch_size=batch_size, step_batch_size=batch_size)
    return dataclasses.replace(r, name=f"{r.name}-qat", optim=optim, train=train, model={})


def run_qat(qmodel, datasets, out_dir, epochs: int, recipe: Recipe | None = None, lr: float = 1e-4,
            batch_size: int = 4, resume: bool = False, workers: int = 0, progress: bool = True,
            teacher: torch.nn.Module | None = None, distill: float = 0.0, freeze_bn: bool = False) -> dict:  # fmt: skip
    """Fine-tune ``qmodel`` for ``epochs`` epochs (distilling ``teacher`` with weight ``distill``, BatchNorm
    statistics frozen with ``freeze_bn``); checkpoints ``last.pt``/``best.pt`` in ``out_dir``."""
    trainer = QATTrainer(
        qmodel, qat_recipe(recipe, lr, epochs, batch_size), out_dir, teacher=teacher, distill=distill,
        freeze_bn=freeze_bn, epochs=epochs,
        resume=resume, datasets=datasets, workers=workers, progress=progress,
        device="cpu" if not torch.cuda.is_available() else None,
    )  # fmt: skip
    return trainer.fit()
