"""The held-out test split: clips that took no part in training, checkpoint selection or calibration.

``--test`` of ``eval``, ``quantize`` and ``build-fpga`` names it: a folder with ``test.txt`` (``synth --heldout``
writes one) or a list file (paths relative to its folder). Its top-1 is reported with n and a 95% Wilson
interval, beside (never mixed into) the validation figures that selected the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from vidconv_edge.errors import UserError

TEST_LIST = "test.txt"


def test_list(test: str | os.PathLike, option: str = "--test") -> tuple[Path, Path]:
    """(data root, list file) of a held-out set given as a folder with ``test.txt`` or as a list file."""
    path = Path(test)
    if path.is_dir():
        if not (path / TEST_LIST).is_file():
            raise UserError(f"{option} {test}: no {TEST_LIST} in the folder (vidconv-edge synth ... --heldout writes one)")
        return path, path / TEST_LIST
    if not path.is_file():
        raise UserError(f"{option} {test}: no such folder or list file")
    return path.parent, path


def _files(items: Iterable[tuple[str, object]]) -> set[Path]:
    return {Path(p).resolve() for p, _ in items}


def require_disjoint(test_items: Iterable[tuple[str, object]], used_items: Iterable[tuple[str, object]], use: str,
                     option: str = "--test") -> None:  # fmt: skip
    """UserError if a held-out clip is also one of ``used_items`` (the clips of ``use``, e.g. calibration)."""
    shared = sorted(_files(test_items) & _files(used_items))
    if shared:
        raise UserError(f"{option}: {len(shared)} clip(s) were used for {use}, e.g. {shared[0]}: "
                        "give a set that took no part in it")  # fmt: skip


def heldout_top1(model, ckpt: dict, test: str | os.PathLike, used=(), batch_size: int = 8, progress: bool = False,
                 device: str | None = "cpu") -> dict:  # fmt: skip
    """top-1 of ``model`` on the held-out set ``test``, with n, count correct, 95% interval and the list evaluated.

    ``used``: (items, what) pairs of clips that took part in training, selection or calibration; none may be in
    the test set."""
    from vidconv_edge.train.eval_data import eval_dataset
    from vidconv_edge.train.evaluate import evaluate
    from vidconv_edge.train.metrics import accuracy_entry

    root, listed = test_list(test)
    dataset = eval_dataset(root, ckpt, listed)
    for items, use in used:
        require_disjoint(dataset.items, items, use)
    result = evaluate(model, dataset, views=dataset.views, batch_size=batch_size, device=device, progress=progress)
    return {**accuracy_entry(result["top1"], result["num_samples"]), "list": str(listed)}
