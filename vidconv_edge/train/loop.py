"""The training loop: recipe -> model, data, optimizer; epochs with validation, checkpoints, metrics, resume, DDP.

Single process or under ``torchrun`` (DDP; only rank 0 writes). Per-step batches are accumulated to the
recipe's effective batch. Checkpoints hold everything to continue exactly: model, optimizer, scheduler,
AMP scaler, every rank's RNG states, epoch, best top-1 and early-stopping counter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from vidconv_edge.checkpoint import load_checkpoint, save_checkpoint
from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_path
from vidconv_edge.models import VideoClassifier, create_model
from vidconv_edge.progress import bar, write
from vidconv_edge.train import distributed as D
from vidconv_edge.train.config import Recipe
from vidconv_edge.train.evaluate import collect_scores, summarize, to_model_input
from vidconv_edge.train.init_weights import load_pretrained
from vidconv_edge.train.metrics import plot_curves, read_metrics, write_metrics
from vidconv_edge.train.optim import build_optimizer, build_scheduler, scaled_lr

LAST, BEST, METRICS, CURVES = "last.pt", "best.pt", "metrics.jsonl", "curves.png"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_data(
    recipe: Recipe, data_dir, spec, train_list=None, val_list=None, seed: int = 0
) -> tuple[Dataset, Dataset, list[str]]:
    """(train, val, class names) for the recipe's data options (``vidconv_edge.data.build_datasets``)."""
    from vidconv_edge.data import build_datasets

    options = dataclasses.asdict(recipe.data) | {"multilabel": recipe.train.multilabel}
    return build_datasets(data_dir, spec, train_list=train_list, val_list=val_list, seed=seed, **options)


