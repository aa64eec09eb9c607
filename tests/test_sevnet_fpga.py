"""quant.sevnet_fpga: the FPGA form of a quantized SEVNet equals the model it is built from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidconv_edge.errors import UserError


@pytest.fixture(scope="module")
def qsev():
    """A calibrated W8A4 sevnet_edge at 4x32x32 (untrained weights: the rewrite, not the accuracy, is under test)."""
    from vidconv_edge.hw.source import calibrated_for_board
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.bits import make_bits

    torch.manual_seed(0)
    float_model = create_model("sevnet_edge", img_size=32, frames=4).eval()
    for m in float_model.modules():  # non-trivial BN shifts: the separator rows get non-zero values unless masked
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(0.0, 0.5)
    return calibrated_for_board(float_model, make_bits(8, act_bits=4))


def test_stack_puts_frames_at_the_pitch_with_zero_separators():
    from vidconv_edge.quant.sevnet_fpga import pitch_of, stack_clip

    clip = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(1, 2, 3, 32, 32) + 1
    x = stack_clip(clip, pitch_of(32))
    assert pitch_of(32) == 64 and x.shape == (1, 3, 128, 32)
    assert torch.equal(x[0, :, 64:96], clip[0, 1]) and torch.equal(x[0, :, :32], clip[0, 0])
    assert (x[0, :, 32:64] == 0).all() and (x[0, :, 96:] == 0).all()


def test_fpga_form_gives_the_quantized_models_logits(qsev, tmp_path):
    from vidconv_edge.export.qonnx import export_qonnx
    from vidconv_edge.hw.reference import run_qonnx_float64
    from vidconv_edge.quant.sevnet_fpga import fpga_form

    from vidconv_edge.hw.source import video_frames
    from vidconv_edge.quant.layers import value

    fpga = fpga_form(qsev)
    video = torch.from_numpy(video_frames(None, 32, 8)).float().reshape(2, 4, 3, 32, 32)
    noise = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 4, 3, 32, 32))).float()
    clips = torch.cat([video, noise])
    feats = []  # the head quantizer (shared by both forms): the pooled features, C values per clip
    hook = qsev.head_quant.register_forward_hook(lambda _m, _i, out: feats.append(value(out).flatten(1)))
    with torch.no_grad():
        ref = qsev(clips)
        got = torch.cat([fpga(fpga.stack(clips[i : i + 1])) for i in range(len(clips))])
    hook.remove()
    step = float(qsev.out_quant.act_quant.scale().detach())
    assert (ref - got).abs().max().item() <= step * (1 + 1e-5)
    assert torch.equal(ref.argmax(1), got.argmax(1)) and ref.abs().max() > 0
    feat_step = float(qsev.head_quant.act_quant.scale().detach())
    ref_feats, got_feats = feats[0], torch.cat(feats[1:])
    assert ref_feats.shape == got_feats.shape == (3, 256) and (ref_feats > 0).sum() > 100
    assert (ref_feats - got_feats).abs().max().item() <= feat_step * (1 + 1e-5)
    # its QONNX export (what build-fpga lowers) in float64 computes the same logits
    export_qonnx(qsev, tmp_path / "fpga.onnx", "fpga", class_names=[str(i) for i in range(10)])
    x = fpga.stack(clips).numpy()
    assert np.abs(run_qonnx_float64(tmp_path / "fpga.onnx", x) - got.numpy()).max() <= step * 1e-3
    # the grouped spatial convs became dense convs with interleaved channels: input j / output r of group k
    # at j*G + k / r*G + k, zero across groups
    dense = fpga.mods[0].spatial[0].weight.detach()
    grouped = qsev.stages[0][0].spatial[0].weight.detach()
    c, groups = dense.shape[0], qsev.stages[0][0].spatial[0].groups
    g = c // groups
    assert fpga.mods[0].spatial[0].groups == 1 and 1 < groups < c and (grouped != 0).all()
    for k in range(groups):
        for r in range(g):
            row = dense[r * groups + k].reshape(g, groups, 3, 3)
            assert torch.equal(row[:, k], grouped[k * g + r])
            assert (row[:, [i for i in range(groups) if i != k]] == 0).all()


def test_fpga_form_refuses_other_models():
    from vidconv_edge.models import create_model
    from vidconv_edge.quant.sevnet_fpga import fpga_form

    with pytest.raises(UserError, match="has no FPGA form"):
        fpga_form(create_model("sevnet_edge", img_size=32))


def test_export_cli_writes_the_fpga_form_as_qonnx(qsev, tmp_path, capsys):
    import onnx

    from vidconv_edge.cli import main
    from vidconv_edge.quant.model import save_quant_checkpoint

    save_quant_checkpoint(tmp_path / "q.pt", qsev, [str(i) for i in range(10)])
    out = tmp_path / "fpga.onnx"
    assert main(["export", str(tmp_path / "q.pt"), "--target", "qonnx", "--part", "fpga", "-o", str(out)]) == 0
    graph = onnx.load(out).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 4 * 64, 32]
    assert "Reshape" not in {n.op_type for n in graph.node}  # one batch-1 tensor all the way
    assert main(["export", str(tmp_path / "q.pt"), "--target", "onnx", "--part", "fpga", "-o", str(out)]) == 2
    assert "use it with --target qonnx" in capsys.readouterr().err
