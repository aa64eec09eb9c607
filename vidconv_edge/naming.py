"""Natural order of file names (frame2 before frame10): frame folders are read in this order everywhere."""

from __future__ import annotations

import re
from pathlib import Path

_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> list:
    """Sort key of a file name with its runs of digits compared as numbers."""
    return [int(t) if t.isdigit() else t for t in _DIGITS.split(path.name)]
