"""ExactStreamline runs FINN's own Streamline list (read from FINN), and says so when FINN's shape changes."""

from __future__ import annotations

import inspect

import pytest

import vidconv_edge.hw.flow  # noqa: F401  (prepares FINN before its transformations are imported)
from vidconv_edge.hw.steps_streamline import (
    FINN_STEP_TAIL,
    ExactStreamline,
    finn_streamline_names,
    finn_streamline_steps,
    parse_streamline,
)


def _finn():
    import finn.transformation.streamline as streamline

    return streamline, inspect.getsource(streamline.Streamline.apply)


def test_the_list_is_finns_and_ours_mirrors_every_step(monkeypatch):
    streamline, _ = _finn()
    names = finn_streamline_names()
    assert len(names) >= 20 and names[:3] == ("ConvertSubToAdd", "ConvertDivToMul", "BatchNormToAffine")
    # every transformation FINN's Streamline applies, in its order: recorded from a run of FINN's own class
    applied = []
    from qonnx.core.modelwrapper import ModelWrapper

    monkeypatch.setattr(ModelWrapper, "transform", lambda self, t, *a, **k: applied.append(type(t).__name__) or self)
    streamline.Streamline().apply(ModelWrapper.__new__(ModelWrapper))
    per_step = 1 + len(FINN_STEP_TAIL)
    assert tuple(applied[::per_step]) == names
    assert all(tuple(applied[i + 1 : i + per_step]) == FINN_STEP_TAIL for i in range(0, len(applied), per_step))
    assert [type(t).__name__ for t in finn_streamline_steps()] == list(names)


def _one_node_model():
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper

    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "xy")
    return ModelWrapper(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])))


@pytest.mark.parametrize("changing", [set(), {0, 3, 4}, "all"])
def test_ours_runs_the_tail_after_the_first_step_and_after_each_step_that_changed_the_graph(monkeypatch, changing):
    """The tail (exact identity removal + FINN's tail) follows every step of FINN's list that changed the graph,
    and always the first; a step that changed nothing is not followed by it."""
    from qonnx.core.modelwrapper import ModelWrapper

    names = finn_streamline_names()
    changing = set(range(len(names))) if changing == "all" else changing
    applied, steps = [], []

    def transform(self, t, *a, **k):
        name = type(t).__name__
        applied.append(name)
        if name == "InFloat64":
            if len(steps) in changing:
                self.model.doc_string += "changed"
            steps.append(name)
        return self

    monkeypatch.setattr(ModelWrapper, "transform", transform)
    ExactStreamline().apply(_one_node_model())
    tail = ["RemoveExactIdentityOps", *FINN_STEP_TAIL[1:]]
    expected = []
    for i in range(len(names)):
        expected += ["InFloat64", *(tail if i == 0 or i in changing else [])]
    assert applied == expected


def test_skipping_the_tail_after_unchanged_steps_gives_the_graph_of_running_it_always(tmp_path):
    """On a real graph (a tiny vic_edge early-net at W8A4, converted and tidied by the build): ExactStreamline
    equals, byte for byte, the same list with the tail after every step (FINN's own loop)."""
    import torch
    from qonnx.core.modelwrapper import ModelWrapper

    from vidconv_edge.hw.flow import build_fpga
    from vidconv_edge.hw.precision import InFloat64
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.hw.steps_streamline import RemoveExactIdentityOps
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits
    from vidconv_edge.quant.model import save_quant_checkpoint

    torch.manual_seed(0)
    q = calibrated_for_board(create_model("vic_edge", img_size=32, frames=4).eval(), make_bits(8, act_bits=4))
    save_quant_checkpoint(tmp_path / "q.pt", q, [str(i) for i in range(10)])
    build_fpga(tmp_path / "q.pt", "pynq-z2", tmp_path / "b", part="early", until="step_tidy_up", log=lambda _m: None)
    tidied = ModelWrapper(str(next((tmp_path / "b" / "early" / "intermediate_models").glob("*_step_tidy_up.onnx"))))
    import qonnx.transformation.general as general
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from qonnx.transformation.infer_datatypes import InferDataTypes

    always = tidied
    for t in finn_streamline_steps():
        always = always.transform(InFloat64(t))
        for tail in (RemoveExactIdentityOps(), general.GiveUniqueNodeNames(), general.GiveReadableTensorNames(),
                     InferDataTypes(), InferDataLayouts()):  # fmt: skip
            always = always.transform(tail)
    ours = tidied.transform(ExactStreamline())
    assert ours.model.SerializeToString() == always.model.SerializeToString()
    assert len(ours.graph.node) < len(tidied.graph.node)  # the list did streamline something


@pytest.mark.parametrize(
    "edit,message",
    [
        (("ConvertSubToAdd()", "ConvertSubToAdd(strict=True)"), "a step ExactStreamline cannot mirror: ConvertSubToAdd(strict=True)"),
        (("ConvertSubToAdd()", "NotInFinn()"), "NotInFinn is not a Transformation"),
        (("model.transform(InferDataLayouts())", "model.transform(InferDataLayouts())\n            model = model.transform(Cleanup())"),
         "now runs RemoveIdentityOps, GiveUniqueNodeNames, GiveReadableTensorNames, InferDataTypes, InferDataLayouts, Cleanup"),
        (("for trn in streamline_transformations:", "for trn in other_list:"), "no longer one list"),
    ],
)  # fmt: skip
def test_a_change_of_finns_shape_is_an_error_naming_it(edit, message):
    streamline, source = _finn()
    assert edit[0] in source
    with pytest.raises(RuntimeError, match="FINN's Streamline") as e:
        parse_streamline(source.replace(*edit, 1), vars(streamline))
    assert message in str(e.value)
