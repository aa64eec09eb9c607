"""Evaluation: scores averaged over views, the frame-order test (paper Table 10), metrics; single-video prediction."""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from vidconv_edge.errors import UserError
from vidconv_edge.models import VideoClassifier
from vidconv_edge.progress import bar
from vidconv_edge.train.config import DataConfig
from vidconv_edge.train.metrics import classification_metrics, multilabel_metrics

ORDERS = ("normal", "reverse", "shuffle")


def to_model_input(clips: torch.Tensor, model: VideoClassifier, device: torch.device) -> torch.Tensor:
    """uint8 (B, T, 3, S, S) -> normalised float on ``device`` (views already folded into B)."""
    from vidconv_edge.data.transforms import normalize

    spec = model.input_spec
    return normalize(clips.to(device, non_blocking=True), spec.mean, spec.std)


class FrameOrder:
    """Reorders the frames of each clip: ``normal``, ``reverse``, or ``shuffle`` (one fixed random
    permutation per clip, never the identity, the same for all views of a clip; reproducible by seed)."""

    def __init__(self, order: str, seed: int = 0):
        if order not in ORDERS:
            raise UserError(f"unknown frame order '{order}' (choose from {', '.join(ORDERS)})")
        self.order = order
        self.generator = torch.Generator().manual_seed(seed)

    def _permutation(self, t: int) -> torch.Tensor:
        while True:
            perm = torch.randperm(t, generator=self.generator)
            if t < 2 or not torch.equal(perm, torch.arange(t)):
                return perm

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips``: (B, [V,] T, 3, S, S); the time axis is dim -4."""
        if self.order == "normal":
            return clips
        if self.order == "reverse":
            return clips.flip(-4)
        t = clips.shape[-4]
        return torch.stack([clip.index_select(-4, self._permutation(t)) for clip in clips])


def collect_scores(
    model: VideoClassifier,
    batches: Iterable,
    device: torch.device,
    order: FrameOrder | None = None,
    multilabel: bool = False,
    amp: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Run ``model`` over (clips, labels) batches; clips (B, T, 3, S, S) or (B, V, T, 3, S, S).

    Returns probabilities averaged over views (softmax, or sigmoid if multi-label), labels and the
    summed loss (negative log of the averaged probabilities; BCE for multi-label).
    """
    probs, labels, loss_sum = [], [], 0.0
    model.eval()
    with torch.inference_mode():
        for clips, target in batches:
            if order is not None:
                clips = order(clips)
            views = clips.shape[1] if clips.dim() == 6 else 1
            flat = clips.reshape(-1, *clips.shape[-4:])
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                logits = model(to_model_input(flat, model, device)).float()
            p = logits.sigmoid() if multilabel else logits.softmax(-1)
            p = p.reshape(clips.shape[0], views, -1).mean(1).cpu()
            target = target.cpu()
            if multilabel:
                bce = F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), target.float(), reduction="sum")
                loss_sum += float(bce) / p.shape[1]
            else:
                loss_sum += float(F.nll_loss(p.clamp_min(1e-12).log(), target, reduction="sum"))
            probs.append(p)
            labels.append(target)
    if not probs:
        raise UserError("the evaluation set is empty")
    return torch.cat(probs), torch.cat(labels), loss_sum


def summarize(probs: torch.Tensor, labels: torch.Tensor, loss_sum: float, multilabel: bool = False) -> dict:
    """Metrics dict (fractions) with the mean loss."""
    out = multilabel_metrics(probs, labels) if multilabel else classification_metrics(probs, labels)
    out["loss"] = loss_sum / max(len(labels), 1)
    return out


def evaluate(
    model: VideoClassifier,
    dataset: Dataset,
    views: tuple[int, int] | None = None,
    order: str = "normal",
    batch_size: int = 8,
    multilabel: bool = False,
    workers: int = 0,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Top-1, top-5, mean class accuracy, confusion [true][pred], num_samples (and mAP if multi-label).

    ``dataset`` yields (uint8 clip (T,3,S,S) or views (V,T,3,S,S), label); scores are averaged over
    the V views. ``views`` (clips, crops), if given, must match what the dataset yields.
    ``order`` reverses or shuffles the frames of every clip (the frame-order test).
    """
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if len(dataset) == 0:
        raise UserError("the evaluation set is empty")
    if views is not None:
        first = dataset[0][0]
        got = first.shape[0] if first.dim() == 5 else 1
        if got != views[0] * views[1]:
            raise UserError(f"the dataset yields {got} views per video, not {views[0]}x{views[1]}")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    loader = bar(loader, desc=f"eval ({order})", unit="batch", enabled=progress)
    model = model.to(device)
    probs, labels, loss_sum = collect_scores(model, loader, device, FrameOrder(order, seed), multilabel, device.type == "cuda")
    out = summarize(probs, labels, loss_sum, multilabel)
    out["order"] = order
    if views is not None:
        out["views"] = f"{views[0]}x{views[1]}"
    return out


def predict(
    model: VideoClassifier,
    class_names: list[str],
    video_path: str | os.PathLike,
    topk: int = 5,
    data: DataConfig | None = None,
    device: str | torch.device = "cpu",
) -> list[tuple[str, float]]:
    """Top-k (label, probability) for one video file: one test clip (the recipe's ``data`` sampling), centre crop."""
    from vidconv_edge.data import load_test_clip

    if topk < 1:
        raise UserError(f"top-k must be >= 1, got {topk}")
    if len(class_names) != model.num_classes:
        raise UserError(f"{len(class_names)} class names for a model with {model.num_classes} classes")
    clip = load_test_clip(video_path, model.input_spec, **(dataclasses.asdict(data) if data is not None else {}))
    device = torch.device(device)
    model = model.to(device).eval()
    with torch.inference_mode():
        p = model(to_model_input(clip[None], model, device)).softmax(-1)[0].cpu()
    values, idx = p.topk(min(topk, len(class_names)))
    return [(class_names[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]