class Trainer:
    """One training run. ``fit()`` returns the final metrics; ``model`` is the trained (unwrapped) model.

    ``model``: an already built model to train instead of ``create_model(model_name, **recipe.model)``
    (e.g. a quantized one for QAT); its class count must match the data. ``checkpoint_extra()`` adds
    entries to every checkpoint written.
    """

    def __init__(
        self,
        recipe: Recipe,
        data_dir: str | os.PathLike | None,
        out_dir: str | os.PathLike,
        model_name: str | None,
        epochs: int | None = None,
        resume: bool = False,
        pretrained: str | os.PathLike | None = None,
        train_list: str | os.PathLike | None = None,
        val_list: str | os.PathLike | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        seed: int | None = None,
        stop_after: int | None = None,
        datasets: tuple[Dataset, Dataset, list[str]] | None = None,
        device: str | None = None,
        progress: bool = True,
        model: VideoClassifier | None = None,
    ):
        if model is None and model_name is None:
            raise ValueError("give a model name or a model")
        if model is not None and model_name not in (None, model.name):
            raise ValueError(f"model_name '{model_name}' is not the given model '{model.name}'")
        self.out = Path(out_dir)
        self.epochs = epochs if epochs is not None else recipe.train.epochs
        self.step_batch = batch_size or recipe.train.step_batch_size
        self.workers = recipe.train.workers if workers is None else workers
        self.seed = recipe.train.seed if seed is None else seed
        self.stop_after = stop_after
        self.progress = progress
        for name, value in (("epochs", self.epochs), ("batch size", self.step_batch)):
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        if self.workers < 0:
            raise UserError(f"workers must be >= 0, got {self.workers}")
        if stop_after is not None and stop_after < 1:
            raise UserError(f"stop_after must be >= 1, got {stop_after}")
        run = dict(epochs=self.epochs, step_batch_size=self.step_batch, workers=self.workers, seed=self.seed)
        self.recipe = recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **run))  # as run
        if resume and not (self.out / LAST).is_file():
            raise UserError(f"nothing to resume: {self.out / LAST} not found")
        if not resume and (self.out / LAST).is_file():
            raise UserError(f"{self.out} already holds a run ({LAST}); continue it with --resume or choose another --out")

        self.dist = D.init_distributed(device)
        spec = (model or create_model(model_name, **recipe.model)).input_spec  # the data needs frames, size, mean, std
        if datasets is None:
            if data_dir is None:
                raise UserError("no data: give a data folder")
            datasets = build_data(recipe, data_dir, spec, train_list, val_list, self.seed)
        self.train_ds, self.val_ds, self.class_names = datasets
        if recipe.data.frame_rate is None and hasattr(self.train_ds, "items"):  # recorded for stream's pacing
            from vidconv_edge.data.decode import typical_frame_rate

            rate = typical_frame_rate([path for path, _ in self.train_ds.items])
            self.recipe = recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, frame_rate=rate))
        if len(self.train_ds) == 0 or len(self.val_ds) == 0:
            raise UserError(f"empty split: {len(self.train_ds)} training and {len(self.val_ds)} validation videos")
        seed_everything(self.seed)
        if model is None:
            model = create_model(model_name, **{**recipe.model, "num_classes": len(self.class_names)})
        elif model.num_classes != len(self.class_names):
            raise UserError(f"model '{model.name}' has {model.num_classes} classes, the data {len(self.class_names)}")
        self.model: VideoClassifier = model
        if pretrained is not None and not resume:
            self.log(load_pretrained(self.model, pretrained))
        seed_everything(self.seed + self.dist.rank)  # augmentation and dropout differ per rank

        cuda = self.dist.device.type == "cuda"
        self.amp = cuda and recipe.train.amp
        self.model.to(self.dist.device)
        if cuda and recipe.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            self.net = DistributedDataParallel(self.model, device_ids=[self.dist.local_rank] if cuda else None)

        world = self.dist.world_size
        self.accum = max(1, math.ceil(recipe.train.batch_size / (self.step_batch * world)))
        self.sampler = DistributedSampler(self.train_ds, num_replicas=world, rank=self.dist.rank, shuffle=True, seed=self.seed)
        per_rank = len(self.sampler)
        self.drop_last = per_rank >= self.step_batch  # no 1-sample tail batch (BatchNorm in training)
        batches = per_rank // self.step_batch if self.drop_last else 1
        self.steps_per_epoch = math.ceil(batches / self.accum)
        self.effective_batch = self.step_batch * world * self.accum
        self.optimizer = build_optimizer(self.model, recipe.optim, scaled_lr(recipe.optim, world, self.effective_batch))
        self.scheduler = build_scheduler(self.optimizer, recipe.optim, self.steps_per_epoch, self.epochs)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if recipe.train.multilabel:
            self.criterion: nn.Module = nn.BCEWithLogitsLoss()
        else:
            self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.train.label_smoothing)

        self.start_epoch, self.best_top1, self.best_epoch, self.bad_epochs = 0, -1.0, 0, 0
        self.records: list[dict] = []
        self.rng_to_restore: dict | None = None
        if resume:
            self._resume()

    # -- helpers -----------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        """A progress line on rank 0, to stderr (stdout stays free for results such as ``--json``)."""
        write(text, enabled=self.progress and self.dist.is_main)

    def _loader(self, dataset: Dataset, epoch: int, sampler=None) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch * 101 + self.dist.rank)
        return DataLoader(
            dataset,
            batch_size=self.step_batch,
            sampler=sampler,
            drop_last=self.drop_last if sampler is not None else False,
            num_workers=self.workers,
            worker_init_fn=_seed_worker,
            generator=g,
            pin_memory=self.dist.device.type == "cuda",
        )

    def _bar(self, loader, desc: str):
        """Batches with a bar on a terminal; in a log file the line per epoch is :meth:`log`'s."""
        return bar(loader, desc=desc, unit="batch", enabled=self.progress and self.dist.is_main, done_line=False)

    # -- resume / checkpoints ------------------------------------------------------------------------
    def _resume(self) -> None:
        ckpt = load_checkpoint(self.out / LAST)
        if ckpt["model"] != self.model.name:
            raise UserError(f"{self.out / LAST} is a run of model '{ckpt['model']}', not '{self.model.name}'")
        if list(ckpt["class_names"]) != list(self.class_names):
            raise UserError(
                f"{self.out / LAST} was trained on other classes ({len(ckpt['class_names'])} classes: "
                f"{', '.join(ckpt['class_names'][:5])}...) than this data ({len(self.class_names)})"
            )
        if "optimizer" not in ckpt:
            raise UserError(f"{self.out / LAST} holds no training state (optimizer); it cannot be resumed")
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.start_epoch = ckpt["epoch"]
        self.best_top1, self.best_epoch, self.bad_epochs = ckpt["best_top1"], ckpt["best_epoch"], ckpt["bad_epochs"]
        rngs = ckpt["rng"]
        if len(rngs) == self.dist.world_size:
            self.rng_to_restore = rngs[self.dist.rank]
        else:
            self.log(f"resuming with {self.dist.world_size} processes instead of {len(rngs)}: RNG streams reseeded")
            seed_everything(self.seed + 7919 * self.start_epoch + self.dist.rank)
        self.records = [r for r in read_metrics(self.out / METRICS) if r["epoch"] <= self.start_epoch]
        self.log(f"resumed {self.out / LAST} after epoch {self.start_epoch} (best val top-1 {self.best_top1:.4f})")

    def checkpoint_extra(self) -> dict:
        """Further entries of every checkpoint this run writes (none for float training)."""
        return {}

    def loss(self, logits: torch.Tensor, clips: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (``clips``: the loader's uint8 clips, for losses that need them)."""
        return self.criterion(logits.float(), target.float() if self.recipe.train.multilabel else target)

    def _save(self, epoch: int, improved: bool) -> None:
        rngs = D.all_gather_objects(self.dist, rng_state())
        if not self.dist.is_main:
            return
        extra = dict(
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=rngs,
            epoch=epoch,
            epochs=self.epochs,
            best_top1=self.best_top1,
            best_epoch=self.best_epoch,
            bad_epochs=self.bad_epochs,
            recipe=self.recipe.to_dict(),
            metrics=self.records[-1],
            **self.checkpoint_extra(),
        )
        save_checkpoint(self.out / LAST, self.model, self.class_names, **extra)
        if improved:
            save_checkpoint(self.out / BEST, self.model, self.class_names, **extra)
        write_metrics(self.out / METRICS, self.records)
        plot_curves(self.records, self.out / CURVES)

    # -- epochs ------------------------------------------------------------------------------------
    def train_mode(self) -> None:
        """Put the network in training mode at the start of each epoch."""
        self.net.train()

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        self.train_mode()
        self.sampler.set_epoch(epoch)
        loader = self._loader(self.train_ds, epoch, sampler=self.sampler)
        n = len(loader)
        loss_sum, correct, count = 0.0, 0, 0
        self.optimizer.zero_grad(set_to_none=True)
        batches = self._bar(loader, f"epoch {epoch + 1}/{self.epochs}")
        for i, (clips, target) in enumerate(batches):
            start = (i // self.accum) * self.accum
            group = min(self.accum, n - start)
            step_now = i == start + group - 1
            x = to_model_input(clips, self.model, self.dist.device)
            y = target.to(self.dist.device)
            sync = contextlib.nullcontext() if step_now or not self.dist.enabled else self.net.no_sync()
            with sync:
                with torch.autocast(device_type=self.dist.device.type, dtype=torch.float16, enabled=self.amp):
                    logits = self.net(x)
                loss = self.loss(logits, clips, y)
                self.scaler.scale(loss / group).backward()
            if step_now:
                if self.recipe.optim.clip_grad_norm:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.optim.clip_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
            top1 = logits.detach().argmax(1)
            hits = y.gather(1, top1[:, None]).squeeze(1) > 0 if self.recipe.train.multilabel else top1 == y
            loss_sum += float(loss.detach()) * len(y)
            correct += int(hits.sum())
            count += len(y)
            batches.set_postfix(loss=f"{loss_sum / count:.3f}", top1=f"{correct / count:.3f}", lr=f"{self._lr():.2e}")
        D.broadcast_buffers(self.dist, self.model)  # BatchNorm statistics of rank 0 everywhere
        totals = np.sum(D.all_gather_objects(self.dist, (loss_sum, correct, count)), axis=0)
        return float(totals[0] / max(totals[2], 1)), float(totals[1] / max(totals[2], 1))

    def _validate(self) -> dict:
        shard = Subset(self.val_ds, range(self.dist.rank, len(self.val_ds), self.dist.world_size))
        loader = self._loader(shard, 0)
        multilabel = self.recipe.train.multilabel
        probs, labels, loss_sum = collect_scores(
            self.model, self._bar(loader, "validate"), self.dist.device, multilabel=multilabel, amp=self.amp
        ) if len(shard) else (None, None, 0.0)
        parts = [p for p in D.all_gather_objects(self.dist, (probs, labels, loss_sum)) if p[0] is not None]
        probs = torch.cat([p[0] for p in parts])
        labels = torch.cat([p[1] for p in parts])
        return summarize(probs, labels, sum(p[2] for p in parts), multilabel)

    def _lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def fit(self) -> dict:
        """Train from ``start_epoch`` to ``epochs`` (or ``stop_after`` epochs of this run); final metrics."""
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.out / "recipe.yaml") as tmp:
                tmp.write_text(yaml.safe_dump(self.recipe.to_dict(), sort_keys=False))
        world = self.dist.world_size
        self.log(
            f"{self.model.name}: {len(self.class_names)} classes, {len(self.train_ds)} train / {len(self.val_ds)} val videos; "
            f"batch {self.step_batch} x {world} process(es) x {self.accum} accumulation = {self.effective_batch}, peak lr {max(g['initial_lr'] for g in self.optimizer.param_groups):.2e}; "
            f"{self.steps_per_epoch} steps/epoch on {self.dist.device}"
        )
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore)
        stopped_early, done = False, 0
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.time()
            lr = self._lr()
            train_loss, train_top1 = self._train_epoch(epoch)
            val = self._validate()
            improved = val["top1"] > self.best_top1
            if improved:
                self.best_top1, self.best_epoch, self.bad_epochs = val["top1"], epoch + 1, 0
            else:
                self.bad_epochs += 1
            record = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": train_loss,
                "train_top1": train_top1,
                "val_loss": val["loss"],
                "val_top1": val["top1"],
                "val_top5": val["top5"],
                "val_mean_class_acc": val["mean_class_acc"],
                "time": round(time.time() - t0, 3),
            }
            if "mAP" in val:
                record["val_mAP"] = val["mAP"]
            self.records.append(record)
            self._save(epoch + 1, improved)
            self.log(
                f"epoch {epoch + 1}/{self.epochs}  lr {lr:.2e}  train loss {train_loss:.4f} top1 {train_top1:.3f}  "
                f"val loss {val['loss']:.4f} top1 {val['top1']:.3f} top5 {val['top5']:.3f}  {record['time']:.1f}s"
                + ("  *best*" if improved else "")
            )
            done += 1
            patience = self.recipe.train.early_stopping
            if patience and self.bad_epochs >= patience:
                self.log(f"early stopping: no better val top-1 for {patience} epochs (best {self.best_top1:.4f} at epoch {self.best_epoch})")
                stopped_early = True
                break
            if self.stop_after is not None and done >= self.stop_after and epoch + 1 < self.epochs:
                self.log(f"stopped after {done} epoch(s) as asked; continue with --resume")
                break
        D.barrier(self.dist)
        last = self.records[-1] if self.records else {}
        return {
            **last,
            "epochs_done": last.get("epoch", 0),
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "stopped_early": stopped_early,
            "out": str(self.out),
        }


def train(
    cfg: Recipe,
    data_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    model_name: str,
    epochs: int | None = None,
    resume: bool = False,
    pretrained: str | os.PathLike | None = None,
    train_list: str | os.PathLike | None = None,
    val_list: str | os.PathLike | None = None,
    **options,
) -> dict:
    """Train ``model_name`` with recipe ``cfg``; writes last.pt, best.pt, metrics.jsonl, curves.png in ``out_dir``.

    ``options``: batch_size, workers, seed, stop_after, datasets, device, progress, model (see :class:`Trainer`).
    """
    trainer = Trainer(cfg, data_dir, out_dir, model_name, epochs, resume, pretrained, train_list, val_list, **options)
    return trainer.fit()
