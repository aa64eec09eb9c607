"""Atomic file writing: every artifact is written to a temp file in the same folder, then renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from vidconv_edge.errors import UserError


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it over ``path``, on error remove it."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from e
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~current_umask())  # mkstemp makes 0600 files; artifacts get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _filled(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, overwrite: bool = False, exist_ok: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``path``; on success it replaces ``path`` (which must be missing or empty
    unless ``overwrite``), on error it is removed: the folder appears complete or not at all.

    ``exist_ok``: another process may write the same folder meanwhile (a cache); if it got there first, its
    folder is kept and ours dropped."""
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder")
    existed = _filled(path)
    if existed and not overwrite:
        raise UserError(f"{path} is not empty (pass overwrite=True / --force to replace it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        yield tmp
        if exist_ok and not existed and _filled(path):
            return  # written by another process meanwhile: keep it
        if path.exists():
            shutil.rmtree(path) if any(path.iterdir()) else path.rmdir()
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700 folders
        try:
            os.replace(tmp, path)
        except OSError:
            if not (exist_ok and _filled(path)):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
