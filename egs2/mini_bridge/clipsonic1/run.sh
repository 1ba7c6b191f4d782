#!/usr/bin/env bash
# CLIPSonic on CPU, offline: text-to-audio learned WITHOUT text-audio pairs on the generated
# "bridge world" (shared with clipsep1: same world generator, data stages and small CLIP trained
# on captioned images only). The diffusion model is trained on CLIP IMAGE embeddings of video
# frames and queried with TEXT (ZS: directly; PD: through a diffusion prior trained on the
# captioned images); IQ (test image queries) and SD (trained on label-text embeddings) are the
# references. Scored by an audio classifier trained on the world's audio: relevance (accuracy,
# chance 1/K) and a Fréchet distance in its embedding space; guidance-scale sweep in RESULTS.md.
#
#   ./run.sh                     # default setting (about 15 minutes on 2 CPU cores)
#   ./run.sh --baselines true    # + the supervised reference SD (trained on the labels' CLIP text embeddings)
#   ./run.sh --setting ci        # tiny CI setting (a few minutes): IQ / ZS / PD, Griffin-Lim
#   ./run.sh --sounds soundfont  # a world of recorded instruments, pictured and named (FluidSynth + a GM SoundFont:
#                                # apt-get install libfluidsynth3 timgm6mb-soundfont; pip install 'espnet2_clip[recorded]')
#   ./run.sh --world_dir DIR --data_stage 2   # your own world/data laid out like the bridge world
#                                             # (stage 1 then skips the world generator)
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. ./path.sh

setting=default   # default | ci  (selects conf/ or conf/ci/)
seed=0
# the world's off-screen noise: 30 % of the training videos carry wind or hum (the world the README's numbers
# were measured on; clipsep1's default adds other classes' sounds and babble, for CLIPSep-NIT)
offscreen_noise_prob=0.3
sounds=synth      # the class sounds: synth (synthesised signatures) | soundfont (recorded instruments)
baselines=false   # true: also train the supervised reference SD, side by side with the IQ model (a thread each)

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --setting) setting=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --offscreen_noise_prob) offscreen_noise_prob=$2; shift 2 ;;
        --sounds) sounds=$2; shift 2 ;;
        --baselines) baselines=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

case "${setting}" in
    default) conf=conf; preset=default; clip_steps=150; text_config=conf/train_clipsonic_sd.yaml
             setting_opts=(--gen_vocoder griffin_lim --gen_per_class 3 --gen_images_per_class 3 --guidance_scales "1 3 5"
                       --gen_steps 25 --classifier_args "--steps 300 --clip_samples 16383") ;;
    ci) conf=conf/ci; preset=ci; clip_steps=60; text_config=conf/ci/train_clipsonic_sd.yaml
        setting_opts=(--gen_vocoder griffin_lim --gen_per_class 3 --gen_images_per_class 3 --guidance_scales "1 3"
                  --gen_steps 10 --classifier_args "--steps 150 --clip_samples 16383"
                  --vocoder_config conf/train_vocoder_hifigan.yaml --vocoder_args "--num_iters_per_epoch 5 --max_epoch 1") ;;
    *) echo "$0: unknown --setting ${setting} (default|ci)" >&2; exit 1 ;;
esac
# the IQ model alone takes every core; with SD the two train side by side, a thread each (small batches use a
# core better alone than two threads do)
case "${baselines}" in
    true) train_nj=2 ;;
    false) train_nj=1; text_config="" ;;
    *) echo "$0: --baselines must be true or false, got '${baselines}'" >&2; exit 1 ;;
esac
# a world of recorded sounds has its own directories (world_default_soundfont, exp_default_soundfont, ...)
case "${sounds}" in
    synth) name=${setting} ;;
    soundfont) name=${setting}_soundfont ;;
    *) echo "$0: unknown --sounds ${sounds} (synth|soundfont)" >&2; exit 1 ;;
esac

./clipsonic.sh \
    --world_dir "world_${name}" \
    --local_data_args "--seed ${seed} --preset ${preset} --offscreen_noise_prob ${offscreen_noise_prob}
                       --offscreen_kinds wind,hum --offscreen_max_sources 1 --offscreen_snr_db 0,6 --sounds ${sounds}" \
    --data_dir "data_${name}" --dump_dir "dump_${name}" --exp_dir "exp_${name}" \
    --train_clip true \
    --clip_train_args "--max_steps ${clip_steps} --eval_labels auto --seed ${seed}" \
    --frame_size 64 \
    --prior_config "${conf}/train_prior.yaml" \
    --image_config "${conf}/train_clipsonic_iq.yaml" \
    --text_config "${text_config}" \
    --train_nj "${train_nj}" \
    "${setting_opts[@]}" \
    --results_title "CLIPSonic on the bridge world (${name})" \
    "${args[@]}"
exit
}
