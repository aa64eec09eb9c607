"""vidconv_edge.hw: FINN flow for the quantized edge models.

- ``boards``: the target boards (part, clock, capacity, shell flow, precision profile); no FINN import.
- ``flow.build_fpga(source, board, out_dir, ...)``: QONNX -> FINN -> verified HW graph -> estimates -> HLS/RTL code,
  and the Vivado steps when installed (``vivado`` decides); writes ``out_dir/report.json``.
- ``steps_*``: our builder steps, ``step_x(model, cfg)`` with ``config.HwBuildConfig``; ``steps_merge``: both parts
  as one design (two pipelines in one FINN build, one bitstream), the default for ``--part both``.
- ``report``: FINN estimates per layer, fit check with a stated margin, rich tables.
- ``source``: what is built (checkpoint, QONNX part, bundled default; a SEVNet: its FPGA form from
  ``quant.sevnet_fpga``, one ``clip`` accelerator) and its verification samples; ``steps_masks``: that form's
  separator-row masks as integer ``ElementwiseMul`` layers;
  ``quantize``: a float model to the board's precision (PTQ, QAT, float vs quantized val top-1);
  ``reference``: the float64 execution of a QONNX model the HW graph must equal bit for bit.
- ``deploy``: the deploy bundle ``out_dir/deploy`` (manifest.json format documented there).
- ``partio``: a part's I/O and the report, typed (no FINN import): the steps fill ``HwBuildConfig.io``, the deploy
  bundle and the stream backends read report.json / the manifest's streams back through it.
"""
