"""The papers' models at their exact sizes, and the building blocks against direct references."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from vidconv_edge.errors import UserError
from vidconv_edge.models import create_model, list_models
from vidconv_edge.models.analysis import profile_model
from vidconv_edge.models.layers import collage_to_frames, frames_to_collage
from vidconv_edge.models.sevnet import SqueezeExcite, TemporalConv
from vidconv_edge.models.vidconv import TemporalBranch, TileToCollage


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Exact counts of `vidconv-edge info` (README "Models" table); the paper's rounded figure beside each.
PARAMS = [
    ("vic_tiny", {}, 44_733_040),  # paper 44.7M
    ("vic_tiny", {"num_classes": 174}, 44_212_110),  # paper 44.2M
    ("vic_tiny", {"neck_dim": 0}, 28_191_088),  # paper 28.19M
    ("vic_small", {}, 66_443_632),  # paper 66.4M
    ("vic_base", {}, 107_448_336),  # paper 107.4M
    ("vic_base", {"neck_dim": 2304}, 109_910_288),  # the paper's table: 109.9M, not its 107.4M
    ("sevnet_g6", {}, 2_512_134),  # paper 2.5M
    ("sevnet_g8", {}, 4_427_662),  # paper 4.4M
    ("sevnet_g12", {}, 9_876_030),  # paper 10.0M
    ("sevnet_g8", {"num_classes": 400}, 4_543_600),  # paper 4.5M
    ("sevnet_se_g6", {}, 2_795_448),  # paper 2.8M
    ("sevnet_se_g8", {}, 4_929_958),  # paper 4.9M
    ("vic_edge", {}, 272_810),
    ("sevnet_edge", {}, 196_026),
]


@pytest.mark.parametrize("name,kwargs,params", PARAMS)
def test_params_are_the_readme_counts(name, kwargs, params):
    """Exact: a missing temporal branch (0.14% of ViC-T) or an extra bias changes the count."""
    assert n_params(create_model(name, **kwargs)) == params


def test_table8_stacking_stage_params():
    """Paper Table 8 (no neck, 400 classes): 28.20 / 28.19 / 28.15 / 28.13 M for stacking after stage 1..4."""
    counts = [n_params(create_model("vic_tiny", neck_dim=0, stack_stage=stage)) for stage in (1, 2, 3, 4)]
    assert counts == [28_197_424, 28_191_088, 28_153_072, 28_127_728]
    assert [round(c / 1e6, 2) for c in counts] == [28.20, 28.19, 28.15, 28.13]


# Exact MACs per clip (README "Models" table and SEVNet's per-stage list); the stride in the 1x1x1 conv of a
# SEVNet downsample module instead of its 1x3x3 group conv would change them by ~10%.
MACS = {
    "vic_tiny": 40_881_240_576,
    "sevnet_g6": 8_301_083_904,
    "sevnet_g8": 14_442_748_928,
    "sevnet_g12": 31_788_034_560,
}
SEVNET_G8_STAGES = {"stem": 1_560_674_304, "stage2": 2_633_236_480, "stage3": 3_281_911_808,
                    "stage4": 4_839_374_848, "stage5": 2_127_462_400, "head": 89_088}  # fmt: skip


@pytest.mark.slow  # ~95 GMAC of forward passes
@pytest.mark.parametrize("name", list(MACS))
def test_macs_are_the_readme_counts(name):
    prof = profile_model(create_model(name))
    assert prof.macs == MACS[name]
    assert sum(s.macs for s in prof.stages) == prof.macs
    assert sum(s.params for s in prof.stages) == prof.params
    if name == "sevnet_g8":
        assert {s.name: s.macs for s in prof.stages} == SEVNET_G8_STAGES


def test_edge_model_macs_are_the_readme_counts():
    """The edge models (fast): exact MACs per clip, per stage sums."""
    assert profile_model(create_model("vic_edge")).macs == 73_717_760
    assert profile_model(create_model("sevnet_edge")).macs == 120_437_248


def test_profile_rows_add_up_and_a_streamed_frame_costs_one_early_frame_plus_the_later_net():
    """What ``info`` prints: per-stage rows (integer MACs, params, output shapes) that sum to the clip's figures, and
    per streamed frame one frame of the early-net (its stages' MACs / frames) plus the later-net on the collage."""
    prof = profile_model(create_model("vic_edge"))
    rows = {s.name: s for s in prof.stages}
    assert list(rows) == ["stage1 (early)", "stage2 (early)", "stage3 (later)", "stage4 (later)", "head"]
    assert sum(s.macs for s in prof.stages) == prof.macs and sum(s.params for s in prof.stages) == prof.params
    assert all(type(s.macs) is int and s.macs > 0 for s in prof.stages)
    assert [rows[n].output_shape for n in rows] == [[9, 16, 24, 24], [9, 32, 12, 12], [1, 64, 18, 18], [1, 128, 9, 9],
                                                    [1, 10]]  # fmt: skip
    early = rows["stage1 (early)"].macs + rows["stage2 (early)"].macs
    later = prof.macs - early
    assert early % 9 == 0 and prof.macs_per_streamed_frame == early // 9 + later == 43_526_144
    assert type(prof.macs_per_streamed_frame) is int and prof.input_shape == [1, 9, 3, 96, 96]
    sev = profile_model(create_model("sevnet_edge"))
    assert sev.macs_per_streamed_frame is None  # no frame buffer: every output runs the whole clip
    assert [s.output_shape for s in sev.stages][0] == [8, 16, 48, 48] and sev.stages[-1].output_shape == [1, 10]
    assert sum(s.macs for s in sev.stages) == sev.macs and sev.to_dict()["stages"][0]["name"] == "stem"


def test_profile_table_prints_every_stage_and_the_total():
    from rich.console import Console

    from vidconv_edge.models.analysis import profile_table

    console = Console(record=True, width=120)
    console.print(profile_table(profile_model(create_model("vic_edge")), "vic_edge"))
    text = console.export_text()
    assert "vic_edge" in text and "stage3 (later)" in text and "(1, 64, 18, 18)" in text
    assert "0.026G" in text and "0.083M" in text  # stage3: 25,961,472 MACs, 82,560 params
    assert "total" in text and "0.273M" in text and "0.074G" in text and "10 classes" in text
    for col in ("stage", "params", "MACs", "output"):
        assert col in text


def test_edge_models_input_spec():
    """README: vic_edge 9x96^2, sevnet_edge 8x96^2 (counts: test_params_are_the_readme_counts)."""
    specs = {name: create_model(name).input_spec for name in ("vic_edge", "sevnet_edge")}
    assert {n: (s.frames, s.size) for n, s in specs.items()} == {"vic_edge": (9, 96), "sevnet_edge": (8, 96)}


def test_every_model_has_a_description():
    names = {e.name for e in list_models()}
    assert {"vic_tiny", "vic_small", "vic_base", "vic_edge", "sevnet_g6", "sevnet_g8", "sevnet_g12"} <= names
    assert {"sevnet_se_g6", "sevnet_se_g8", "sevnet_edge"} <= names
    assert all(e.description for e in list_models())


def test_collage_layout_is_row_major():
    frames = torch.arange(6).float().view(6, 1, 1, 1).expand(6, 2, 3, 3).contiguous()  # frame i filled with i
    collage = frames_to_collage(frames, (2, 3))
    assert collage.shape == (1, 2, 6, 9)
    for i in range(6):
        r, c = divmod(i, 3)
        assert torch.all(collage[0, :, r * 3 : r * 3 + 3, c * 3 : c * 3 + 3] == i)
    assert torch.equal(collage_to_frames(collage, (2, 3)), frames)


@pytest.mark.parametrize("layout", [(3, 3), (2, 4), (1, 1), (4, 4)])
def test_tile_concat_equals_conv_form(layout):
    t = torch.randn(2, 5, 4, 3)
    concat = TileToCollage(5, layout, (4, 3), "concat")(t)
    conv = TileToCollage(5, layout, (4, 3), "conv")(t)
    assert concat.shape == (2, 5, 4 * layout[0], 3 * layout[1])
    torch.testing.assert_close(conv, concat, atol=1e-6, rtol=0)
    assert torch.equal(concat, t.repeat(1, 1, *layout))


def test_temporal_branch_mixes_the_same_pixel_of_every_tile():
    layout, tile, c = (3, 3), (4, 5), 2
    branch = TemporalBranch(c, layout, tile, alpha_init=0.3, tile_mode="concat")
    x = torch.randn(1, c, 12, 15)
    out = branch(x)
    w, b = branch.conv.weight, branch.conv.bias  # (C, 1, 3, 3)
    ref_t = torch.zeros(1, c, *tile)
    for i in range(3):
        for j in range(3):
            ref_t += w[:, 0, i, j].view(1, c, 1, 1) * x[:, :, i * 4 : i * 4 + 4, j * 5 : j * 5 + 5]
    ref_t = (ref_t + b.view(1, c, 1, 1)) * 0.3
    torch.testing.assert_close(out, ref_t.repeat(1, 1, 3, 3), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stack_stage", [1, 2, 3, 4])
@pytest.mark.parametrize("layout", [(1, 1), (2, 2), (3, 3), (4, 4)])
def test_vidconv_variants_run_and_split(stack_stage, layout):
    model = create_model("vic_edge", layout=layout, stack_stage=stack_stage, img_size=64, num_classes=3).eval()
    clip = torch.randn(2, layout[0] * layout[1], 3, 64, 64)
    with torch.no_grad():
        full = model(clip)
        feats = model.forward_early(clip.flatten(0, 1))
        assert feats.shape[1:] == model.early_shape()
        split = model.forward_later(model.collage(feats))
    assert full.shape == (2, 3)
    torch.testing.assert_close(full, split)


def test_vidconv_options():
    plain = create_model("vic_tiny", block="convnext", img_size=64, num_classes=5)
    assert not any("temporal" in k for k in plain.state_dict())
    no_neck = create_model("vic_tiny", neck_dim=0, img_size=64, num_classes=5)
    assert no_neck.neck is None
    vic = create_model("vic_tiny", img_size=64, num_classes=5)
    assert all(float(b.temporal.alpha[0].detach()) == pytest.approx(1e-2) for s in vic.stages[2:] for b in s.blocks)
    assert create_model("vic_base", neck_dim=2304).neck.conv.out_channels == 2304
    assert create_model("vic_tiny", frames=4).layout == (2, 2)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(layout=(5, 5)), "layout 5x5"),
        (dict(img_size=100), "multiple of 32"),
        (dict(frames=7), "7 frames"),
        (dict(stack_stage=5), "stack_stage"),
        (dict(bogus=1), "unknown option"),
    ],
)
def test_bad_vidconv_config(kwargs, message):
    with pytest.raises(UserError, match=message):
        create_model("vic_tiny", **kwargs)


