"""Annotation formats -> items ``(path, label)`` and class names.

Class-folder trees, MMAction2 list files (``relpath label``), Kinetics CSV and Something-Something v2
JSON, plus ``load_split``: the train/val split a ``--data DIR`` (with optional lists) stands for.
"""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from vidconv_edge.data.decode import VIDEO_EXTENSIONS, is_video_source
from vidconv_edge.errors import UserError

Label = int | tuple[int, ...]  # a class index, or the sorted class indices of a multi-label video
Item = tuple[str, Label]  # (path to a video file or frame folder, label)

VAL_FRACTION = 0.2
KINETICS_EXTENSIONS = (".mp4", ".webm", ".mkv")
SSV2_VIDEO_DIR = "20bn-something-something-v2"


class MissingVideosWarning(UserWarning):
    """Some videos named by an annotation file are not on disk (common for Kinetics)."""


def load_class_names(path: str | os.PathLike) -> list[str]:
    """``classes.txt``: one class name per line, in label order (blank lines ignored)."""
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise UserError(f"cannot read class list {path}: {e.strerror or e}") from e
    if not names:
        raise UserError(f"class list {path} is empty")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"class list {path} repeats {dup}")
    return names


def scan_class_folders(root: str | os.PathLike, class_names: Sequence[str] | None = None) -> tuple[list[Item], list[str]]:
    """One subfolder per class, videos (or frame folders) inside; classes sorted by name unless given."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder {root} not found")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(class_names) if class_names is not None else folders
    if not names:
        raise UserError(f"{root} has no class subfolders (expected <class>/<video> files)")
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        raise UserError(f"{root}: no folder for class(es) {missing[:5]}")
    items = []
    for label, name in enumerate(names):
        vids = sorted(p for p in (root / name).iterdir() if not p.name.startswith(".") and is_video_source(p))
        items += [(str(p), label) for p in vids]
    if not items:
        raise UserError(f"{root}: no videos in the class folders (extensions {', '.join(VIDEO_EXTENSIONS)})")
    return items, names


def load_list_file(
    list_file: str | os.PathLike,
    data_root: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    multilabel: bool = False,
) -> list[Item]:
    """MMAction2 list: ``relpath label`` (video) or ``relpath num_frames label`` (frame folder) per line.

    A label is a class index or, with ``class_names``, a class name. ``multilabel`` (MMAction2's
    ``multi_class``, e.g. MMIT): ``relpath label label ...``, one or more labels per video (a frame
    folder's ``num_frames`` after the path is recognised because the path is a folder).
    """
    list_file, data_root = Path(list_file), Path(data_root)
    lines = _read_lines(list_file)
    index = {n: i for i, n in enumerate(class_names or [])}
    items: list[Item] = []
    for no, line in lines:
        parts = line.split()
        path = str(data_root / parts[0])
        if multilabel:
            tokens = parts[2:] if len(parts) > 2 and Path(path).is_dir() and parts[1].isdigit() else parts[1:]
            if not tokens:
                raise UserError(f"{list_file}:{no}: expected 'path label [label ...]', got {line!r}")
            items.append((path, tuple(sorted({_label(t, index, class_names, list_file, no) for t in tokens}))))
            continue
        if len(parts) not in (2, 3):
            hint = " (several labels per video: a multi-label list, set multilabel)" if len(parts) > 3 else ""
            raise UserError(f"{list_file}:{no}: expected 'path label' or 'path num_frames label', got {line!r}{hint}")
        items.append((path, _label(parts[-1], index, class_names, list_file, no)))
    return items


def label_indices(label: Label) -> tuple[int, ...]:
    """The class indices of a label (one for single-label items)."""
    return label if isinstance(label, tuple) else (label,)


def load_kinetics_csv(
    csv_file: str | os.PathLike, root: str | os.PathLike, class_names: Sequence[str] | None = None
) -> tuple[list[Item], list[str]]:
    """Kinetics ``label,youtube_id,time_start,time_end,split``; files ``<id>_<start:06d>_<end:06d>.mp4``.

    Each file is looked for under ``root/<split>/``, ``root/<label>/`` and ``root/<split>/<label>/``.
    Missing files are skipped with one warning; none found is an error.
    """
    csv_file, root = Path(csv_file), Path(root)
    rows = []
    try:
        with csv_file.open(newline="") as f:
            reader = csv.DictReader(f)
            need = {"label", "youtube_id", "time_start", "time_end"}
            if not reader.fieldnames or not need <= set(reader.fieldnames):
                raise UserError(f"{csv_file}: expected columns label,youtube_id,time_start,time_end,split; got {reader.fieldnames}")
            rows = [(reader.line_num, r) for r in reader]
    except OSError as e:
        raise UserError(f"cannot read {csv_file}: {e.strerror or e}") from e
    names = list(class_names) if class_names is not None else sorted({r["label"] for _, r in rows})
    index = {n: i for i, n in enumerate(names)}
    items, missing = [], 0
    for no, r in rows:
        label = _label(r["label"], index, names, csv_file, no, by_name_only=True)
        try:
            stem = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
        except ValueError as e:
            raise UserError(f"{csv_file}:{no}: bad time_start/time_end ({e})") from e
        path = _find_kinetics_file(root, stem, r["label"], r.get("split") or "")
        if path is None:
            missing += 1
            continue
        items.append((str(path), label))
    if not items:
        raise UserError(f"{csv_file}: none of the {len(rows)} videos found under {root} (<split>/ or <label>/ folders)")
    if missing:
        warnings.warn(f"{csv_file}: {missing} of {len(rows)} videos not found under {root}, skipped", MissingVideosWarning, stacklevel=2)
    return items, names


def load_ssv2(
    split_json: str | os.PathLike, labels_json: str | os.PathLike, root: str | os.PathLike
) -> tuple[list[Item], list[str]]:
    """Something-Something v2: labels JSON ``{template: "index"}`` + a train/validation JSON list.

    Each entry's ``template`` with brackets removed is its class; the video is ``root/<id>.webm``.
    """
    split_json, labels_json, root = Path(split_json), Path(labels_json), Path(root)
    labels = _read_json(labels_json)
    if not isinstance(labels, dict):
        raise UserError(f"{labels_json}: expected a JSON object {{template: index}}")
    try:
        by_index = sorted((int(v), k) for k, v in labels.items())
    except (TypeError, ValueError) as e:
        raise UserError(f"{labels_json}: label indices must be integers ({e})") from e
    if [i for i, _ in by_index] != list(range(len(by_index))):
        raise UserError(f"{labels_json}: label indices must be 0..{len(by_index) - 1} without gaps")
    names = [k for _, k in by_index]
    index = {n: i for i, n in enumerate(names)}
    entries = _read_json(split_json)
    if not isinstance(entries, list):
        raise UserError(f"{split_json}: expected a JSON list of {{id, template, ...}} entries")
    if (not (root / f"{entries[0].get('id')}.webm").exists() if entries else False) and (root / SSV2_VIDEO_DIR).is_dir():
        root = root / SSV2_VIDEO_DIR
    items = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or "id" not in e or "template" not in e:
            raise UserError(f"{split_json}: entry {k} lacks 'id' or 'template'")
        template = e["template"].replace("[", "").replace("]", "")
        if template not in index:
            raise UserError(f"{split_json}: entry {k} (id {e['id']}): label {template!r} is outside the class list of {labels_json}")
        items.append((str(root / f"{e['id']}.webm"), index[template]))
    return items, names


def stratified_split(items: Sequence[Item], num_classes: int, val_fraction: float = VAL_FRACTION, seed: int = 0) -> tuple[list[Item], list[Item]]:
    """Per class, a seeded ``val_fraction`` of its items (at least one if it has two or more) go to val."""
    rng = np.random.default_rng([seed, 1])
    train, val = [], []
    for c in range(num_classes):
        mine = [it for it in items if label_indices(it[1])[0] == c]  # multi-label: by its first class
        order = rng.permutation(len(mine))
        n_val = max(1, round(val_fraction * len(mine))) if len(mine) >= 2 else 0
        val_ids = set(order[:n_val].tolist())
        for k, it in enumerate(mine):
            (val if k in val_ids else train).append(it)
    return train, val


def load_annotations(
    list_file: str | os.PathLike,
    data_root: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    multilabel: bool = False,
) -> tuple[list[Item], list[str] | None]:
    """Any supported list by its extension: ``.csv`` Kinetics, ``.json`` SSv2 (``labels.json`` beside it), else
    MMAction2 (``multilabel``: several labels per line; Kinetics and SSv2 are single-label)."""
    list_file, data_root = Path(list_file), Path(data_root)
    if not list_file.is_file():
        raise UserError(f"annotation file {list_file} not found")
    suffix = list_file.suffix.lower()
    if multilabel and suffix in (".csv", ".json"):
        raise UserError(f"{list_file}: Kinetics and Something-Something lists are single-label; multi-label sets use MMAction2 lists")
    if suffix == ".csv":
        return load_kinetics_csv(list_file, data_root, class_names)
    if suffix == ".json":
        labels = next((p for p in (list_file.parent / "labels.json", list_file.parent / "something-something-v2-labels.json") if p.is_file()), None)
        if labels is None:
            raise UserError(f"{list_file}: Something-Something lists need labels.json in the same folder")
        items, names = load_ssv2(list_file, labels, data_root)
        if class_names is not None and list(class_names) != names:
            raise UserError(f"{list_file}: the classes of {labels} differ from the given class list")
        return items, names
    return load_list_file(list_file, data_root, class_names, multilabel), (list(class_names) if class_names is not None else None)


def load_split(
    data_dir: str | os.PathLike,
    train_list: str | os.PathLike | None = None,
    val_list: str | os.PathLike | None = None,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
    multilabel: bool = False,
) -> tuple[list[Item], list[Item], list[str]]:
    """Train items, val items, class names for a data folder.

    Explicit lists if given (a train list without a val list is split, stratified); else
    ``train.txt``/``val.txt`` in the folder; else a seeded stratified split of the class-folder tree.
    Class names come from ``classes.txt`` when present. ``multilabel``: the lists are multi-label.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"data folder {data_dir} not found")
    names = load_class_names(data_dir / "classes.txt") if (data_dir / "classes.txt").is_file() else None
    if train_list is None and val_list is None and (data_dir / "train.txt").is_file():
        train_list = data_dir / "train.txt"
        val_list = data_dir / "val.txt" if (data_dir / "val.txt").is_file() else None
    if train_list is None and val_list is None:
        if multilabel:
            raise UserError(f"{data_dir}: a multi-label set needs list files (train.txt/val.txt or --train-list)")
        items, names = scan_class_folders(data_dir, names)
        train, val = stratified_split(items, len(names), val_fraction, seed)
        return train, val, names
    if train_list is None:
        raise UserError("a validation list needs a training list too")
    train, names = load_annotations(train_list, data_dir, names, multilabel)
    names = names or _numbered_names(train)
    if val_list is None:
        train, val = stratified_split(train, len(names), val_fraction, seed)
    else:
        val, _ = load_annotations(val_list, data_dir, names, multilabel)
    return train, val, names


