"""The ONNX parts of a checkpoint for the onnxruntime backend, exported on first use and cached by content.

``<cache>/onnx/<key>/`` (the key: sha256 of the parts' format version and the checkpoint file) holds
``early.onnx``, ``later.onnx`` and ``full.onnx`` (float ONNX of a float checkpoint, QDQ int8 of a quantized one). ``<cache>`` is ``$VIDCONV_EDGE_CACHE``,
else ``$XDG_CACHE_HOME/vidconv-edge``, else ``~/.cache/vidconv-edge``. A folder appears complete or not at all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vidconv_edge.errors import UserError
from vidconv_edge.io import atomic_folder
from vidconv_edge.progress import write

CACHE_ENV = "VIDCONV_EDGE_CACHE"
PARTS = ("early", "later", "full")
PARTS_VERSION = 2  # raised when the same checkpoint exports differently (2: QDQ weights stored as uint8)


def cache_root() -> Path:
    """The cache folder of vidconv-edge (``$VIDCONV_EDGE_CACHE``, ``$XDG_CACHE_HOME/vidconv-edge``, ``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidconv-edge"


def content_key(path: str | os.PathLike) -> str:
    """The sha256 of :data:`PARTS_VERSION` and the file's bytes: parts of an older export are never reused."""
    digest = hashlib.sha256(f"vidconv-edge onnx parts v{PARTS_VERSION}\n".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_parts(checkpoint: str | os.PathLike) -> Path:
    """The folder of ``checkpoint``'s ONNX parts, exporting them the first time this content is seen."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    folder = cache_root() / "onnx" / content_key(checkpoint)
    if all((folder / f"{part}.onnx").is_file() for part in PARTS):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the ONNX cache {folder.parent} (set {CACHE_ENV}): {e.strerror or e}") from e
    with atomic_folder(folder, overwrite=True, exist_ok=True) as tmp:  # overwrite: an incomplete older folder
        export_parts(checkpoint, tmp)  # exist_ok: another process exporting the same content may finish first
    write(f"onnxruntime: exported the ONNX parts of {checkpoint} to {folder}")
    return folder


def export_parts(checkpoint: Path, out: Path) -> None:
    """``early``/``later``/``full`` ONNX files of a float (float ONNX) or quantized (QDQ int8) checkpoint."""
    from vidconv_edge.quant.model import any_model_from_checkpoint, is_quant_model

    model, ckpt = any_model_from_checkpoint(checkpoint)
    names, recipe = list(ckpt["class_names"]), ckpt.get("recipe")
    if is_quant_model(model):
        from vidconv_edge.export.qdq import export_qdq as export
    else:
        from vidconv_edge.export.onnx import export_onnx as export
    for part in PARTS:
        export(model, out / f"{part}.onnx", part=part, class_names=names, recipe=recipe)
