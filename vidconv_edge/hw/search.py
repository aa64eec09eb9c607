"""``build-fpga --target-fps max``: the highest frame rate whose design still fits the board.

FINN folds every layer just enough for a target rate (``step_target_fps_parallelization``), so a higher target
costs more LUTs / BRAM / DSPs, until a resource passes the fit limit or the slowest layer cannot unfold further.
The search builds up to the estimates for a rising target (from 30, each next target twice the rate the last
design reached, then bisecting between the last design that fits and the first that does not), then builds the
best target completely. The report's
``fps_search`` records every target tried (estimated rate, utilisation, fit) and what stopped the search.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

START_FPS = 30.0
MAX_TRIALS = 8
SATURATED = 1.02  # a doubled target that raises the estimated rate by less than 2%: the bottleneck cannot unfold
RESOLUTION = 1.1  # bisection stops when the failing target is within 10% of the fitting one
ESTIMATES = "generate_estimate_reports"


@dataclass
class Trial:
    """One design of the search: its target, FINN's estimated rate, its use of the board and its slowest layer."""

    target_fps: float
    estimated_fps: float | None
    fits: bool
    utilization: dict
    overflow: list[str]
    bottleneck: str | None


@dataclass
class SearchResult:
    """The trials in the order built, the best fitting one, and what stopped the search."""

    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    stopped_by: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"trials": [asdict(t) for t in self.trials], "best_target_fps": self.best.target_fps if self.best else None,
                "stopped_by": self.stopped_by}  # fmt: skip


def trial_of(target: float, report: dict) -> Trial:
    """The search's view of a build report."""
    designs = [report["merged"]] if report.get("design") == "merged" and "merged" in report else list(report["parts"].values())
    rated = [d for d in designs if d.get("estimated_fps")]
    slowest = min(rated, key=lambda d: d["estimated_fps"]) if rated else {}
    return Trial(float(target), report.get("estimated_fps"), bool(report.get("fits")), dict(report.get("utilization", {})),
                 [o["resource"] for o in report.get("overflow", [])], slowest.get("bottleneck"))  # fmt: skip


def search(build: Callable[[float], Trial], start: float = START_FPS, max_trials: int = MAX_TRIALS) -> SearchResult:
    """Raise the target from ``start`` (doubling, then bisecting) while the design fits and gets faster."""
    result = SearchResult()

    def run(target: float) -> Trial:
        trial = build(round(target, 1))
        result.trials.append(trial)
        return trial

    best = run(start)
    while not best.fits and len(result.trials) < 3:  # not even the start fits: try slower foldings
        best = run(best.target_fps / 2)
    if not best.fits:
        result.stopped_by = {"reason": "resource", "resources": best.overflow, "target_fps": best.target_fps,
                             "note": f"no design fits even at {best.target_fps} fps"}  # fmt: skip
        return result
    failing: Trial | None = None
    while len(result.trials) < max_trials:
        # FINN's least folding may already exceed the target: aim above what the design reaches
        trial = run(2 * max(best.target_fps, best.estimated_fps or 0))
        if not trial.fits:
            failing = trial
            break
        if (trial.estimated_fps or 0) < (best.estimated_fps or 0) * SATURATED:
            result.best = best
            result.stopped_by = {"reason": "layer", "layer": trial.bottleneck, "estimated_fps": trial.estimated_fps,
                                 "note": f"{trial.bottleneck} cannot unfold further: target {trial.target_fps} gives "
                                 f"{trial.estimated_fps:.1f} fps, target {best.target_fps} gave {best.estimated_fps:.1f}"}  # fmt: skip
            return result
        best = trial
    while failing is not None and len(result.trials) < max_trials and failing.target_fps > best.target_fps * RESOLUTION:
        trial = run(math.sqrt(best.target_fps * failing.target_fps))
        if trial.fits and (trial.estimated_fps or 0) >= (best.estimated_fps or 0):
            best = trial
        else:
            failing = trial if not trial.fits else failing
            if trial.fits:
                break
    result.best = best
    if failing is not None:
        use = {r: failing.utilization.get(r) for r in failing.overflow}
        result.stopped_by = {"reason": "resource", "resources": failing.overflow, "target_fps": failing.target_fps,
                             "utilization": use, "note": f"at target {failing.target_fps} fps "
                             + ", ".join(f"{r} {100 * (u or 0):.0f}%" for r, u in use.items()) + " exceeds the fit limit"}  # fmt: skip
    else:
        result.stopped_by = {"reason": "trials", "note": f"stopped after {max_trials} builds; the design still fits"}
    return result


def build_fpga_max_fps(source: str | os.PathLike | None, board: str, out_dir: str | os.PathLike, log=print,
                       max_trials: int = MAX_TRIALS, **options) -> dict:  # fmt: skip
    """``build_fpga`` at the highest target rate that fits ``board``: the search's designs go to
    ``out_dir/fps_search/`` (estimates only), the best one is built completely into ``out_dir``. The first
    design prepares (quantizes, exports, verifies) the model; the others and the final build continue its HW
    graph after the steps that do not depend on the target (``flow.SharedStart``)."""
    from vidconv_edge.hw.flow import SharedStart, build_fpga
    from vidconv_edge.hw.report import write_report

    out = Path(out_dir)
    trials_dir = out / "fps_search"
    shared = SharedStart()

    def build(target: float) -> Trial:
        folder = trials_dir / f"target_{target:g}"
        if folder.exists():
            shutil.rmtree(folder)
        log(f"fps search: building to the estimates at target {target:g} fps")
        report = build_fpga(source, board, folder, target_fps=target, log=lambda _m: None, shared=shared,
                            **{**options, "until": ESTIMATES})  # fmt: skip
        trial = trial_of(target, report)
        fps = "-" if trial.estimated_fps is None else f"{trial.estimated_fps:.1f}"
        log(f"fps search: target {target:g}: {fps} fps, " + ("fits" if trial.fits else f"does not fit ({', '.join(trial.overflow)})"))
        return trial

    result = search(build, max_trials=max_trials)
    target = result.best.target_fps if result.best else result.trials[-1].target_fps
    log(f"fps search: building the best design completely (target {target:g} fps)")
    report = build_fpga(source, board, out, target_fps=target, log=log, shared=shared, **options)
    report["fps_search"] = result.to_dict()
    write_report(report, out / "report.json")
    return report