def _numbered_names(items: Sequence[Item]) -> list[str]:
    return [f"class_{i}" for i in range(max(max(label_indices(y)) for _, y in items) + 1)]


def _label(token: str, index: dict[str, int], names: Sequence[str] | None, file: Path, no: int, by_name_only: bool = False) -> int:
    """A label token -> class index, or a UserError naming the file and line."""
    if not by_name_only and re.fullmatch(r"-?\d+", token):
        y = int(token)
        if y < 0 or (names is not None and y >= len(names)):
            n = "the class list" if names is None else f"the class list ({len(names)} classes: 0..{len(names) - 1})"
            raise UserError(f"{file}:{no}: label {y} is outside {n}")
        return y
    if token in index:
        return index[token]
    known = f"{len(names)} classes" if names is not None else "no class list given (use class indices or add classes.txt)"
    raise UserError(f"{file}:{no}: label {token!r} is outside the class list ({known})")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not a text file") from e
    return [(no, ln.strip()) for no, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e})") from e


def _find_kinetics_file(root: Path, stem: str, label: str, split: str) -> Path | None:
    folders = [root / split] if split else []
    for lab in dict.fromkeys((label, label.replace(" ", "_"))):
        folders += [root / lab] + ([root / split / lab] if split else [])
    folders.append(root)
    for folder in folders:
        for ext in KINETICS_EXTENSIONS:
            p = folder / f"{stem}{ext}"
            if p.exists():
                return p
    return None