def test_unknown_model():
    with pytest.raises(UserError, match="unknown model 'vic_huge'"):
        create_model("vic_huge")


def test_temporal_conv_equals_conv3d():
    frames, b, cin, cout = 5, 2, 4, 6
    tconv = TemporalConv(cin, cout, frames).eval()
    conv3d = nn.Conv3d(cin, cout, (3, 1, 1), padding=(1, 0, 0), bias=False)
    conv3d.weight.data = tconv.conv.weight.data.unsqueeze(-1)
    x3d = torch.randn(b, cin, frames, 7, 8)
    x2d = x3d.permute(0, 2, 1, 3, 4).reshape(b * frames, cin, 7, 8)
    ref = torch.relu(tconv.bn(conv3d(x3d).transpose(1, 2).reshape(b * frames, cout, 7, 8)))
    torch.testing.assert_close(tconv(x2d), ref, atol=1e-5, rtol=1e-5)


def test_spatial_group_conv_equals_conv3d():
    conv2d = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False)
    conv3d = nn.Conv3d(16, 16, (1, 3, 3), padding=(0, 1, 1), groups=4, bias=False)
    conv3d.weight.data = conv2d.weight.data.unsqueeze(2)
    x3d = torch.randn(2, 16, 4, 9, 9)
    ref = conv3d(x3d).permute(0, 2, 1, 3, 4).reshape(8, 16, 9, 9)
    torch.testing.assert_close(conv2d(x3d.permute(0, 2, 1, 3, 4).reshape(8, 16, 9, 9)), ref, atol=1e-5, rtol=1e-5)


