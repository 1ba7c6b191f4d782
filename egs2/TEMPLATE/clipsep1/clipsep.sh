#!/usr/bin/env bash
# CLIPSep recipe template: text-queried sound separation learned from unlabeled videos.
# Corpus recipes (egs2/<corpus>/clipsep1/run.sh) call this with their options.
#
# Stages:
#   1  local/data.sh: make or fetch the world/corpus into ${world_dir}
#   2  validate ${world_dir}/data/* and copy it to ${data_dir}/ (hold out valid if missing)
#   3  extract 16 kHz mono audio and 1 fps frames from the videos
#   4  train a small CLIP on the captioned images only (if --train_clip true)
#   5  CLIP image embeddings of the frames (--inference_nj jobs); text embeddings / label ids of the labels
#   6  format the test mixtures of every --test_sets entry
#   7  train every model of --train_configs (ESPnet trainer; --train_nj of them at once)
#   8  separate the test mixtures with text (and image) queries: exp/<tag>/decode_<query>/<test set>
#      (--inference_nj jobs, each loading the model once for all sets and writing their logdir/output.JOB;
#      spk*.scp merged; logs in exp/<tag>/logdir/decode)
#   9  score: BSS-eval v4 SDR/SIR/SAR, mean +- s.e., median
#   10 RESULTS.md (table + figure)
#   11 model card exp/<tag>/README.md (espnet2_clip.bin.model_card), then pack every model with it
#      (espnet2.bin.pack; loadable by TextQueriedSeparation.from_pretrained; `espnet2-clip info` prints the card)
#   12 upload the packed models to the Hugging Face Hub with their packed model card (only with --skip_upload_hf false)
#   13 demo page ${exp_dir}/demo/index.html: --demo_examples mixtures per test set with their query, reference
#      and every model's estimates (audio players, spectrograms; from the decodes, no model is run)
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail

template_dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
. "${template_dir}/../scripts/log.sh"

# General
stage=1
stop_stage=100
nj=2                  # parallel jobs for extraction
ngpu=0                # GPUs for training (ESPnet's launcher)
gpu_inference=false   # true: CLIP embeddings and separation (stages 5, 8) run on the GPU (cuda)
inference_nj=1        # parallel jobs of the inference stages (5: frames, 8: separation), each on a part of the list
inference_cmd=""      # job runner of those jobs (default: our scripts/run_local.sh; a cluster's slurm.pl / queue.pl)
num_nodes=1           # nodes for multi-node training (needs a cluster --train_cmd, e.g. slurm.pl)
train_cmd=""          # job runner given to espnet2.bin.launch (default: our scripts/run_local.sh)
python=python3
world_dir=world       # the world/corpus layout (stage 1 output, or your own data)
data_dir=data
dump_dir=dump
exp_dir=exp
local_data_args=""    # options of local/data.sh
test_sets=test_mix    # test mixture dirs of ${world_dir}/data, each DIR or DIR:TITLE (RESULTS.md column)

# CLIP (query encoder)
train_clip=false      # stage 4: train a small CLIP on ${data_dir}/clip_train
clip_train_args=""    # options of espnet2_clip.bin.clip_train
clip_model=ViT-B-32   # open_clip name / config json (ignored if --train_clip true)
clip_pretrained=openai  # open_clip tag or checkpoint file (ignored if --train_clip true)
frame_size=224        # frames are resized/cropped to this size at stage 3

# Models
train_configs=""      # training configs (one exp/<tag> each, tag = file name minus train_)
train_args=""         # extra options of espnet2_clip.bin.clipsep_train
train_nj=1            # models of --train_configs trained at once (unless OMP_NUM_THREADS is set, each on nproc / train_nj
                      # CPU threads: small CPU batches use a core better alone than spread over several)
inference_model=valid.loss.best.pth  # checkpoint used for inference and packing (e.g. latest.pth)
text_prompt=single    # text queries at inference: single ("a photo of {}") or ensemble
image_queries=true    # also evaluate with image queries where the test set has them
score_backend=museval # museval (the paper's) or fast (same numbers, faster)
results_title="CLIPSep"
paper_results=""      # YAML of the paper's numbers, printed beside ours in RESULTS.md (conf/paper_results.yaml)

# Model card (stage 11) and upload (stage 12, off by default)
corpus_name=""        # corpus named in the model card (default: the recipe's parent dir)
model_license=cc-by-4.0  # licence of the model weights stated in the model card (Hub identifier)
skip_upload_hf=true   # true: stage 12 does nothing
hf_repo=""            # user/name; with several models, user/name_<tag>

