"""Shared fixtures, and a guard: a test must leave the environment, torch's thread count and the cwd as it found them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/timm_compat.py and friends

# Set by pytest itself; by libraries once, at their first import (LD_LIBRARY_PATH: cv2; TORCHINDUCTOR_CACHE_DIR:
# brevitas; KMP_*: scikit-learn, scikit-video); by a build on purpose, for FINN's process-wide settings (hw/finn_env.py).
ENV_ALLOWED = {
    "PYTEST_CURRENT_TEST",
    "LD_LIBRARY_PATH",
    "TORCHINDUCTOR_CACHE_DIR",
    "KMP_DUPLICATE_LIB_OK",
    "KMP_INIT_AT_FORK",
    "FINN_BUILD_DIR",
    "FINN_SETTINGS",
    "XILINX_VIVADO",
}


def _state() -> tuple[dict[str, str], int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_ALLOWED}
    return env, torch.get_num_threads(), os.getcwd()


def _changes(before: tuple, after: tuple) -> list[str]:
    """What differs between two ``_state()`` snapshots, in words."""
    (env0, threads0, cwd0), (env1, threads1, cwd1) = before, after
    keys = sorted(k for k in env0.keys() | env1.keys() if env0.get(k) != env1.get(k))
    changes = [f"os.environ[{k!r}]: {env0.get(k)!r} -> {env1.get(k)!r}" for k in keys]
    if threads0 != threads1:
        changes.append(f"torch.get_num_threads(): {threads0} -> {threads1}")
    if cwd0 != cwd1:
        changes.append(f"cwd: {cwd0} -> {cwd1}")
    return changes


def _restore(state: tuple[dict[str, str], int, str]) -> None:
    env, threads, cwd = state
    for key in [k for k in os.environ if k not in ENV_ALLOWED and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    torch.set_num_threads(threads)
    os.chdir(cwd)


@pytest.fixture(autouse=True)
def _leaves_no_trace():
    """Fail a test that changes os.environ (but ENV_ALLOWED), torch's thread count or the cwd without restoring."""
    before = _state()
    yield
    changes = _changes(before, _state())
    if changes:
        _restore(before)  # one offender, one failure: the next tests start clean
        pytest.fail("the test changed global state (use monkeypatch / the one_thread fixture): " + "; ".join(changes))


@pytest.fixture(scope="session", autouse=True)
def _caches_in_tmp(tmp_path_factory):
    """The ONNX cache of the stream backends and FINN's scratch folder (before any build sets its own) in this
    session's temporary folder, never the user's ~/.cache or a shared /tmp folder."""
    finn = tmp_path_factory.mktemp("finn")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDCONV_EDGE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("FINN_BUILD_DIR", str(finn / "finn_tmp"))
        mp.setenv("FINN_SETTINGS", str(finn / "finn_settings.yaml"))
        (finn / "finn_tmp").mkdir()
        yield


@pytest.fixture
def one_thread():
    """torch on one thread for the test (bit-exact comparisons), restored after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def timm():
    from timm_compat import import_timm

    return import_timm()
