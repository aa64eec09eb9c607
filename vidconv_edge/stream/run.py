"""``run_stream``: source -> preprocess (decode thread) -> engine -> JSONL / overlay MP4 / window -> summary."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

from vidconv_edge.progress import bar
from vidconv_edge.stream.backends import Backend, open_backend
from vidconv_edge.stream.engine import Prediction, StreamEngine, paced_frame_step, pacing
from vidconv_edge.stream.outputs import JsonlWriter, LiveWindow, OverlayWriter, overlay_text
from vidconv_edge.stream.preprocess import Preprocessor
from vidconv_edge.stream.sources import FrameReader, Source, open_source
from vidconv_edge.stream.stats import host_cost_per_frame

log = logging.getLogger("vidconv_edge.stream")


class _Fps:
    """Frames per second over a sliding window of the last ``n`` frames."""

    def __init__(self, n: int = 30):
        self.n, self.stamps = n, []

    def tick(self) -> float | None:
        self.stamps = (self.stamps + [time.perf_counter()])[-self.n :]
        if len(self.stamps) < 2:
            return None
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])


def run_stream(
    source: str | os.PathLike | Source,
    model: str | os.PathLike | Backend | None = None,
    backend: str | None = None,
    stride: int = 1,
    pad: str = "none",
    topk: int = 5,
    jsonl: str | os.PathLike | None = None,
    overlay: str | os.PathLike | None = None,
    show: bool = False,
    recompute: bool = False,
    progress: bool = True,
    on_prediction: Callable[[Prediction], None] | None = None,
    frame_step: int | None = None,
) -> dict:
    """Stream ``source`` through ``model`` and return the summary dict.

    ``model``: a checkpoint, an ONNX early part or folder, a build-fpga folder, a ready
    :class:`Backend`, or None for the bundled default checkpoint. ``backend`` is inferred from
    ``model`` when None. Ctrl-C (KeyboardInterrupt) stops cleanly: the JSONL and MP4 written so
    far are finalised and the summary has ``interrupted: True``. ``frame_step``: the model takes every K-th
    frame (:class:`StreamEngine`); the overlay still shows every frame. None: K from the source's frame rate and
    the rate of the clips the model learnt (:func:`paced_frame_step`).
    """
    be = model if isinstance(model, Backend) else open_backend(model, backend)
    src = open_source(source)
    try:
        step = frame_step if frame_step is not None else paced_frame_step(src.fps, be.frame_rate)
        engine = StreamEngine(be, stride=stride, pad=pad, topk=topk, recompute=recompute, frame_step=step)
    except BaseException:
        src.close()
        raise
    window = LiveWindow() if show else None
    reader = FrameReader(src, Preprocessor(be.input_spec)).start()
    json_out: JsonlWriter | None = None
    video_out: OverlayWriter | None = None
    ok, interrupted, frames_in = False, False, 0
    fps_meter, last = _Fps(), None
    t_start = time.perf_counter()
    try:
        json_out = JsonlWriter(jsonl) if jsonl else None
        video_out = OverlayWriter(overlay, src.fps) if overlay else None
        frames_bar = bar(total=src.total, desc="stream", unit="frame", enabled=progress)
        try:
            for frame, x in reader:
                pred = engine.push(x, frame.index, frame.time)
                frames_in += 1
                fps = fps_meter.tick()
                if pred is not None:
                    last = pred
                    if json_out:
                        json_out.write(pred)
                    if on_prediction:
                        on_prediction(pred)
                if video_out or window:
                    lines = overlay_text(last, engine.warmup, fps)
                    if video_out:
                        video_out.write(frame.image, lines)
                    if window and not window.show(frame.image, lines):
                        interrupted = True  # 'q' / Esc in the window
                        break
                frames_bar.update()
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted: finishing the outputs written so far")
        finally:
            frames_bar.close()
        ok = True
    finally:
        reader.stop()
        for writer in (json_out, video_out):
            if writer is not None:
                writer.close(ok)
        if window:
            window.close()
    summary = {
        "source": src.name,
        "live": src.live,
        "backend": be.name,
        "model": be.model_name,
        "frames_in": frames_in,
        "frames_dropped": reader.dropped,
        "frames_corrupt": src.corrupt,
        "host_ms_per_frame": host_cost(reader, be, frames_in),
        **pacing(src.fps, be.frame_rate, frame_step is None),
    }
    elapsed = time.perf_counter() - t_start
    summary.update(_engine_stats(engine, frames_in, elapsed))
    summary.update(
        elapsed_s=round(elapsed, 3),
        interrupted=interrupted,
        jsonl=str(Path(jsonl)) if jsonl else None,
        overlay=str(Path(overlay)) if video_out is not None and video_out.frames else None,
    )
    return summary


def host_cost(reader: FrameReader, be: Backend, frames: int) -> dict:
    """Host-side milliseconds per frame: decode and resize (the decode thread), and on a device backend the
    packing, DMA round trip and unpacking of the accelerator calls, measured where the stream runs."""
    stages = {"decode": reader.decode_ms, "resize": reader.resize_ms}
    if hasattr(be, "host_stages"):
        stages.update({k: v for k, v in be.host_stages().items() if v.count})
    return host_cost_per_frame(stages, frames)



def _engine_stats(engine: StreamEngine, frames_in: int, elapsed: float) -> dict:
    if engine.whole_clip:
        clip = engine.timings.full.percentiles()
        return {
            "outputs": engine.timings.full.count, "stride": engine.stride, "frame_step": engine.frame_step,
            "pad": engine.pad,
            "fps": round(frames_in / elapsed, 2) if elapsed > 0 else None,
            "clip_ms_p50": clip[0], "clip_ms_p95": clip[1],
        }  # fmt: skip
    early = engine.timings.early.percentiles()
    later = engine.timings.later.percentiles()
    stats = {
        "outputs": engine.timings.later.count,
        "stride": engine.stride,
        "frame_step": engine.frame_step,
        "pad": engine.pad,
        "fps": round(frames_in / elapsed, 2) if elapsed > 0 else None,
        "early_ms_p50": early[0],
        "early_ms_p95": early[1],
        "later_ms_p50": later[0],
        "later_ms_p95": later[1],
    }
    if engine.recompute:
        full = engine.timings.full.percentiles()
        stats.update(recompute_ms_p50=full[0], recompute_ms_p95=full[1], max_abs_diff=engine.max_abs_diff)
    return stats


def print_summary(summary: dict, console=None) -> None:
    """The summary as a rich table."""
    from rich.console import Console
    from rich.table import Table

    from vidconv_edge.tables import print_table

    console = console or Console()
    table = Table(title="stream summary", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e-2 else f"{v:.2f}"
        return "-" if v is None else str(v)

    for key, value in summary.items():
        table.add_row(key, fmt(value))
    print_table(table, console)
