#!/usr/bin/env bash
# Stage 1 of the mini recipe: generate the bridge world (deterministic by seed).
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. scripts/log.sh
world_dir=world
seed=0
preset=default
offscreen_noise_prob=0.5   # share of training videos with off-screen sounds
offscreen_kinds=""         # comma-separated kinds of off-screen sound ("": the generator's, class,babble,wind,hum)
offscreen_max_sources=""   # off-screen sounds per noisy video, 1..N ("": the generator's, 2)
offscreen_snr_db=""        # LO,HI dB below the on-screen sound ("": the generator's, 0,10)
sounds=synth               # the class sounds: synth (synthesised) | soundfont (recorded instruments, FluidSynth)
soundfont=""               # a General MIDI .sf2 ("": Debian's TimGM6mb, apt-get install timgm6mb-soundfont)
nj=2
_option_names="world_dir seed preset offscreen_noise_prob offscreen_kinds offscreen_max_sources offscreen_snr_db sounds
               soundfont nj"
. scripts/parse_options.sh

opts=(--offscreen_noise_prob "${offscreen_noise_prob}")
[ -z "${offscreen_kinds}" ] || opts+=(--offscreen_kinds "${offscreen_kinds}")
[ -z "${offscreen_max_sources}" ] || opts+=(--offscreen_max_sources "${offscreen_max_sources}")
[ -z "${offscreen_snr_db}" ] || opts+=(--offscreen_snr_db "${offscreen_snr_db}")
opts+=(--sounds "${sounds}")
[ -z "${soundfont}" ] || opts+=(--soundfont "${soundfont}")
log "generating the bridge world (${preset}, seed ${seed}, ${sounds} sounds, off-screen sounds: ${opts[*]}) in ${world_dir}"
python3 -m espnet2_clip.bin.make_bridge_world --output_dir "${world_dir}" --seed "${seed}" --preset "${preset}" \
    "${opts[@]}" --nj "${nj}" --no_progress
exit
}
