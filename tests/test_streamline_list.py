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
    ExactStreamline().apply(ModelWrapper.__new__(ModelWrapper))  # transform still records
    ours = applied[len(names) * per_step :]
    assert ours[::per_step] == ["InFloat64"] * len(names)
    assert ours[1:per_step] == ["RemoveExactIdentityOps", *FINN_STEP_TAIL[1:]]


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
