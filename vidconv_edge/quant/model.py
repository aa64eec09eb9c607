"""Quantized models from float ones, and quantized checkpoints (told apart from float ones by the ``quant`` key)."""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from vidconv_edge.checkpoint import load_checkpoint, save_checkpoint
from vidconv_edge.errors import UserError
from vidconv_edge.models import VideoClassifier, create_model
from vidconv_edge.models.loading import model_from_checkpoint
from vidconv_edge.models.sevnet import SEVNet
from vidconv_edge.models.vidconv import VidConv
from vidconv_edge.quant.bits import QuantBits

QUANT_KEY = "quant"


def is_quant_model(model: nn.Module) -> bool:
    return bool(getattr(model, "input_is_uint8", False)) and hasattr(model, "bits")


def is_quant_checkpoint(ckpt: dict) -> bool:
    return QUANT_KEY in ckpt


def build_quant_model(float_model: VideoClassifier, bits: QuantBits) -> VideoClassifier:
    """An (uncalibrated) quantized model of the same config as ``float_model``, without weights."""
    from vidconv_edge.quant.sevnet import QuantSEVNet
    from vidconv_edge.quant.vidconv import QuantVidConv

    if is_quant_model(float_model):  # a subclass of its float model's class
        raise UserError(f"model '{float_model.name}' is quantized already; quantize its float model")
    if isinstance(float_model, VidConv):
        return QuantVidConv(float_model.cfg, bits, float_model.name)
    if isinstance(float_model, SEVNet):
        return QuantSEVNet(float_model.cfg, bits, float_model.name)
    raise UserError(f"model '{getattr(float_model, 'name', type(float_model).__name__)}' has no quantized version")


def quantize_model(float_model: VideoClassifier, bits: QuantBits | None = None) -> VideoClassifier:
    """The Brevitas model of ``float_model`` with its weights loaded (normalisation and alpha folded)."""
    qmodel = build_quant_model(float_model, bits or QuantBits())
    qmodel.load_float_state_dict(float_model.state_dict())
    return qmodel.train(float_model.training)


def quant_metadata(qmodel: VideoClassifier) -> dict:
    """The checkpoint's ``quant`` entry: bit widths per part, the pixel input, the float input spec."""
    return {
        **qmodel.bits.to_dict(),
        "input_is_uint8": True,
        "float_input_spec": qmodel.float_input_spec.to_dict(),
    }


def uncalibrated_quantizers(qmodel: nn.Module) -> list[str]:
    """Activation quantizers whose scale was never set from data (Brevitas initialises them lazily, from the
    first batches seen in calibration or training; until then the scale is not part of the state dict)."""
    from brevitas.core.scaling import ParameterFromRuntimeStatsScaling

    return [
        name.split(".act_quant.")[0]
        for name, m in qmodel.named_modules()
        if isinstance(m, ParameterFromRuntimeStatsScaling) and int(m.counter) == 0
    ]


def require_calibrated(qmodel: nn.Module) -> None:
    """UserError unless every activation scale of ``qmodel`` is set (an uncalibrated model has no scales to save)."""
    missing = uncalibrated_quantizers(qmodel)
    if missing:
        raise UserError(
            f"the quantized '{qmodel.name}' is not calibrated: {len(missing)} activation quantizer(s) have no scale yet "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); calibrate it first "
            "(`vidconv-edge quantize`, or vidconv_edge.quant.calibrate.calibrate)"
        )


def save_quant_checkpoint(path: str | os.PathLike, qmodel: VideoClassifier, class_names=None, **extra) -> Path:
    """A quantized checkpoint (the ``quant`` entry tells it from a float one); the model must be calibrated."""
    require_calibrated(qmodel)
    return save_checkpoint(path, qmodel, class_names, **{QUANT_KEY: quant_metadata(qmodel)}, **extra)


def require_float_checkpoint(ckpt: dict, path: str | os.PathLike | None = None) -> None:
    if is_quant_checkpoint(ckpt):
        bits = QuantBits.from_dict(ckpt[QUANT_KEY]).label()
        raise UserError(
            f"{path or 'the checkpoint'} is a quantized ({bits}) checkpoint; this needs a float checkpoint "
            "(the one given to `vidconv-edge quantize`)"
        )


def require_quant_checkpoint(ckpt: dict, path: str | os.PathLike | None = None) -> None:
    if not is_quant_checkpoint(ckpt):
        raise UserError(
            f"{path or 'the checkpoint'} is a float checkpoint; this needs a quantized one: "
            "make it with `vidconv-edge quantize CHECKPOINT --data DIR --out RUN`"
        )


def quant_model_from_checkpoint(ckpt: dict | str | os.PathLike) -> tuple[VideoClassifier, dict]:
    """The quantized model of a quantized checkpoint (eval mode); UserError for a float one."""
    path = None if isinstance(ckpt, dict) else ckpt
    if path is not None:
        ckpt = load_checkpoint(path)
    require_quant_checkpoint(ckpt, path)
    float_model = create_model(ckpt["model"], **ckpt["config"])
    qmodel = build_quant_model(float_model, QuantBits.from_dict(ckpt[QUANT_KEY]))
    try:
        missing, unexpected = qmodel.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as e:  # shape mismatches: the first line only names the model class
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise UserError(f"quantized weights do not match model '{ckpt['model']}': {lines[min(1, len(lines) - 1)]}") from e
    if missing and not unexpected and all(k.endswith(".scaling_impl.value") for k in missing):
        raise UserError(
            f"{path or 'the checkpoint'} holds an uncalibrated quantized model ({len(missing)} activation scales missing): "
            "make it again with `vidconv-edge quantize`"
        )
    if missing or unexpected:
        keys = (missing or unexpected)[:3]
        raise UserError(
            f"quantized weights do not match model '{ckpt['model']}': {'missing' if missing else 'unexpected'} {keys}"
        )
    return qmodel.eval(), ckpt


def any_model_from_checkpoint(path: str | os.PathLike) -> tuple[VideoClassifier, dict]:
    """Float or quantized, whichever the checkpoint holds (for eval)."""
    ckpt = load_checkpoint(path)
    if is_quant_checkpoint(ckpt):
        return quant_model_from_checkpoint(ckpt)
    return model_from_checkpoint(ckpt)


def output_step(qmodel: nn.Module) -> float:
    """The quantization step of the logits (the model's output quantizer scale)."""
    quant = qmodel.head.out_quant if hasattr(qmodel, "head") else qmodel.out_quant
    return float(quant.act_quant.scale())
