#!/usr/bin/env bash
# Create a new corpus recipe: TEMPLATE/clipsep1/setup.sh egs2/<corpus>/clipsep1
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 egs2/<corpus>/clipsep1" >&2; exit 1; fi
dir=$1
template=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
mkdir -p "${dir}/local" "${dir}/conf"
rel=$(python3 -c "import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))" "${template}" "${dir}")
for f in clipsep.sh path.sh; do ln -sfn "${rel}/${f}" "${dir}/${f}"; done
ln -sfn "$(dirname "${rel}")/scripts" "${dir}/scripts"  # as in egs2/*/clipsep1: ../../TEMPLATE/scripts
echo "created ${dir}: add run.sh, local/data.sh and conf/train_*.yaml (e.g. from egs2/music/clipsep1/conf)"
