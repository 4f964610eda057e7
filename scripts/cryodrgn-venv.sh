#!/usr/bin/env bash
# A separate virtual environment with cryoDRGN 4.3.1 and the CPU build of PyTorch, for
# benchmarks/bench_reconstruct.py only (cryoweave never imports either).
#
#   bash scripts/cryodrgn-venv.sh [DIR]        # default .venv-cryodrgn
#
# cryoDRGN is installed without its dependencies (they include JupyterLab and a CUDA PyTorch);
# backproject_voxel and the .cs parsers need only the ones listed here. TORCH_SPEC chooses the
# PyTorch build: by default the CPU wheel from PyTorch's own index.
set -euo pipefail
dir=${1:-.venv-cryodrgn}
python=${PYTHON:-python3}
if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import cryodrgn.commands.backproject_voxel" 2>/dev/null; then
    exit 0
fi
"$python" -m venv "$dir"
pip="$dir/bin/python -m pip --disable-pip-version-check -q"
if [ -n "${TORCH_SPEC:-}" ]; then
    $pip install "$TORCH_SPEC"
else
    $pip install torch --index-url https://download.pytorch.org/whl/cpu
fi
$pip install numpy scipy pandas pyyaml igraph matplotlib
$pip install --no-deps cryodrgn==4.3.1
"$dir/bin/python" -c "import cryodrgn.commands.backproject_voxel, torch; print('cryoDRGN ready, torch', torch.__version__)"
