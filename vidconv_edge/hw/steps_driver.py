"""Our driver step: the finn-plus-driver ``settings.json`` of an accelerator, before synthesis.

FINN's ``step_make_driver`` writes it only after the bitfile (Vivado). Its content is known once the
graph is folded: the stream datatypes, normal / folded / packed shapes (``get_driver_shapes``'s format),
the DMA platform and clock. This step writes ``<output_dir>/driver_settings.json`` in that format (the
IODMA instances named as FINN's Zynq shell names them, see :func:`dma_names`; one entry per graph input /
output, so a merged two-pipeline design gets a two-input, two-output settings file) and the stream shapes to
``cfg.io``; a Vivado build's own ``driver/settings.json`` replaces it in the deploy bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.util.basic import gen_finn_dt_tensor

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.partio import StreamFormat
from vidconv_edge.io import atomic_path

from finn.util.data_packing import finnpy_to_packed_bytearray  # noqa: E402  (after config)

SETTINGS = "driver_settings.json"
DRIVER_TYPE = "FINNDMAOverlay"


def _stream(model: ModelWrapper, tensor: str, folded) -> StreamFormat:
    dt = model.get_tensor_datatype(tensor)
    packed = finnpy_to_packed_bytearray(gen_finn_dt_tensor(dt, tuple(folded)), dt).shape
    return StreamFormat(datatype=dt.name, shape=list(model.get_tensor_shape(tensor)),
                        folded_shape=[int(v) for v in folded], packed_shape=[int(v) for v in packed])  # fmt: skip


def stream_shapes(model: ModelWrapper) -> tuple[list[StreamFormat], list[StreamFormat]]:
    """Datatype, normal, folded and packed shape of every graph input and output stream, in graph order:
    (inputs, outputs)."""
    inputs = [_stream(model, t.name, getCustomOp(model.find_consumer(t.name)).get_folded_input_shape())
              for t in model.graph.input]  # fmt: skip
    outputs = [_stream(model, t.name, getCustomOp(model.find_producer(t.name)).get_folded_output_shape())
               for t in model.graph.output]  # fmt: skip
    return inputs, outputs


def dma_names(n_inputs: int, n_outputs: int) -> tuple[list[str], list[str]]:
    """The IODMA instance names of graph input / output ``i``, as FINN's Zynq flow names them: ``InsertIODMA``
    inserts each input's DMA at the front of the graph (so the last input's DMA comes first and is ``idma0``)
    and appends the outputs' DMAs in order; ``MakeZYNQProject`` numbers them in graph order."""
    return [f"idma{n_inputs - 1 - i}" for i in range(n_inputs)], [f"odma{i}" for i in range(n_outputs)]


def driver_settings(ins: list[StreamFormat], outs: list[StreamFormat], platform: str, clock_ns: float) -> dict:
    """``settings.json`` as FINN's ``MakePYNQDriver`` writes it for a DMA accelerator with any number of
    input and output streams (from :func:`stream_shapes`)."""
    idma, odma = dma_names(len(ins), len(outs))
    io_shape_dict = {
        "idt": [f"DataType['{i.datatype}']" for i in ins], "idma_names": idma,
        "ishape_normal": [i.shape for i in ins], "ishape_folded": [i.folded_shape for i in ins],
        "ishape_packed": [i.packed_shape for i in ins],
        "odt": [f"DataType['{o.datatype}']" for o in outs], "odma_names": odma,
        "oshape_normal": [o.shape for o in outs], "oshape_folded": [o.folded_shape for o in outs],
        "oshape_packed": [o.packed_shape for o in outs],
        "num_inputs": len(ins), "num_outputs": len(outs), "number_of_external_weights": 0,
        "external_weights_input_shapes": {},
    }  # fmt: skip
    info = {
        "driver_type": DRIVER_TYPE, "io_shape_dict": io_shape_dict, "external_weights": False,
        "runtime_weights": False, "platform": platform, "fclk_mhz": round(1e3 / clock_ns, 3),
    }  # fmt: skip
    return {"driver_information": info, "experiment_information": {}}


def step_driver_settings(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Write ``driver_settings.json`` and record the folded stream shapes in ``cfg.io`` (``input``/``output``
    for a one-stream accelerator, ``inputs``/``outputs`` lists for a merged design)."""
    ins, outs = stream_shapes(model)
    if len(ins) == 1 and len(outs) == 1:
        cfg.io.input, cfg.io.output = cfg.io.input.updated(ins[0]), cfg.io.output.updated(outs[0])
    else:
        cfg.io.inputs, cfg.io.outputs = ins, outs
    settings = driver_settings(ins, outs, cfg._resolve_driver_platform(), cfg.synth_clk_period_ns)
    with atomic_path(Path(cfg.output_dir) / SETTINGS) as tmp:
        tmp.write_text(json.dumps(settings, indent=2))
    return model