# Demo page (stage 13)
demo_examples=4       # mixtures per test set on ${exp_dir}/demo/index.html (0: no page)

_option_names="stage stop_stage nj ngpu gpu_inference inference_nj inference_cmd num_nodes python world_dir data_dir dump_dir exp_dir
train_cmd local_data_args test_sets train_clip clip_train_args clip_model clip_pretrained frame_size train_configs
train_args train_nj inference_model text_prompt image_queries score_backend results_title paper_results skip_upload_hf hf_repo corpus_name
model_license demo_examples"
. "${template_dir}/../scripts/parse_options.sh"
. "${template_dir}/../scripts/template_common.sh"  # run, train_cmd, CLIP paths, config_value, model_tag, launch_training

[ -n "${corpus_name}" ] || corpus_name=$(basename "$(dirname "$(pwd)")")  # egs2/<corpus>/clipsep1
log "models: $(for config in ${train_configs}; do model_tag "${config}"; done | xargs) (stage 7: ${train_nj} at once)"
test_dirs=()
for entry in ${test_sets}; do test_dirs+=("${entry%%:*}"); done
[ ${#test_dirs[@]} -gt 0 ] || { log "error: --test_sets is empty"; exit 1; }

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation (local/data.sh) into ${world_dir}"
    require_writable_dir "${world_dir}" --world_dir
    local/data.sh --world_dir "${world_dir}" ${local_data_args}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: validate ${world_dir}/data and copy it to ${data_dir}"
    ${python} -m espnet2_clip.bin.prepare_data --world_dir "${world_dir}" --output_dir "${data_dir}" \
        --test_sets "${test_dirs[@]}"
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: extract 16 kHz audio and 1 fps frames"
    for set in train valid; do
        "${run[@]}" "${exp_dir}/logs/extract_${set}.log" ${python} -m espnet2_clip.bin.extract_av \
            "${data_dir}/${set}" --output_dir "${dump_dir}/${set}" --nj "${nj}" --size "${frame_size}" --no_progress
        grep -E "extracted|skipped" "${exp_dir}/logs/extract_${set}.log" | tail -n 1 || true
    done
    if [ -d "${world_dir}/download" ]; then  # a downloaded corpus: what became of every listed clip
        log "listed = usable + missing (download) + failed (extraction), per split -> ${dump_dir}/corpus_report.json"
        ${python} -m espnet2_clip.bin.corpus_report --world_dir "${world_dir}" --dump_dir "${dump_dir}"
    fi
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ "${train_clip}" = true ]; then
    log "Stage 4: train a small CLIP on captioned images only (no audio): ${exp_dir}/clip"
    "${run[@]}" "${exp_dir}/clip/train.log" ${python} -m espnet2_clip.bin.clip_train \
        --data_dir "${data_dir}/clip_train" --output_dir "${exp_dir}/clip" ${clip_train_args}
    grep -i "zero-shot" "${exp_dir}/clip/train.log" | tail -n 1 || true
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: query embeddings: frames with CLIP ${clip_model}; labels with each text-queried model's encoder"
    for set in train valid; do
        split_dir=${dump_dir}/${set}/clip_frames
        jobs=$(split_list "${dump_dir}/${set}/frames.scp" "${inference_nj}" "${split_dir}")
        "${inference_run[@]}" JOB=1:"${jobs}" "${exp_dir}/logs/embed_frames_${set}.JOB.log" ${python} -m espnet2_clip.bin.query_embed \
            --mode frames --input_scp "${split_dir}/keys.JOB" --output_dir "${split_dir}/output.JOB" \
            --output_scp "${split_dir}/output.JOB/query_image.scp" --query_encoder clip --device "${inference_device}" \
            --query_encoder_conf "{model_name: ${clip_model}, pretrained: ${clip_pretrained}}"
        merge_scps "${dump_dir}/${set}/query_image.scp" $(seq -f "${split_dir}/output.%g/query_image.scp" "${jobs}")
        [ -f "${dump_dir}/${set}/label" ] || continue
        for config in ${train_configs}; do  # text queries: the encoder and prompt the model's config names
            [ "$(config_value "${config}" train_query image)" = text ] || continue
            embed_label_text "${config}" "${set}"
        done
    done
    if [ -f "${dump_dir}/train/label" ]; then
        label_ids=(${python} -m espnet2_clip.bin.make_label_ids --train_label "${dump_dir}/train/label"
                   --vocab "${dump_dir}/label_vocab" --output_dir "${dump_dir}/label_ids")
        "${label_ids[@]}" --input "${dump_dir}/valid/label" || log "label ids: skipped (no LabelSep)"
        for tset in "${test_dirs[@]}"; do  # LabelSep is scored only where every query is a training label
            rm -rf "${dump_dir}/label_ids/${tset}"
            "${label_ids[@]}" --input "${data_dir}/${tset}/text" \
                || log "label ids of ${tset}: skipped (LabelSep is not evaluated on ${tset})"
        done
    fi
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    for tset in "${test_dirs[@]}"; do
        log "Stage 6: format the test mixtures of ${tset} (16 kHz mono)"
        ${python} -m espnet2_clip.bin.format_test_set --data_dir "${data_dir}/${tset}" --output_dir "${dump_dir}/${tset}"
    done
fi

# The query data a model trains on (from its config's train_query).
query_data() {  # query_data SET TRAIN_QUERY TAG
    case "$2" in
        image) echo "${dump_dir}/$1/query_image.scp,query,npy" ;;
        text) echo "${dump_dir}/$1/query_text_$3.scp,query,npy" ;;
        label) echo "${dump_dir}/label_ids/$1/label_id.scp,query,npy" ;;
        none) echo "" ;;
        *) echo "unknown train_query '$2'" >&2; return 1 ;;
    esac
}

