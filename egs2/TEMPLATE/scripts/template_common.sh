#!/usr/bin/env bash
# Sourced by the stage templates (clipsep1/clipsep.sh, clipsonic1/clipsonic.sh) after their options
# are parsed: the job runner, the trained-here CLIP paths, and small config helpers.
scripts_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run=("${scripts_dir}/run_local.sh")
[ -n "${train_cmd}" ] || train_cmd=${scripts_dir}/run_local.sh
inference_cmd=${inference_cmd:-${scripts_dir}/run_local.sh}
inference_nj=${inference_nj:-1}
case "${gpu_inference:-false}" in  # the --device of every inference stage that runs a network
    true) inference_device=cuda; inference_run=(${inference_cmd} --gpu 1) ;;
    false) inference_device=cpu; inference_run=(${inference_cmd}) ;;
    *) echo "error: --gpu_inference must be true or false, got '${gpu_inference}'" >&2; exit 1 ;;
esac

[[ "${inference_nj}" =~ ^[1-9][0-9]*$ ]] || { echo "error: --inference_nj must be an integer >= 1, got '${inference_nj}'" >&2; exit 1; }
train_nj=${train_nj:-1}
[[ "${train_nj}" =~ ^[1-9][0-9]*$ ]] || { echo "error: --train_nj must be an integer >= 1, got '${train_nj}'" >&2; exit 1; }

# run_at_once N FUNCTION ARG...: FUNCTION ARG for every ARG, N at a time in the background (N = 1: one
# after another, in this shell). Unless OMP_NUM_THREADS is set, each gets nproc / N CPU threads (at least
# 1), as run_local.sh gives parallel jobs. Fails after all have ended if any failed.
run_at_once() {
    local n=$1 fn=$2 arg pid pids=() alive failed=0 threads
    shift 2
    if [ "${n}" -le 1 ]; then
        for arg in "$@"; do "${fn}" "${arg}"; done
        return
    fi
    threads=${OMP_NUM_THREADS:-$(( $(nproc) / n ))}
    [ "${threads}" -ge 1 ] || threads=1
    for arg in "$@"; do
        while :; do  # a free slot (`wait -n` can miss a job that ended earlier: poll instead)
            alive=0
            for pid in "${pids[@]}"; do ! kill -0 "${pid}" 2> /dev/null || alive=$(( alive + 1 )); done
            [ ${alive} -ge "${n}" ] || break
            sleep 1
        done
        ( export OMP_NUM_THREADS=${threads}; "${fn}" "${arg}" ) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "${pid}" || failed=$(( failed + 1 )); done
    if [ ${failed} -gt 0 ]; then
        echo "$(date +%FT%T) error: ${failed} of $# runs of ${fn} failed (see their logs above)" >&2
        return 1
    fi
}

# split_list LIST N DIR: LIST's lines (sorted by id) in K = min(N, lines) contiguous parts DIR/keys.1..K
# (older parts removed); prints K. The inference stages run one job per part (run_local.sh JOB=1:K).
split_list() {
    local list=$1 n=$2 dir=$3 total
    total=$(grep -c . "${list}" || true)
    [ "${total}" -gt 0 ] || { echo "error: ${list} is empty" >&2; return 1; }
    [ "${n}" -le "${total}" ] || n=${total}
    mkdir -p "${dir}"
    rm -f "${dir}"/keys.*
    grep . "${list}" | sort -k1,1 | awk -v n="${n}" -v total="${total}" -v dir="${dir}" \
        '{ print > (dir "/keys." (int((NR - 1) * n / total) + 1)) }'
    echo "${n}"
}
# merge_scps OUT FILE...: the jobs' lists, sorted by id, written atomically to OUT
merge_scps() {
    local out=$1
    shift
    sort -k1,1 "$@" > "${out}.tmp" && mv "${out}.tmp" "${out}"
}

# require_writable_dir DIR OPTION: DIR exists (made here) and a file can be written in it, or one error
# line naming OPTION and the system's reason, before a stage starts work (a real probe: permission bits
# do not tell root about read-only mounts)
require_writable_dir() {
    local probe why
    if why=$(mkdir -p "$1" 2>&1) && probe=$(mktemp "$1/.write_probe.XXXXXX" 2>&1); then
        rm -f "${probe}"
        return 0
    fi
    why=${why:-${probe}}
    echo "$(date +%FT%T) error: $2 '$1' is not writable (${why##*: }); give a writable directory" >&2
    exit 1
}

if [ "${train_clip}" = true ]; then  # stage "train a small CLIP" writes these
    clip_model=${exp_dir}/clip/open_clip_config.json
    clip_pretrained=${exp_dir}/clip/open_clip_model.safetensors
fi

config_value() {  # config_value CONFIG KEY DEFAULT
    ${python} -c "import sys, yaml; d = yaml.safe_load(open(sys.argv[1])) or {}; print(d.get(sys.argv[2], sys.argv[3]))" "$@"
}
model_tag() { basename "$1" .yaml | sed 's/^train_//'; }  # exp/<tag> of a conf/train_<tag>.yaml
encoder_of() { config_value "$1" query_encoder clip; }  # the frozen query encoder of a config
# The recipe's CLIP (--clip_model / --clip_pretrained) for configs whose query encoder is CLIP (the
# bridge); any other encoder (bert, label, one of your own) keeps its config's query_encoder_conf.
set_encoder_opts() {  # set_encoder_opts CONFIG -> ${encoder_opts[@]}
    encoder_opts=()
    if [ "$(encoder_of "$1")" = clip ]; then
        encoder_opts=(--query_encoder_conf "{model_name: ${clip_model}, pretrained: ${clip_pretrained}}")
    fi
}
# embed_label_text CONFIG SET: text queries of a model trained on label text (CLIPSep-Text, BERTSep,
# CLIPSonic-SD): ${dump_dir}/SET/label embedded with the encoder and prompt CONFIG names
#   -> ${dump_dir}/SET/query_text_<tag>.scp
embed_label_text() {
    local tag
    tag=$(model_tag "$1")
    set_encoder_opts "$1"
    "${run[@]}" "${exp_dir}/logs/embed_text_${tag}_$2.log" ${python} -m espnet2_clip.bin.query_embed \
        --mode text --input_scp "${dump_dir}/$2/label" --train_config "$1" "${encoder_opts[@]}" --device "${inference_device}" \
        --output_dir "${dump_dir}/$2/text_${tag}" --output_scp "${dump_dir}/$2/query_text_${tag}.scp"
}

# launch_training LOG OUTPUT_DIR MODULE [ARGS...]: `python -m MODULE --output_dir OUTPUT_DIR ARGS...`
# through ESPnet's launcher, which runs it with ${train_cmd} on ${ngpu} GPUs x ${num_nodes} nodes
# (torch.distributed; its rendezvous files go to OUTPUT_DIR/.dist_init_*) and logs to LOG.
# As in ESPnet's recipes, training resumes from OUTPUT_DIR/checkpoint.pth when a killed stage is rerun
# (a finished one ends at once); pass --resume false in --train_args to start over.
launch_training() {
    local log=$1 output_dir=$2 module=$3
    shift 3
    mkdir -p "${output_dir}"
    ${python} -m espnet2.bin.launch --cmd "${train_cmd}" --log "${log}" \
        --ngpu "${ngpu}" --num_nodes "${num_nodes}" --init_file_prefix "${output_dir}/.dist_init_" \
        --multiprocessing_distributed true -- \
        ${python} -m "${module}" --output_dir "${output_dir}" --resume true "$@"
}
