#!/usr/bin/env bash
# Rebuild the bundled default model vidconv_edge/assets/vic_edge.pt (vic_edge on the synthetic set,
# configs/edge.yaml) and print its validation/test top-1 with normal, reversed and shuffled frames.
# Extra arguments go to `python -m vidconv_edge.apps.default_model` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m vidconv_edge.apps.default_model "$@"
