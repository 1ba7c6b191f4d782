#!/usr/bin/env bash
# The whole CLIPSep idea on CPU, offline: a generated "bridge world" of videos, a small CLIP
# trained on captioned images only, CLIPSep trained on the videos with image queries, and
# evaluation with TEXT queries. Prints the RESULTS.md table.
#
#   ./run.sh                          # default world (about 20 min on 2 CPU cores)
#   ./run.sh --setting ci             # tiny CI setting (a few minutes)
#   ./run.sh --world_dir DIR --stage 2   # your own world/data laid out like the bridge world
set -euo pipefail
. ./path.sh

setting=default   # default | ci  (selects conf/ or conf/ci/)
seed=0
offscreen_noise_prob=0.3

# Parse only our own options here; the rest go to clipsep.sh.
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --setting) setting=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --offscreen_noise_prob) offscreen_noise_prob=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

case "${setting}" in
    default)
        preset=default; clip_steps=150
        configs="conf/train_clipsep.yaml conf/train_clipsep_nit.yaml conf/train_clipsep_text.yaml conf/train_labelsep.yaml"
        configs+=" conf/train_clipsep_dprnn.yaml" ;;  # CLIPSep with ESPnet's DPRNN separator as the backbone
    ci)  # CLIPSep and CLIPSep-NIT only, small models: a few minutes
        preset=ci; clip_steps=60
        configs="conf/ci/train_clipsep.yaml conf/ci/train_clipsep_nit.yaml" ;;
    *) echo "$0: unknown --setting ${setting} (default|ci)" >&2; exit 1 ;;
esac

./clipsep.sh \
    --world_dir "world_${setting}" \
    --local_data_args "--seed ${seed} --preset ${preset} --offscreen_noise_prob ${offscreen_noise_prob}" \
    --data_dir "data_${setting}" --dump_dir "dump_${setting}" --exp_dir "exp_${setting}" \
    --train_clip true \
    --clip_train_args "--max_steps ${clip_steps} --eval_labels auto --seed ${seed}" \
    --frame_size 64 \
    --train_configs "${configs}" \
    --inference_model latest.pth \
    --score_backend fast \
    --results_title "CLIPSep on the bridge world (${setting})" \
    "${args[@]}"