train_model() {  # train_model CONFIG: stage 7 for one model
    local config=$1 tag train_query data_opts mode q extra
    tag=$(model_tag "${config}")
    train_query=$(config_value "${config}" train_query image)
    log "Stage 7: train ${tag} (${config}, queries: ${train_query}) -> ${exp_dir}/${tag}"
    data_opts=()
    for mode in train valid; do
        # wav.scp as ESPnet's "text" type: the preprocessor gets each path and reads only the crop
        data_opts+=(--${mode}_data_path_and_name_and_type "${dump_dir}/${mode}/wav.scp,speech_ref1,text"
                    --${mode}_shape_file "${dump_dir}/${mode}/wav.scp")
        q=$(query_data "${mode}" "${train_query}" "${tag}")
        [ -z "${q}" ] && continue
        if [ ! -f "${q%%,*}" ]; then
            log "error: ${tag} trains on ${train_query} queries, but stage 5 made no ${q%%,*} (see its log above)"
            exit 1
        fi
        data_opts+=(--${mode}_data_path_and_name_and_type "${q}")
    done
    set_encoder_opts "${config}"
    extra=("${encoder_opts[@]}")
    if [ "${train_query}" = label ]; then  # the label table: queried by label text after packing
        extra=(--query_conf "num_labels=$(wc -l < "${dump_dir}/label_vocab")" --query_encoder label
               --query_encoder_conf "{vocab: ${dump_dir}/label_vocab}")
    fi
    launch_training "${exp_dir}/${tag}/train.log" "${exp_dir}/${tag}" espnet2_clip.bin.clipsep_train \
        --config "${config}" "${data_opts[@]}" "${extra[@]}" ${train_args}
}
if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    run_at_once "${train_nj}" train_model ${train_configs}
fi

