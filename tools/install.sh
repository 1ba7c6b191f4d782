#!/usr/bin/env bash
# Create a virtual environment with the pinned, known-good stack and this package (editable).
# Idempotent: rerunning only installs what is missing.
#   tools/install.sh [VENV_DIR]      (default: tools/venv)
set -euo pipefail
tools_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "${tools_dir}")
venv=${1:-${tools_dir}/venv}
python=${PYTHON:-python3}

if [ ! -x "${venv}/bin/python" ]; then
    echo "[install] creating ${venv}"
    "${python}" -m venv "${venv}"
fi
pip=("${venv}/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "pip>=23.2,<25" "setuptools>=61,<74" wheel
# torch first, pinned, so the resolver never backtracks through other CUDA builds.
"${pip[@]}" install torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.1
"${pip[@]}" install -e "${root}[test,recorded]"
"${venv}/bin/python" -c "import espnet2_clip, torch, espnet2, open_clip; print('[install] ok: torch', torch.__version__)"
echo "[install] activate with: . ${venv}/bin/activate"
