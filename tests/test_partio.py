"""The typed hand-off of the FPGA flow (hw.partio): a part's I/O in report.json and the deploy manifest's streams."""

from __future__ import annotations

import json

import pytest

from vidconv_edge.errors import UserError
from vidconv_edge.hw.partio import VERSION, BuildReport, PartIO, StreamFormat, read_report
from vidconv_edge.stream.backends.bundle import load_manifest


def _early_io() -> PartIO:
    """As the steps leave it for an early-net: pixels in, INT4 features out, folded and packed shapes, verified."""
    return PartIO(
        input=StreamFormat(shape=[1, 32, 32, 3], layout="NHWC", datatype="UINT8", scale=1.0, what="pixels 0..255",
                           folded_shape=[1, 32, 32, 3, 1], packed_shape=[1, 32, 32, 3, 1]),
        output=StreamFormat(shape=[1, 4, 4, 32], layout="NHWC", datatype="INT4", scale=0.25,
                            folded_shape=[1, 4, 4, 4, 8], packed_shape=[1, 4, 4, 4, 4]),
        verification={"samples": 2, "bit_exact": True, "mismatches": 0},
        memory_styles={"swg_block_lut": 0, "threshold_bram_depth": 64},
        binary_weights_widened=[],
    )  # fmt: skip


def _report(io: dict) -> dict:
    return {"model": "vic_edge", "parts": {"early": {"io": io, "verified": True, "estimated_fps": 50.0}}}


def test_part_io_round_trips_through_json_and_the_report_file(tmp_path):
    io = _early_io()
    d = io.to_json()
    assert d["version"] == VERSION and "inputs" not in d and "pipelines" not in d  # nothing unrecorded is written
    assert PartIO.from_json(json.loads(json.dumps(d)), "x") == io
    merged = PartIO(inputs=[io.input, io.output], outputs=[io.output], pipelines={"early": {"input_index": 0}})
    assert PartIO.from_json(merged.to_json(), "x") == merged
    (tmp_path / "report.json").write_text(json.dumps(_report(d)))
    report = read_report(tmp_path / "report.json")
    assert report.model == "vic_edge" and report.parts["early"].io == io
    assert report.parts["early"].verified and report.parts["early"].estimated_fps == 50.0


def test_updated_stream_keeps_what_the_other_does_not_record():
    built = StreamFormat(datatype="INT4", scale=0.25, layout="NHWC")
    folded = StreamFormat(datatype="INT4", shape=[1, 4, 4, 32], folded_shape=[1, 4, 4, 4, 8])
    assert built.updated(folded) == StreamFormat(shape=[1, 4, 4, 32], layout="NHWC", datatype="INT4", scale=0.25,
                                                 folded_shape=[1, 4, 4, 4, 8])  # fmt: skip
    assert StreamFormat(scale=0.5).to_json(complete=True)["folded_shape"] is None  # the manifest's form


@pytest.mark.parametrize(
    "change,field,what",
    [
        (lambda io: io["output"].update(scale="0.25"), "parts.early.io.output.scale", "must be a number"),
        (lambda io: io["input"].update(shape=[1, "32"]), "parts.early.io.input.shape", "must be a list of integers"),
        (lambda io: io.update(output=[1, 2]), "parts.early.io.output", "must be an object"),
        (lambda io: io.update(verification="yes"), "parts.early.io.verification", "must be an object"),
        (lambda io: io.update(version=VERSION + 1), "parts.early.io.version", f"is {VERSION + 1}, this .* reads version"),
    ],
)  # fmt: skip
def test_a_malformed_report_names_the_field(tmp_path, change, field, what):
    io = _early_io().to_json()
    change(io)
    (tmp_path / "report.json").write_text(json.dumps(_report(io)))
    with pytest.raises(UserError, match=rf"report.json: field '{field}' {what}"):
        read_report(tmp_path / "report.json")


def test_a_report_without_parts_or_io_names_the_field():
    with pytest.raises(UserError, match="field 'parts' is missing"):
        BuildReport.from_json({"model": "x"})
    with pytest.raises(UserError, match=r"field 'parts.later.io' is missing"):
        BuildReport.from_json({"parts": {"later": {"verified": True}}})
    with pytest.raises(UserError, match=r"field 'parts.early.verified' must be bool"):
        BuildReport.from_json({"parts": {"early": {"io": _early_io().to_json(), "verified": "no"}}})


def test_a_field_the_reader_needs_is_named_when_missing():
    io = PartIO(input=StreamFormat(datatype="UINT8", scale=1.0))
    assert io.need("input.scale", "report.json") == 1.0
    with pytest.raises(UserError, match=r"report.json: field 'parts.later.io.output.scale' is missing"):
        io.need("output.scale", "report.json", "parts.later.io")


def test_the_deploy_manifest_streams_are_checked_by_field(tmp_path):
    stream = StreamFormat(shape=[1, 16, 16, 3], layout="NHWC", datatype="UINT8", scale=1.0, zero_point=0.0)
    out = StreamFormat(shape=[1, 3], layout="NC", datatype="INT8", scale=0.25, zero_point=0.0)
    manifest = {
        "format": "vidconv-edge-deploy", "version": 1, "model": "toy", "class_names": ["a", "b", "c"],
        "frames": 1, "size": 16, "layout": [1, 1],
        "parts": {"clip": {"input": stream.to_json(complete=True), "output": out.to_json(complete=True)}},
    }  # fmt: skip
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    bundle = load_manifest(tmp_path)
    assert bundle.parts["clip"].input.folded_shape == (1, 16, 16, 1, 3) and bundle.parts["clip"].output.scale == 0.25
    manifest["parts"]["clip"]["output"]["datatype"] = None
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"manifest.json: field 'parts.clip.output.datatype' is missing"):
        load_manifest(tmp_path)
    manifest["parts"]["clip"]["output"]["datatype"] = 8
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"field 'parts.clip.output.datatype' must be a string, got 8"):
        load_manifest(tmp_path)


def test_a_report_from_before_the_version_field_reads_as_version_1():
    io = _early_io()
    legacy = {k: v for k, v in io.to_json().items() if k != "version"}
    assert PartIO.from_json(legacy, "x") == io
