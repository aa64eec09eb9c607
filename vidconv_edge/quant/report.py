"""Per-layer error of a quantized model against its float model: which layer loses the accuracy.

Forward hooks on the modules both models have under the same name (convs, BN, linear, the VidConv
temporal branch, blocks, stages, head): for each, the error of the quantized output against the float
output on the same clips. Metrics: SQNR in dB (10 log10 of signal power / error power), relative RMS
error, max abs error, cosine similarity.
"""

from __future__ import annotations

import json
import math
import os

import torch
import torch.nn as nn

from vidconv_edge.io import atomic_path

SKIP = (nn.ReLU, nn.Identity, nn.Dropout, nn.Sequential, nn.ModuleList)


# T's float output lacks alpha (folded into the quantized weights): compared as ``temporal`` instead.
def _compared_names(float_model: nn.Module, qmodel: nn.Module) -> list[str]:
    qnames = dict(qmodel.named_modules())
    names = []
    for name, fm in float_model.named_modules():
        if not name or name not in qnames or isinstance(fm, SKIP) or name.endswith((".tile", ".temporal.conv")):
            continue
        names.append(name)
    return names


@torch.no_grad()
def layer_errors(float_model: nn.Module, qmodel: nn.Module, float_batches, pixel_batches) -> list[dict]:
    """Per-layer errors over paired batches (float input normalised, quantized input raw pixels)."""
    names = _compared_names(float_model, qmodel)
    stats = {n: {"err2": 0.0, "sig2": 0.0, "dot": 0.0, "q2": 0.0, "max": 0.0} for n in names}
    outs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_m, _i, out):
            outs[name] = (out.value if hasattr(out, "value") else out).detach().float()

        return hook

    fmods, qmods = dict(float_model.named_modules()), dict(qmodel.named_modules())
    float_model.eval(), qmodel.eval()
    for xf, xq in zip(float_batches, pixel_batches):
        handles = [fmods[n].register_forward_hook(keep(n)) for n in names]
        float_model(xf)
        for h in handles:
            h.remove()
        ref, outs = outs, {}
        handles = [qmods[n].register_forward_hook(keep(n)) for n in names]
        qmodel(xq)
        for h in handles:
            h.remove()
        for n in names:
            if n not in ref or n not in outs or ref[n].shape != outs[n].shape:
                continue
            f, q = ref[n], outs[n]
            s = stats[n]
            s["err2"] += float(((q - f) ** 2).sum())
            s["sig2"] += float((f**2).sum())
            s["q2"] += float((q**2).sum())
            s["dot"] += float((q * f).sum())
            s["max"] = max(s["max"], float((q - f).abs().max()))
        outs = {}
    rows = []
    for n in names:
        s = stats[n]
        if s["sig2"] == 0.0 and s["err2"] == 0.0:
            continue
        rel = math.sqrt(s["err2"] / s["sig2"]) if s["sig2"] else float("inf")
        sqnr = 10 * math.log10(s["sig2"] / s["err2"]) if s["err2"] else float("inf")
        cos = s["dot"] / math.sqrt(s["sig2"] * s["q2"]) if s["sig2"] and s["q2"] else 0.0
        part = qmodel.part_of(n) if hasattr(qmodel, "part_of") else ""
        rows.append(dict(layer=n, type=type(fmods[n]).__name__, part=part, sqnr_db=sqnr, rel_rmse=rel, max_abs=s["max"], cosine=cos))
    return rows


def worst_layers(rows: list[dict], k: int = 3) -> list[dict]:
    """The leaf layers (no children in the table) with the lowest SQNR."""
    leaves = [r for r in rows if not any(o["layer"].startswith(r["layer"] + ".") for o in rows)]
    return sorted(leaves, key=lambda r: r["sqnr_db"])[:k]


def write_layer_report(rows: list[dict], path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"layers": rows, "worst": worst_layers(rows)}, indent=2))


def print_layer_report(rows: list[dict], title: str = "per-layer quantization error (quantized vs float)") -> None:
    from rich.table import Table

    from vidconv_edge.tables import print_table

    worst = {r["layer"] for r in worst_layers(rows)}
    table = Table(title=title)
    for col in ("layer", "type", "part", "SQNR dB", "rel RMSE", "max |err|", "cosine"):
        table.add_column(col, justify="left" if col in ("layer", "type", "part") else "right", no_wrap=True)
    for r in rows:
        style = "bold red" if r["layer"] in worst else None
        table.add_row(
            r["layer"], r["type"], r["part"], f"{r['sqnr_db']:.1f}", f"{r['rel_rmse']:.4f}", f"{r['max_abs']:.4g}",
            f"{r['cosine']:.4f}", style=style,
        )  # fmt: skip
    print_table(table)
