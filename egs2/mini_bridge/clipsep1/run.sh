#!/usr/bin/env bash
# The whole CLIPSep idea on CPU, offline: a generated "bridge world" of videos, a small CLIP
# trained on captioned images only, CLIPSep trained on the videos with image queries, and
# evaluation with TEXT queries. Prints the RESULTS.md table.
#
#   ./run.sh                          # default: CLIPSep and CLIPSep-NIT (17 min on 2 CPU cores)
#   ./run.sh --baselines true         # + the supervised references CLIPSep-Text and LabelSep (600 updates each)
#   ./run.sh --setting ci             # tiny CI setting (a few minutes)
#   ./run.sh --sounds soundfont       # a world of recorded instruments, pictured and named (FluidSynth + a GM SoundFont:
#                                     # apt-get install libfluidsynth3 timgm6mb-soundfont; pip install 'espnet2_clip[recorded]')
#   ./run.sh --world_dir DIR --stage 2   # your own world/data laid out like the bridge world
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. ./path.sh

setting=default   # default | ci  (selects conf/ or conf/ci/)
seed=0            # the world, the small CLIP and every model's training
offscreen_noise_prob=0.5  # share of training videos with off-screen sounds (0: a clean world, one test set)
sounds=synth      # the class sounds: synth (synthesised signatures) | soundfont (recorded instruments)
baselines=false   # true: also train the supervised references CLIPSep-Text and LabelSep (paper Table 1's rows)

world_dir=""      # default: world_<setting> (stage 1 generates the world there)
stage=1           # 2: ${world_dir} is your own world (no generator)

# Parse only our own options here; the rest go to clipsep.sh.
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --setting) setting=$2; shift 2 ;;
        --world_dir) world_dir=$2; shift 2 ;;
        --stage) stage=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --offscreen_noise_prob) offscreen_noise_prob=$2; shift 2 ;;
        --sounds) sounds=$2; shift 2 ;;
        --baselines) baselines=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

case "${setting}" in
    default)  # two models trained at once (on 2 cores: a thread each; small batches use a core better alone)
        preset=default; clip_steps=150; train_nj=2
        configs="conf/train_clipsep.yaml conf/train_clipsep_nit.yaml"
        baseline_configs="conf/train_clipsep_text.yaml conf/train_labelsep.yaml" ;;
        # --train_configs "... conf/train_clipsep_dprnn.yaml" adds CLIPSep on ESPnet's DPRNN separator (slower than the U-Net)
    ci)  # CLIPSep and CLIPSep-NIT only, small models: a few minutes
        preset=ci; clip_steps=60; train_nj=1
        configs="conf/ci/train_clipsep.yaml conf/ci/train_clipsep_nit.yaml"
        baseline_configs="" ;;
    *) echo "$0: unknown --setting ${setting} (default|ci)" >&2; exit 1 ;;
esac
case "${baselines}" in
    true) [ -n "${baseline_configs}" ] || { echo "$0: --baselines true: the ${setting} setting has no baseline configs" >&2; exit 1; }
          configs+=" ${baseline_configs}" ;;
    false) ;;
    *) echo "$0: --baselines must be true or false, got '${baselines}'" >&2; exit 1 ;;
esac

# the clean test set (another class as the interference) and, in a noisy world, the NIT condition
# (an off-screen noise the training videos carried as the interference)
test_sets="test_mix:Bridge-Clean+"
# a world of recorded sounds has its own directories (world_default_soundfont, exp_default_soundfont, ...)
case "${sounds}" in
    synth) name=${setting} ;;
    soundfont) name=${setting}_soundfont ;;
    *) echo "$0: unknown --sounds ${sounds} (synth|soundfont)" >&2; exit 1 ;;
esac
[ -n "${world_dir}" ] || world_dir=world_${name}
if [ "${stage}" -le 1 ]; then  # the world stage 1 generates: noisy unless --offscreen_noise_prob 0
    [ "${offscreen_noise_prob}" = 0 ] || test_sets+=" test_offscreen:Off-screen"
elif [ -d "${world_dir}/data/test_offscreen" ]; then  # an existing world: its test sets
    test_sets+=" test_offscreen:Off-screen"
fi

./clipsep.sh \
    --stage "${stage}" \
    --world_dir "${world_dir}" \
    --local_data_args "--seed ${seed} --preset ${preset} --offscreen_noise_prob ${offscreen_noise_prob} --sounds ${sounds}" \
    --data_dir "data_${name}" --dump_dir "dump_${name}" --exp_dir "exp_${name}" \
    --train_clip true \
    --clip_train_args "--max_steps ${clip_steps} --eval_labels auto --seed ${seed}" \
    --frame_size 64 \
    --train_configs "${configs}" \
    --train_args "--seed ${seed}" \
    --train_nj "${train_nj}" \
    --test_sets "${test_sets}" \
    --inference_model latest.pth \
    --score_backend fast \
    --results_title "CLIPSep on the bridge world (${name})" \
    "${args[@]}"
exit
}
