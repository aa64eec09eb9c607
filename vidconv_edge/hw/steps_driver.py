"""Our driver step: the finn-plus-driver ``settings.json`` of an accelerator, before synthesis.

FINN's ``step_make_driver`` writes it only after the bitfile (Vivado). Its content is known once the
graph is folded: the stream datatypes, normal / folded / packed shapes (``get_driver_shapes``'s format),
the DMA platform and clock. This step writes ``<output_dir>/driver_settings.json`` in that format (the
IODMA instances named ``idma0`` / ``odma0`` as FINN's shells name them) and the stream shapes to
``cfg.io``; a Vivado build's own ``driver/settings.json`` replaces it in the deploy bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import gen_finn_dt_tensor

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.io import atomic_path

from finn.util.data_packing import finnpy_to_packed_bytearray  # noqa: E402  (after config)

SETTINGS = "driver_settings.json"
DRIVER_TYPE = "FINNDMAOverlay"


def stream_shapes(model: ModelWrapper) -> dict:
    """Datatype, normal, folded and packed shape of the graph's input and output streams."""
    first, last = getCustomOp(model.graph.node[0]), getCustomOp(model.graph.node[-1])
    out = {}
    for key, tensor, folded in (
        ("input", model.graph.input[0].name, first.get_folded_input_shape()),
        ("output", model.graph.output[0].name, last.get_folded_output_shape()),
    ):
        dt = model.get_tensor_datatype(tensor)
        packed = finnpy_to_packed_bytearray(gen_finn_dt_tensor(dt, tuple(folded)), dt).shape
        out[key] = {"datatype": dt.name, "shape": list(model.get_tensor_shape(tensor)),
                    "folded_shape": [int(v) for v in folded], "packed_shape": [int(v) for v in packed]}  # fmt: skip
    return out


def driver_settings(shapes: dict, platform: str, clock_ns: float) -> dict:
    """``settings.json`` as FINN's ``MakePYNQDriver`` writes it for a one-input, one-output DMA accelerator."""
    i, o = shapes["input"], shapes["output"]
    io_shape_dict = {
        "idt": [f"DataType['{i['datatype']}']"], "idma_names": ["idma0"], "ishape_normal": [i["shape"]],
        "ishape_folded": [i["folded_shape"]], "ishape_packed": [i["packed_shape"]],
        "odt": [f"DataType['{o['datatype']}']"], "odma_names": ["odma0"], "oshape_normal": [o["shape"]],
        "oshape_folded": [o["folded_shape"]], "oshape_packed": [o["packed_shape"]],
        "num_inputs": 1, "num_outputs": 1, "number_of_external_weights": 0, "external_weights_input_shapes": {},
    }  # fmt: skip
    info = {
        "driver_type": DRIVER_TYPE, "io_shape_dict": io_shape_dict, "external_weights": False,
        "runtime_weights": False, "platform": platform, "fclk_mhz": round(1e3 / clock_ns, 3),
    }  # fmt: skip
    return {"driver_information": info, "experiment_information": {}}


def step_driver_settings(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Write ``driver_settings.json`` and record the folded stream shapes in ``cfg.io``."""
    shapes = stream_shapes(model)
    for key in ("input", "output"):
        cfg.io.setdefault(key, {}).update(shapes[key])
    settings = driver_settings(shapes, cfg._resolve_driver_platform(), cfg.synth_clk_period_ns)
    with atomic_path(Path(cfg.output_dir) / SETTINGS) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    return model
