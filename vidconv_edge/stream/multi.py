"""``run_streams``: several sources on one backend (one model, one accelerator), each with its own frame ring.

Each source is decoded in its own thread; the inference loop takes at most one ready frame per source per round
(fair interleaving) and never waits on one source while another has a frame: a slow source only gets fewer turns,
a source that fails is reported in its own summary entry while the others go on. Every source has its own
:class:`StreamEngine`, so its outputs equal a single-source run of it exactly.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vidconv_edge.errors import UserError
from vidconv_edge.progress import bar
from vidconv_edge.stream.backends import Backend, open_backend
from vidconv_edge.stream.engine import Prediction, StreamEngine, paced_frame_step, pacing
from vidconv_edge.stream.outputs import JsonlWriter, OverlayWriter, overlay_text
from vidconv_edge.stream.preprocess import Preprocessor
from vidconv_edge.stream.sources import FrameReader, open_source
from vidconv_edge.stream.stats import LatencyStats, host_cost_per_frame, merged

log = logging.getLogger("vidconv_edge.stream")
IDLE_WAIT_S = 0.002  # how long the loop waits for any source when none had a frame ready


@dataclass
class _Lane:
    """One source's reader, engine, overlay and counters."""

    name: str  # the source as given
    reader: FrameReader
    engine: StreamEngine
    overlay: OverlayWriter | None
    frames_in: int = 0
    outputs: int = 0
    error: str | None = None
    latency_ms: LatencyStats = field(default_factory=LatencyStats)  # frame taken from the decoder -> its output
    last: Prediction | None = None
    first_t: float | None = None
    last_t: float | None = None


def overlay_paths(overlay: str | os.PathLike, count: int) -> list[Path]:
    """One overlay file per source: ``F.mp4`` -> ``F-0.mp4``, ``F-1.mp4``, ... (in the order of the sources)."""
    path = Path(overlay)
    return [path.with_name(f"{path.stem}-{k}{path.suffix or '.mp4'}") for k in range(count)]


def run_streams(
    sources: Sequence[str | os.PathLike],
    model: str | os.PathLike | Backend | None = None,
    backend: str | None = None,
    stride: int = 1,
    pad: str = "none",
    topk: int = 5,
    jsonl: str | os.PathLike | None = None,
    overlay: str | os.PathLike | None = None,
    recompute: bool = False,
    progress: bool = True,
    on_prediction: Callable[[str, Prediction], None] | None = None,
    names: Sequence[str] | None = None,
    frame_step: int | None = None,
) -> dict:
    """Stream every source of ``sources`` through one backend; returns the summary (per source and in total).

    JSONL lines carry ``"source"``: ``names`` (the sources as the user gave them; default ``str(source)``);
    ``overlay`` F.mp4 writes one overlay per source (:func:`overlay_paths`); ``frame_step``: each source's
    model takes every K-th frame of it (None: K from that source's frame rate, :func:`paced_frame_step`).
    """
    if len(sources) < 1:
        raise UserError("no source to stream")
    names = [str(s) for s in (names or sources)]
    if len(set(names)) != len(names):
        raise UserError(f"a source is given twice: {names}")
    be = model if isinstance(model, Backend) else open_backend(model, backend)
    opened = [open_source(s) for s in sources]  # an unreachable source is a UserError before anything starts
    overlays = overlay_paths(overlay, len(sources)) if overlay else [None] * len(sources)
    def engine(fps: float | None) -> StreamEngine:
        step = frame_step if frame_step is not None else paced_frame_step(fps, be.frame_rate)
        return StreamEngine(be, stride=stride, pad=pad, topk=topk, recompute=recompute, frame_step=step)

    lanes = [
        _Lane(name, FrameReader(src, Preprocessor(be.input_spec)), engine(src.fps),
              OverlayWriter(path, src.fps) if path else None)  # fmt: skip
        for name, src, path in zip(names, opened, overlays)
    ]
    json_out = JsonlWriter(jsonl) if jsonl else None
    frames_bar = bar(desc=f"stream x{len(lanes)}", unit="frame", enabled=progress)
    ok, interrupted = False, False
    t_start = time.perf_counter()
    try:
        for lane in lanes:
            lane.reader.start()
        try:
            active = list(lanes)
            while active:
                served = False
                for lane in list(active):
                    try:
                        item = lane.reader.poll()
                    except Exception as e:  # noqa: BLE001 - a dead source is reported, the others go on
                        lane.error = f"{type(e).__name__}: {e}"
                        log.warning("source %s failed: %s", lane.name, lane.error)
                        item = None
                    if item is None:
                        if lane.reader.ended:
                            active.remove(lane)
                        continue
                    served = True
                    _serve(lane, *item, json_out, on_prediction)
                    frames_bar.update()
                if not served and active:
                    time.sleep(IDLE_WAIT_S)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted: finishing the outputs written so far")
        ok = True
    finally:
        frames_bar.close()
        for lane in lanes:
            lane.reader.stop()
            if lane.overlay is not None:
                lane.overlay.close(ok)
        if json_out is not None:
            json_out.close(ok)
    return _summary(be, lanes, time.perf_counter() - t_start, interrupted, jsonl, frame_step is None)


