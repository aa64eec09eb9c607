"""The README's "held by" references name tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_readme_names_exists():
    text = (ROOT / "README.md").read_text()
    refs = re.findall(r"`(tests/\w+\.py)::(\w+)`", text)
    assert len(refs) >= 10
    missing = [f"{f}::{name}" for f, name in refs if f"def {name}(" not in (ROOT / f).read_text()]
    assert missing == []