# The test queries a model is evaluated with on a test set: "kind option file" lines.
test_queries() {  # test_queries CONFIG TEST_SET
    local test=${dump_dir}/$2
    case "$(config_value "$1" train_query image)" in
        image|text)
            echo "text --query_text ${test}/text"
            # image queries need an image encoder (CLIP; not BERT)
            if [ "${image_queries}" = true ] && [ -f "${test}/query_image.scp" ] && [ "$(encoder_of "$1")" = clip ]; then
                echo "image --query_image ${test}/query_image.scp"
            fi ;;
        label)
            local ids=${dump_dir}/label_ids/$2/label_id.scp
            if [ -f "${ids}" ]; then echo "label --query_embedding ${ids}"; fi ;;
        none) echo "none" ;;
    esac
}

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    for config in ${train_configs}; do
        tag=$(model_tag "${config}")
        prompt_opts=()  # CLIP text queries take the recipe's prompts; other encoders keep their training form
        [ "$(encoder_of "${config}")" != clip ] || prompt_opts=(--text_prompt "${text_prompt}")
        # one process per job for every test set and query kind (the model and ESPnet load once): job J
        # separates part J of each set, listed as one line per set in logdir/decode_sets.J
        logdir=${exp_dir}/${tag}/logdir/decode
        mkdir -p "${logdir}"
        rm -f "${logdir}"/decode_sets.*
        decodes=() decode_jobs=() max_jobs=1
        for tset in "${test_dirs[@]}"; do
            while read -r kind query_opts; do
                decode=${exp_dir}/${tag}/decode_${kind}/${tset}
                log "Stage 8: separate ${dump_dir}/${tset} with ${tag} (${kind} queries) -> ${decode}"
                # --output_length istft: the estimate the official evaluation scores (65,280 of 65,535 samples)
                split_dir=${decode}/logdir
                jobs=$(split_list "${dump_dir}/${tset}/wav.scp" "${inference_nj}" "${split_dir}")
                for job in $(seq "${jobs}"); do
                    printf -- '--mix_scp %q --output_dir %q %s\n' "${split_dir}/keys.${job}" \
                        "${split_dir}/output.${job}" "${query_opts}" >> "${logdir}/decode_sets.${job}"
                done
                decodes+=("${decode}") decode_jobs+=("${jobs}")
                [ "${jobs}" -le "${max_jobs}" ] || max_jobs=${jobs}
            done < <(test_queries "${config}" "${tset}")
        done
        "${inference_run[@]}" JOB=1:"${max_jobs}" "${logdir}/inference.JOB.log" ${python} -m espnet2_clip.bin.clipsep_inference \
            --train_config "${exp_dir}/${tag}/config.yaml" --model_file "${exp_dir}/${tag}/${inference_model}" \
            --decode_sets "${logdir}/decode_sets.JOB" "${prompt_opts[@]}" \
            --output_length istft --device "${inference_device}" < /dev/null
        for i in "${!decodes[@]}"; do
            decode=${decodes[i]}
            for spk in $(cd "${decode}/logdir/output.1" && ls spk*.scp); do
                merge_scps "${decode}/${spk}" $(seq -f "${decode}/logdir/output.%g/${spk}" "${decode_jobs[i]}")
            done
        done
    done
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    for config in ${train_configs}; do
        tag=$(model_tag "${config}")
        for tset in "${test_dirs[@]}"; do
            test=${dump_dir}/${tset}
            while read -r kind _; do
                decode=${exp_dir}/${tag}/decode_${kind}/${tset}
                est_scps=("${decode}/spk1.scp")
                # non-queried (PIT): both outputs, scored with oracle selection as in the paper
                [ "${kind}" = none ] && est_scps+=("${decode}/spk2.scp")
                log "Stage 9: score ${decode}"
                "${run[@]}" "${decode}/scoring.log" ${python} -m espnet2_clip.bin.clipsep_scoring \
                    --ref_scp "${test}/spk1.scp" --interf_scp "${test}/spk2.scp" --mix_scp "${test}/wav.scp" \
                    --est_scp "${est_scps[@]}" --output_dir "${decode}/scoring" --backend "${score_backend}" \
                    --nj "${nj}" --name "${tag} (${kind}, ${tset})"
                tail -n 1 "${decode}/scoring.log" | grep -v "^#" || grep "SDR mean" "${decode}/scoring.log" || true
            done < <(test_queries "${config}" "${tset}")
        done
    done
