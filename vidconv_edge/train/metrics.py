"""Classification metrics from scores, the metrics log (``metrics.jsonl``) and the PNG plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from vidconv_edge.io import atomic_path


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """AP of one class: mean precision at the rank of every positive (scores sorted high to low)."""
    order = torch.argsort(scores, descending=True, stable=True)
    hits = targets[order].float()
    ranks = torch.arange(1, len(hits) + 1, dtype=torch.float32)
    precision = torch.cumsum(hits, 0) / ranks
    return float((precision * hits).sum() / hits.sum())


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor) -> dict:
    """Single-label metrics: top-1, top-5, mean class accuracy (over classes present), confusion [true][pred]."""
    n, c = scores.shape
    top = scores.topk(min(5, c), dim=1).indices
    hit = top == labels[:, None]
    confusion = torch.zeros(c, c, dtype=torch.long)
    confusion.index_put_((labels, top[:, 0]), torch.ones(n, dtype=torch.long), accumulate=True)
    support = confusion.sum(1)
    present = support > 0
    per_class = confusion.diag()[present].float() / support[present].float()
    return {
        "top1": float(hit[:, 0].float().mean()) if n else 0.0,
        "top5": float(hit.any(1).float().mean()) if n else 0.0,
        "mean_class_acc": float(per_class.mean()) if n else 0.0,
        "confusion": confusion.tolist(),
        "num_samples": n,
    }


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion ``correct`` / ``n``."""
    if n < 1 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n >= 1, got {correct} of {n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_entry(top1: float, n: int) -> dict:
    """top-1 over ``n`` clips with its count correct and 95% Wilson interval (fractions)."""
    correct = round(top1 * n)
    return {"top1": top1, "n": n, "correct": correct, "ci95": list(wilson_interval(correct, n))}


def format_accuracy(entry: dict) -> str:
    """``91.2% (383/420, 95% CI 88.1-93.6%)``."""
    lo, hi = entry["ci95"]
    return f"{100 * entry['top1']:.1f}% ({entry['correct']}/{entry['n']}, 95% CI {100 * lo:.1f}-{100 * hi:.1f}%)"


def multilabel_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict:
    """Multi-label metrics (MMIT): mAP over classes with a positive; top-k = a positive among the k best;
    mean_class_acc = mean per-class accuracy of sigmoid(score) > 0.5."""
    n, c = scores.shape
    targets = targets.bool()
    top = scores.topk(min(5, c), dim=1).indices
    hit = targets.gather(1, top)
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(c) if targets[:, k].any()]
    binary = (scores.sigmoid() > 0.5) == targets
    return {
        "top1": float(hit[:, 0].float().mean()) if n else 0.0,
        "top5": float(hit.any(1).float().mean()) if n else 0.0,
        "mean_class_acc": float(binary.float().mean(0).mean()) if n else 0.0,
        "mAP": float(sum(aps) / len(aps)) if aps else 0.0,
        "confusion": None,
        "num_samples": n,
    }


def read_metrics(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(path: str | os.PathLike, records: list[dict]) -> None:
    """Rewrite ``metrics.jsonl`` (one JSON object per epoch) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


def plot_curves(records: list[dict], path: str | os.PathLike) -> None:
    """Loss and accuracy per epoch (train and val) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in records], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in records], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(epochs, [r["train_top1"] for r in records], "o-", label="train top-1")
    ax_acc.plot(epochs, [r["val_top1"] for r in records], "o-", label="val top-1")
    ax_acc.plot(epochs, [r["val_top5"] for r in records], "o--", label="val top-5")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_confusion(confusion: list[list[int]], class_names: list[str], path: str | os.PathLike) -> None:
    """Row-normalised confusion matrix (true label down, prediction across) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = torch.tensor(confusion, dtype=torch.float32)
    rows = m.sum(1, keepdim=True).clamp(min=1)
    c = len(class_names)
    side = min(4 + 0.35 * c, 30)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow((m / rows).numpy(), cmap="Blues", vmin=0, vmax=1)
    if c <= 60:
        ax.set_xticks(range(c), class_names, rotation=90, fontsize=8)
        ax.set_yticks(range(c), class_names, fontsize=8)
        if c <= 20:
            for i in range(c):
                for j in range(c):
                    if m[i, j]:
                        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
