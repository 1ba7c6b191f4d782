#!/usr/bin/env bash
# Stage 1 of the mini recipe: generate the bridge world (deterministic by seed).
set -euo pipefail
. scripts/log.sh
world_dir=world
seed=0
preset=default
offscreen_noise_prob=0.3
nj=2
_option_names="world_dir seed preset offscreen_noise_prob nj"
. scripts/parse_options.sh

log "generating the bridge world (${preset}, seed ${seed}, off-screen noise ${offscreen_noise_prob}) in ${world_dir}"
python3 -m espnet2_clip.bin.make_bridge_world --output_dir "${world_dir}" --seed "${seed}" --preset "${preset}" \
    --offscreen_noise_prob "${offscreen_noise_prob}" --nj "${nj}" --no_progress