def test_squeeze_excite_pools_over_the_whole_clip():
    se = SqueezeExcite(8, frames=3, ratio=4)
    x3d = torch.randn(2, 8, 3, 5, 5)
    s = x3d.mean(dim=(2, 3, 4))
    s = torch.sigmoid(se.fc2(torch.relu(se.fc1(s[:, :, None, None]))))[:, :, 0, 0]
    ref = (x3d * s[:, :, None, None, None]).permute(0, 2, 1, 3, 4).reshape(6, 8, 5, 5)
    torch.testing.assert_close(se(x3d.permute(0, 2, 1, 3, 4).reshape(6, 8, 5, 5)), ref, atol=1e-5, rtol=1e-5)


def test_sevnet_shapes_and_any_group_width():
    model = create_model("sevnet", group_width=4, frames=4, img_size=64, num_classes=7).eval()
    assert model.stages[-1][-1].pointwise[0].in_channels == 64 * 4
    with torch.no_grad():
        assert model(torch.randn(2, 4, 3, 64, 64)).shape == (2, 7)
    with pytest.raises(UserError, match="shape"):
        model(torch.randn(2, 5, 3, 64, 64))


# ------------------------------------------------------------------ options, defaults and stochastic depth


def test_drop_path_drops_whole_samples_and_rescales_only_in_training():
    from vidconv_edge.models.layers import DropPath

    x = torch.ones(4000, 2, 3, 3)
    torch.manual_seed(0)
    train = DropPath(0.25).train()(x)
    per_sample = train.flatten(1)
    assert per_sample.unique().tolist() == [0.0, torch.tensor(4 / 3).item()]  # kept samples scaled by 1 / (1 - p)
    assert (per_sample == per_sample[:, :1]).all()  # one draw per sample, not per element
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.03
    assert torch.equal(DropPath(0.25).eval()(x), x) and torch.equal(DropPath(0.0).train()(x), x)


