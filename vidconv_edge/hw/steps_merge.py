"""One design for both parts: the early-net and the later-net as two independent pipelines of one FINN build.

An FPGA holds one bitstream at a time, so both parts on the fabric must be one design. Each part is
streamlined, converted to HW layers, partitioned and verified on its own (its own integer input format);
:func:`merge_pipelines` then puts the two HW-layer graphs side by side in one model with two graph inputs
and two outputs (input/output ``i`` = part ``i`` of ``cfg.merged_parts``), and the rest of the flow
(partition, specialisation, folding, estimates, driver settings, code generation, and FINN's Vivado steps,
whose IODMA insertion, stitching and Zynq block design iterate over all graph inputs/outputs) runs once on it.

FINN renames nodes as it goes (``GiveUniqueNodeNames``), so a pipeline's layers are found by connectivity:
the nodes reachable from its graph input (:func:`pipeline_nodes`).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from vidconv_edge.hw.config import HwBuildConfig
from vidconv_edge.hw.errors import VerificationFailed


def _prefixed(model: ModelWrapper, prefix: str) -> ModelWrapper:
    """A copy of ``model`` with every node and tensor name prefixed (so two graphs can share one model)."""
    m = ModelWrapper(model.model.SerializeToString())
    g = m.graph
    names = {t.name for t in (*g.input, *g.output, *g.initializer, *g.value_info)}
    for n in g.node:
        names |= {x for x in (*n.input, *n.output) if x}
    for n in g.node:
        n.name = prefix + n.name
        n.input[:] = [prefix + x if x else x for x in n.input]
        n.output[:] = [prefix + x for x in n.output]
    for t in (*g.input, *g.output, *g.initializer, *g.value_info):
        t.name = prefix + t.name
    for qa in g.quantization_annotation:
        qa.tensor_name = prefix + qa.tensor_name
    return m


def merge_pipelines(models: dict[str, ModelWrapper]) -> ModelWrapper:
    """One model holding the single-input, single-output HW graphs ``models`` (part -> model) side by side:
    graph input/output ``i`` are those of the ``i``-th part."""
    parts = [_prefixed(m, f"{name}_") for name, m in models.items()]
    for name, m in zip(models, parts):
        if len(m.graph.input) != 1 or len(m.graph.output) != 1:
            raise ValueError(f"the {name}-net graph has {len(m.graph.input)} inputs, {len(m.graph.output)} outputs")
    graph = helper.make_graph(
        [n for m in parts for n in m.graph.node], "vidconv_edge_" + "_".join(models),
        [m.graph.input[0] for m in parts], [m.graph.output[0] for m in parts],
        [t for m in parts for t in m.graph.initializer], value_info=[v for m in parts for v in m.graph.value_info],
    )  # fmt: skip
    graph.quantization_annotation.extend(qa for m in parts for qa in m.graph.quantization_annotation)
    first = parts[0].model
    merged = helper.make_model(graph, opset_imports=list(first.opset_import), producer_name="vidconv-edge")
    merged.ir_version = first.ir_version
    return ModelWrapper(merged)


def pipeline_nodes(model: ModelWrapper) -> list[list[str]]:
    """For each graph input, the names of the nodes reachable from it (its pipeline), in graph order."""
    out = []
    for inp in model.graph.input:
        reached, frontier = set(), [inp.name]
        while frontier:
            for node in model.find_consumers(frontier.pop()) or []:
                if node.name not in reached:
                    reached.add(node.name)
                    frontier.extend(node.output)
        out.append([n.name for n in model.graph.node if n.name in reached])
    return out


def step_check_pipelines(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """The pipelines stay independent (no node reached from two inputs) and each ends at its own output;
    records each part's input/output index and layers in ``cfg.io.pipelines``."""
    groups = pipeline_nodes(model)
    shared = set(groups[0]).intersection(*groups[1:]) if len(groups) > 1 else set()
    if shared:
        raise ValueError(f"pipelines share nodes: {sorted(shared)[:5]}")
    pipelines = {}
    for i, (part, nodes) in enumerate(zip(cfg.merged_parts, groups)):
        out = model.graph.output[i].name
        if model.find_producer(out).name not in nodes:
            raise ValueError(f"graph output {i} ({out}) is not produced by the {part}-net pipeline")
        pipelines[part] = {"input_index": i, "output_index": i, "layers": nodes}
    cfg.io.pipelines = pipelines
    return model


def execute_pipelines(model: ModelWrapper, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """All outputs of the multi-input HW graph, sample by sample (each input a batch of the same length)."""
    names = [t.name for t in model.graph.input]
    outs = [t.name for t in model.graph.output]
    got: list[list[np.ndarray]] = [[] for _ in outs]
    for s in range(len(inputs[0])):
        res = execute_onnx(model, {n: x[s : s + 1].astype(np.float32) for n, x in zip(names, inputs)})
        for k, o in enumerate(outs):
            got[k].append(res[o])
    return [np.concatenate(g) for g in got]


def step_verify_merged_python(model: ModelWrapper, cfg: HwBuildConfig) -> ModelWrapper:
    """Execute the merged HW graph in Python, both pipelines at once; each output must equal its part's
    QONNX reference bit for bit (``cfg.merged_parts``: part -> verification input / expected output files)."""
    n = cfg.verify_samples
    files = list(cfg.merged_parts.values())
    inputs = [np.load(f["verify_input_npy"])[:n] for f in files]
    n = min(len(x) for x in inputs)
    got = execute_pipelines(model, [x[:n] for x in inputs])
    result, bad = {}, []
    for (part, f), out in zip(cfg.merged_parts.items(), got):
        expected = np.load(f["verify_expected_output_npy"])[:n]
        diff = np.abs(out.astype(np.float64) - expected.astype(np.float64)) if out.shape == expected.shape else None
        mismatches = int((diff > 0).sum()) if diff is not None else -1
        result[part] = {"samples": n, "bit_exact": mismatches == 0, "mismatches": mismatches,
                        "max_abs_diff": float(diff.max()) if diff is not None and diff.size else 0.0}  # fmt: skip
        if mismatches:
            what = f"shape {list(out.shape)}" if diff is None else f"{mismatches} values"
            bad.append(f"{part}-net output {what}")
    cfg.io.verification = {"method": "python execution of the merged HW graph (both pipelines) vs the QONNX "
                              "models", "bit_exact": not bad, "parts": result}  # fmt: skip
    if bad and cfg.strict_verify:
        raise VerificationFailed(f"merged design: the HW graph differs from the QONNX models: {'; '.join(bad)}")
    return model