fi

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    log "Stage 10: RESULTS.md"
    tags=""
    for config in ${train_configs}; do tags="${tags} $(model_tag "${config}")"; done
    results_opts=()
    [ "${train_clip}" = true ] && [ -f "${exp_dir}/clip/train_info.json" ] && \
        results_opts+=(--note "query encoder: small CLIP trained here on captioned images only: $(${python} -c \
        "import json,sys; d=json.load(open(sys.argv[1])); print({k: d[k] for k in d if 'acc' in k or k in ('steps', 'seconds')})" \
        "${exp_dir}/clip/train_info.json")")
    results_opts+=(--note "text prompt at inference: ${text_prompt}; CLIP: ${clip_model} (${clip_pretrained})")
    # real corpora: quote the missing YouTube ids next to the numbers
    for report in "${world_dir}"/download/*/download_report.json; do
        [ -f "${report}" ] || continue
        results_opts+=(--note "downloads ($(basename "$(dirname "${report}")")): $(${python} -c \
            "import sys; from espnet2_clip.data.download import missing_report_line as m; print(m(sys.argv[1]))" \
            "${report}"); missing ids: $(dirname "${report}")/missing")
    done
    for tset in "${test_dirs[@]}"; do
        report=${world_dir}/data/${tset}/build_report.json
        [ -f "${report}" ] || continue
        results_opts+=(--note "test mixtures (${tset}): $(${python} -c "import json, sys; from \
espnet2_clip.bin.build_test_mixtures import report_line; print(report_line(json.load(open(sys.argv[1]))))" "${report}")")
    done
    [ -z "${paper_results}" ] || results_opts+=(--paper_results "${paper_results}")
    ${python} -m espnet2_clip.bin.make_results --exp_dir "${exp_dir}" --tags "${tags}" \
        --dump_dir "${dump_dir}" --test_sets "${test_sets}" --output RESULTS.md --title "${results_title}" \
        --model_file "${inference_model}" --world_dir "${world_dir}" "${results_opts[@]}" > /dev/null
    log "wrote $(pwd)/RESULTS.md"
    awk '/^\| System/ { shown = 1 } shown { print } shown && /^$/ { exit }' RESULTS.md  # the Table 1 layout
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ]; then
    for config in ${train_configs}; do
        tag=$(model_tag "${config}")
        log "Stage 11: model card ${exp_dir}/${tag}/README.md; pack ${exp_dir}/${tag} -> ${exp_dir}/${tag}/packed_model.zip"
        # the card: task, training data and missing videos, query encoder, this model's RESULTS.md rows
        # ("not scored" without them), licence, how to run it
        card_opts=()
        [ -f "${dump_dir}/train/wav.scp" ] && card_opts+=(--train_scp "${dump_dir}/train/wav.scp")
        ${python} -m espnet2_clip.bin.model_card --exp_dir "${exp_dir}/${tag}" --tag "${tag}" \
            --corpus "${corpus_name}" --results RESULTS.md --world_dir "${world_dir}" --license "${model_license}" \
            --model_ref "${exp_dir}/${tag}/packed_model.zip" "${card_opts[@]}"
        options=(--option "${exp_dir}/${tag}/README.md")
        [ -f RESULTS.md ] && options+=(--option RESULTS.md)
        # the local files the query encoder needs (a CLIP trained here, a label vocabulary, ...)
        while read -r file; do options+=(--option "${file}"); done < <(${python} -c "import os, sys, yaml; \
conf = yaml.safe_load(open(sys.argv[1])).get('query_encoder_conf') or {}; \
[print(v) for v in conf.values() if isinstance(v, str) and os.path.isfile(v)]" "${exp_dir}/${tag}/config.yaml")
        ${python} -m espnet2.bin.pack enh --train_config "${exp_dir}/${tag}/config.yaml" \
            --model_file "${exp_dir}/${tag}/${inference_model}" "${options[@]}" \
            --outpath "${exp_dir}/${tag}/.packed_model.tmp.zip"  # moved into place whole: a killed pack is never uploaded
        mv -f "${exp_dir}/${tag}/.packed_model.tmp.zip" "${exp_dir}/${tag}/packed_model.zip"
    done
fi
if [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ] && [ "${skip_upload_hf}" = false ]; then
    [ -n "${hf_repo}" ] || { log "error: stage 12 needs --hf_repo user/name"; exit 1; }
    n_models=$(echo ${train_configs} | wc -w)
    for config in ${train_configs}; do
        tag=$(model_tag "${config}")
        repo=${hf_repo}
        if [ "${n_models}" -gt 1 ]; then repo=${hf_repo}_${tag}; fi
        log "Stage 12: upload ${exp_dir}/${tag}/packed_model.zip with its model card to https://huggingface.co/${repo}"
        # the packed card (stage 11); --corpus/--results/--world_dir only serve zips packed without one
        ${python} -m espnet2_clip.bin.upload_hf --packed_model "${exp_dir}/${tag}/packed_model.zip" --hf_repo "${repo}" \
            --tag "${tag}" --corpus "${corpus_name}" --results RESULTS.md --world_dir "${world_dir}" \
            --work_dir "${exp_dir}/${tag}/hf_upload"
    done
fi

if [ ${stage} -le 13 ] && [ ${stop_stage} -ge 13 ] && [ "${demo_examples}" -gt 0 ]; then
    tags=""
    for config in ${train_configs}; do tags="${tags} $(model_tag "${config}")"; done
    log "Stage 13: demo page (${demo_examples} mixtures per test set) -> ${exp_dir}/demo/index.html"
    ${python} -m espnet2_clip.bin.demo_page separation --exp_dir "${exp_dir}" --dump_dir "${dump_dir}" \
        --tags "${tags}" --test_sets "${test_sets}" --num_examples "${demo_examples}" --title "${results_title}" \
        --output_dir "${exp_dir}/demo" > /dev/null
fi
log "Successfully finished."
exit
}