def test_models_are_deterministic_in_training_unless_asked_for_stochastic_depth():
    """The edge models and the configs' defaults use no stochastic depth; ViC-T's paper recipe does (0.25)."""
    from vidconv_edge.models.sevnet import SEVNetConfig
    from vidconv_edge.models.vidconv import VidConvConfig
    from vidconv_edge.spec import IMAGENET_MEAN, IMAGENET_STD

    assert VidConvConfig().drop_path_rate == 0.0 and VidConvConfig().drop_rate == 0.0
    for cfg in (VidConvConfig(), SEVNetConfig()):
        assert (cfg.mean, cfg.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert SEVNetConfig().group_width == 8 and SEVNetConfig().depths == (3, 4, 6, 3)
    model = create_model("vic_edge").train()
    clip = torch.randn(2, 9, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(model(clip), model(clip))
    assert create_model("vic_tiny").cfg.drop_path_rate == 0.25


def test_model_options_given_as_lists_become_tuples_and_bad_shapes_are_refused():
    model = create_model("vic_edge", dims=[8, 16, 32, 64], depths=[1, 1, 1, 1], mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    cfg = model.cfg
    assert (cfg.dims, cfg.depths, cfg.mean, cfg.std) == ((8, 16, 32, 64), (1, 1, 1, 1), (0.5,) * 3, (0.2,) * 3)
    assert model.config_dict()["dims"] == (8, 16, 32, 64)
    with pytest.raises(UserError, match="dims and depths need 4 entries"):
        create_model("vic_edge", dims=[8, 16, 32])
    with pytest.raises(UserError, match="dims and depths need 4 entries"):
        create_model("vic_edge", depths=[1, 1, 1])
    assert create_model("vic_edge", layout=(2, 4), frames=8).cfg.layout == (2, 4)
    with pytest.raises(UserError, match="frames 9 do not fill the layout 2x4"):
        create_model("vic_edge", layout=(2, 4), frames=9)


def test_stage_names_of_both_families():
    assert list(create_model("sevnet_edge").stage_parts()) == ["stem", "stage2", "stage3", "stage4", "stage5", "head"]
    assert create_model("sevnet_edge").stage_parts()["head"] == ["fc"]
    assert list(create_model("vic_tiny", neck_dim=0).stage_parts())[-1] == "head"
    assert create_model("vic_tiny").stage_parts()["neck"] == ["final_norm", "neck"]
    assert create_model("sevnet_g8").name == "sevnet_g8" and create_model("vic_base").name == "vic_base"


@pytest.mark.parametrize("layout", [(1, 5), (5, 1), (0, 3)])
def test_collage_layouts_beyond_four_by_four_are_refused(layout):
    with pytest.raises(UserError, match=f"frames layout {layout[0]}x{layout[1]} not supported"):
        create_model("vic_edge", layout=layout)


def test_paper_recipe_values_of_the_configs():
    """ConvNeXt's LayerNorm eps 1e-6; stochastic depth 0.25 / 0.5 for ViC-T / ViC-B (the papers' recipes);
    SEVNet options given as lists become tuples like VidConv's."""
    from vidconv_edge.models.layers import make_norm

    assert make_norm("ln", 8).eps == 1e-6
    assert create_model("vic_base").cfg.drop_path_rate == 0.5
    sev = create_model("sevnet_edge", depths=[1, 1, 1, 1], mean=[0.5, 0.4, 0.3], std=[0.1, 0.2, 0.3])
    assert (sev.cfg.depths, sev.cfg.mean, sev.cfg.std) == ((1, 1, 1, 1), (0.5, 0.4, 0.3), (0.1, 0.2, 0.3))