def _serve(lane: _Lane, frame, x: np.ndarray, json_out: JsonlWriter | None, on_prediction) -> None:
    t0 = time.perf_counter()
    lane.first_t = lane.first_t or t0
    pred = lane.engine.push(x, frame.index, frame.time)
    lane.frames_in += 1
    if pred is not None:
        lane.latency_ms.add((time.perf_counter() - t0) * 1e3)
        lane.outputs += 1
        lane.last = pred
        if json_out is not None:
            json_out.write(pred, source=lane.name)
        if on_prediction is not None:
            on_prediction(lane.name, pred)
    if lane.overlay is not None:
        lane.overlay.write(frame.image, [lane.name, *overlay_text(lane.last, lane.engine.warmup, None)])
    lane.last_t = time.perf_counter()


def _summary(be: Backend, lanes: list[_Lane], elapsed: float, interrupted: bool, jsonl, frame_auto: bool) -> dict:
    per_source = []
    for lane in lanes:
        p50, p95 = lane.latency_ms.percentiles()
        span = (lane.last_t - lane.first_t) if lane.first_t and lane.last_t else 0.0
        per_source.append({
            "source": lane.name, "frames_in": lane.frames_in, "frames_dropped": lane.reader.dropped,
            "frames_corrupt": lane.reader.source.corrupt, "outputs": lane.outputs,
            "fps": round(lane.frames_in / span, 2) if span > 0 else None,
            "latency_ms_p50": p50, "latency_ms_p95": p95, "error": lane.error,
            "overlay": str(lane.overlay.path) if lane.overlay is not None and lane.overlay.frames else None,
            "frame_step": lane.engine.frame_step, **pacing(lane.reader.source.fps, be.frame_rate, frame_auto),
        })  # fmt: skip
    p50, p95 = merged([lane.latency_ms for lane in lanes]).percentiles()
    frames = sum(lane.frames_in for lane in lanes)
    host = {"decode": merged([lane.reader.decode_ms for lane in lanes]),
            "resize": merged([lane.reader.resize_ms for lane in lanes])}  # fmt: skip
    if hasattr(be, "host_stages"):  # one accelerator serves every source
        host.update({k: v for k, v in be.host_stages().items() if v.count})
    return {
        "backend": be.name, "model": be.model_name, "sources": per_source,
        "total": {"sources": len(lanes), "frames_in": frames, "outputs": sum(lane.outputs for lane in lanes),
                  "frames_dropped": sum(lane.reader.dropped for lane in lanes),
                  "fps": round(frames / elapsed, 2) if elapsed > 0 else None,
                  "latency_ms_p50": p50, "latency_ms_p95": p95,
                  "failed": [lane.name for lane in lanes if lane.error],
                  "host_ms_per_frame": host_cost_per_frame(host, frames)},
        "elapsed_s": round(elapsed, 3), "interrupted": interrupted, "jsonl": str(Path(jsonl)) if jsonl else None,
    }  # fmt: skip



def print_multi_summary(summary: dict, console=None) -> None:
    """Per-source rows and the total as a rich table (names and numbers are never cut: rows fold instead)."""
    from rich.console import Console
    from rich.table import Table

    from vidconv_edge.tables import print_table

    console = console or Console()
    table = Table(title=f"stream summary: {summary['model']} on {summary['backend']}, {summary['elapsed_s']:.1f} s")
    for col in ("source", "frames", "step", "outputs", "dropped", "fps", "latency p50 / p95 ms", "error"):
        table.add_column(col, overflow="fold", justify="left" if col in ("source", "error") else "right")

    def ms(a, b) -> str:
        return "-" if a is None else f"{a:.2f} / {b:.2f}"

    for s in summary["sources"]:
        table.add_row(s["source"], str(s["frames_in"]), str(s.get("frame_step", "-")), str(s["outputs"]), str(s["frames_dropped"]),
                      "-" if s["fps"] is None else f"{s['fps']:.1f}", ms(s["latency_ms_p50"], s["latency_ms_p95"]),
                      s["error"] or "")  # fmt: skip
    t = summary["total"]
    table.add_row("total", str(t["frames_in"]), "", str(t["outputs"]), str(t["frames_dropped"]),
                  "-" if t["fps"] is None else f"{t['fps']:.1f}", ms(t["latency_ms_p50"], t["latency_ms_p95"]),
                  ", ".join(t["failed"]))  # fmt: skip
    print_table(table, console)
