#!/usr/bin/env bash
# CLIPSonic recipe template: text-to-audio learned from unlabeled videos (CLIP-conditioned mel
# diffusion). Corpus recipes (egs2/<corpus>/clipsonic1/run.sh) call this with their options.
#
# Stages:
#   1  data: CLIPSep's data stages --data_stage..6 (TEMPLATE/clipsep1/clipsep.sh: make/fetch the world or corpus,
#      validate, extract 16 kHz audio + 1 fps frames, [train a small CLIP], CLIP embeddings of frames
#      and label texts, format the test set) into the same data/dump layout
#   2  generation queries: one text query per class x --gen_per_class (ids <kkk>_<ii>), image queries
#      of the test set, and their classes (test_mix/label, else test_mix/text where it names a training
#      class; features need no statistics: fixed normalisation)
#   3  evaluation classifier (small CNN on log-mels) on the training audio + labels, and the
#      real-audio reference row (held-out clips)                         (--eval_classifier true)
#   4  HiFi-GAN vocoder on the same mel configuration (espnet2 GANTrainer)  (--vocoder_config)
#   5  diffusion prior on the captioned images' CLIP (text, image) embedding pairs  (--prior_config);
#      or none: PD with a published prior (--pretrained_prior laion)
#   6  diffusion models (ESPnet trainer): --image_config -> the model of CLIP image embeddings of frames
#      (IQ; ZS / PD at inference); --text_config -> SD (CLIP text embeddings of the labels); --train_nj at once
#   7  generation for every variant (IQ: test image queries; ZS: text fed directly; PD: text
#      through the prior; SD) and every guidance scale of --guidance_scales (all scales in one pass;
#      the query list split over --inference_nj jobs, merged into exp/<tag>/gen_<variant>_w<w>/wav.scp)
#   8  evaluation: relevance (classifier accuracy), FD in its embedding space; FAD with VGGish
#      (--fad_model, every variant) and CLAP score (--clap_model: text variants against their query,
#      IQ against its test item's label text), downloaded by name or read from local paths
#   9  RESULTS.md (variant table, guidance sweep table and plot)
#   10 model card exp/<tag>/README.md (espnet2_clip.bin.model_card), then pack every diffusion model with it and
#      its CLIP / prior / vocoder (loadable by TextToAudio.from_pretrained; `espnet2-clip info` prints the card)
#   11 demo page ${exp_dir}/demo/index.html: --demo_examples prompts, each with the clips of every variant at
#      --main_guidance (audio players, spectrograms; from the generations, no model is run)
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail

template_dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
. "${template_dir}/../scripts/log.sh"

# General
stage=1
stop_stage=100
nj=2
ngpu=0
gpu_inference=false   # true: every network of the inference stages (CLIP, prior, generation, vocoder,
                      # evaluation classifier / CLAP, benchmark) runs on the GPU (cuda)
num_nodes=1
train_cmd=""
python=python3
world_dir=world
data_dir=data
dump_dir=dump
exp_dir=exp
local_data_args=""
data_stage=1          # stage 1 runs CLIPSep's data stages data_stage..6 (2: ${world_dir} is your own world, no local/data.sh)

# CLIP (query encoder; stage 1 = CLIPSep's data stages)
train_clip=false
clip_train_args=""
clip_model=ViT-B-32
clip_pretrained=openai
frame_size=224

# Models
vocoder_config=""      # stage 4 (empty: no vocoder; generation uses Griffin-Lim)
vocoder_args=""
prior_config=""        # stage 5: train a prior on captioned images (empty: none)
prior_args=""
pretrained_prior=""    # PD with a published prior instead: laion (the LAION DALL-E 2 prior, Hugging Face
                       # laion/DALLE2-PyTorch; needs the OpenAI ViT-L-14 CLIP), hf-hub:<repo>, or a local
                       # directory / prior_config.json in its layout (offline copies)
image_config=""        # stage 6: config of the model trained on CLIP IMAGE embeddings of frames (IQ; ZS/PD at inference)
text_config=""         # stage 6: config of the model trained on CLIP TEXT embeddings of the labels (SD reference)
                       # (one exp/<tag> each, tag = config file name minus train_; empty: not trained)
train_args=""
train_nj=1             # stage 6: models trained at once (unless OMP_NUM_THREADS is set, each on nproc / train_nj threads)
gen_vocoder=hifigan    # hifigan (the stage-4 vocoder, if trained) | griffin_lim
gen_per_class=4        # text queries per class (different seeds)
gen_images_per_class=0 # image queries per class from the test set (0: all)
guidance_scales="1 2 3 5"
main_guidance=3        # the w of the variant table
gen_steps=25           # DDIM steps
gen_batch_size=8       # queries per batch (x the guidance scales: all are sampled together)
inference_nj=1         # parallel jobs of generation (stage 7), each on a part of the query list
inference_cmd=""       # job runner of those jobs (default: our scripts/run_local.sh; a cluster's slurm.pl / queue.pl)
variants="IQ ZS PD SD" # variants to generate (those the trained models allow)

# Evaluation
eval_classifier=true   # stage 3: train the evaluation classifier on ${dump_dir}/train (needs labels)
classifier_args=""
fad_model=""           # FAD (VGGish embeddings, every variant and guidance scale; empty: no FAD): vggish = the
                       # published torchvggish weights (vggish-10086976.pth), downloaded once by torch.hub into
                       # $TORCH_HOME/hub/checkpoints (default ~/.cache/torch); offline: a local copy of that .pth
clap_model=""          # CLAP score (empty: none): a Hugging Face id (laion/clap-htsat-unfused), downloaded once into
                       # the Hugging Face cache ($HF_HOME/hub, default ~/.cache/huggingface; HF_HUB_OFFLINE=1 reads
                       # it offline), a local save_pretrained directory, or a LAION-CLAP .pt (pip install laion-clap)
benchmark_samples=65535  # stage 9: time one generated clip of this length (0: skip)
results_title="CLIPSonic"
demo_examples=4        # stage 11: prompts (classes) on ${exp_dir}/demo/index.html (0: no page)

# Model card (stage 10)
corpus_name=""         # corpus named in the model card (default: the recipe's parent dir)
model_license=cc-by-4.0  # licence of the model weights stated in the model card (Hub identifier)

_option_names="stage stop_stage nj ngpu gpu_inference inference_nj inference_cmd num_nodes train_cmd python world_dir data_dir dump_dir exp_dir
local_data_args data_stage train_clip clip_train_args clip_model clip_pretrained frame_size vocoder_config vocoder_args
prior_config prior_args pretrained_prior image_config text_config train_args train_nj gen_vocoder gen_per_class gen_images_per_class guidance_scales main_guidance
gen_steps gen_batch_size variants eval_classifier classifier_args fad_model clap_model benchmark_samples results_title
corpus_name model_license demo_examples"
. "${template_dir}/../scripts/parse_options.sh"
. "${template_dir}/../scripts/template_common.sh"  # run, train_cmd, CLIP paths, config_value, model_tag, launch_training
models() {  # "TRAIN_QUERY CONFIG" lines
    [ -z "${image_config}" ] || echo "image ${image_config}"
    [ -z "${text_config}" ] || echo "text ${text_config}"
    return 0
}
has_variant() { case " ${variants} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log "models: $(models | while read -r _ config; do model_tag "${config}"; done | xargs) (stage 6: ${train_nj} at once)"
[ -n "${corpus_name}" ] || corpus_name=$(basename "$(dirname "$(pwd)")")  # egs2/<corpus>/clipsonic1
gen=${dump_dir}/gen
voc_dir=${exp_dir}/vocoder
voc_file=${voc_dir}/valid.generator_mel_loss.best.pth
prior_dir=${exp_dir}/prior
if [ -n "${pretrained_prior}" ]; then
    if [ -n "${prior_config}" ]; then
        log "error: give --prior_config (train a prior) or --pretrained_prior (use a published one), not both"; exit 1
    fi
    case "${pretrained_prior}" in
        laion|hf-hub:*) ;;
        *) [ -d "${pretrained_prior}" ] && [ -f "${pretrained_prior}/prior/prior_config.json" ] && pretrained_prior=${pretrained_prior}/prior
           [ -d "${pretrained_prior}" ] && pretrained_prior=${pretrained_prior}/prior_config.json
           [ -f "${pretrained_prior}" ] || { log "error: --pretrained_prior ${pretrained_prior}: no prior_config.json there"; exit 1; }
           [ -f "$(dirname "${pretrained_prior}")/best.pth" ] || {
               log "error: --pretrained_prior: no best.pth next to ${pretrained_prior}"; exit 1; }
           # recorded and packed as ${exp_dir}/pretrained_prior/* like the trained ${exp_dir}/prior (hard links
           # where the file system allows, else copies: the packer stores a symlink by its target's path)
           mkdir -p "${exp_dir}/pretrained_prior"
           for f in prior_config.json best.pth; do
               src=$(dirname "${pretrained_prior}")/${f} dst=${exp_dir}/pretrained_prior/${f}
               if [ ! "${src}" -ef "${dst}" ] && ! cmp -s "${src}" "${dst}"; then
                   ln -f "${src}" "${dst}" 2>/dev/null || { cp "${src}" "${dst}.tmp" && mv "${dst}.tmp" "${dst}"; }
               fi
           done
           pretrained_prior=${exp_dir}/pretrained_prior/prior_config.json ;;
    esac
fi
# The prior options of PD ("": no PD): the published prior, or the one stage 5 trained.
prior_opts() {
    if [ -n "${pretrained_prior}" ]; then
        echo "--prior_config ${pretrained_prior}"
    elif [ -f "${prior_dir}/prior.pth" ]; then
        echo "--prior_config ${prior_dir}/config.yaml --prior_file ${prior_dir}/prior.pth"
    fi
}

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    case "${data_stage}" in
        [1-6]) ;;
        *) log "error: --data_stage must be one of CLIPSep's data stages 1-6, got '${data_stage}'"; exit 1 ;;
    esac
    log "Stage 1: data (CLIPSep's data stages ${data_stage}-6)"
    "${template_dir}/../clipsep1/clipsep.sh" --stage "${data_stage}" --stop_stage 6 --nj "${nj}" --python "${python}" \
        --gpu_inference "${gpu_inference}" --inference_nj "${inference_nj}" --inference_cmd "${inference_cmd}" \
        --world_dir "${world_dir}" --data_dir "${data_dir}" --dump_dir "${dump_dir}" --exp_dir "${exp_dir}" \
        --local_data_args "${local_data_args}" --train_clip "${train_clip}" --clip_train_args "${clip_train_args}" \
        --clip_model "${clip_model}" --clip_pretrained "${clip_pretrained}" --frame_size "${frame_size}"
    if [ -n "${text_config}" ]; then  # SD: the labels' text embeddings, with the encoder its config names
        for set in train valid; do
            [ -f "${dump_dir}/${set}/label" ] || { log "error: ${dump_dir}/${set}/label is missing (--text_config needs labels)"; exit 1; }
            embed_label_text "${text_config}" "${set}"
        done
    fi
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: generation queries in ${gen}"
    [ -f "${dump_dir}/train/label" ] || {
        log "error: ${dump_dir}/train/label is missing: the text queries are the training labels, which stage 1 copies"
        log "from ${world_dir}/data/train/label (run stage 1 first; your own world: --world_dir DIR --data_stage 2)"
        exit 1
    }
    mkdir -p "${gen}/text" "${gen}/image"
    # classes: the training labels (sorted); text query ids <class index>_<i>
    cut -d' ' -f2- "${dump_dir}/train/label" | sort -u > "${gen}/classes"
    awk -v n="${gen_per_class}" '{ for (i = 0; i < n; i++) printf "%03d_%02d %s\n", NR - 1, i, $0 }' \
        "${gen}/classes" > "${gen}/text/text"
    cp "${gen}/text/text" "${gen}/text/label"
    # the class of each test image: its label, else its text query when that names a training class
    image_classes=${dump_dir}/test_mix/label
    [ -f "${image_classes}" ] || image_classes=${dump_dir}/test_mix/text
    if [ -f "${dump_dir}/test_mix/query_image.scp" ] && [ -f "${image_classes}" ]; then
        # the first --gen_images_per_class test images of each class (in id order)
        awk 'NR == FNR { known[$0] = 1; next } (substr($0, index($0, " ") + 1) in known)' \
            "${gen}/classes" "${image_classes}" | sort | awk -v n="${gen_images_per_class}" \
            '{ k = substr($0, index($0, " ") + 1); c[k]++; if (n == 0 || c[k] <= n) print }' \
            > "${gen}/image/label"
        log "image queries: classes from ${image_classes} ($(wc -l < "${gen}/image/label") of $(wc -l < "${image_classes}") test items name a training class)"
        awk 'NR == FNR { keep[$1] = 1; next } ($1 in keep)' "${gen}/image/label" "${dump_dir}/test_mix/query_image.scp" \
            > "${gen}/image/query_image.scp"
    fi
    # real reference clips for FD/FAD: the clean test targets
    cp "${dump_dir}/test_mix/spk1.scp" "${gen}/reference.scp"
    log "$(wc -l < "${gen}/classes") classes, $(wc -l < "${gen}/text/text") text queries, $(cat "${gen}/image/label" 2>/dev/null | wc -l) image queries"
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ "${eval_classifier}" = true ]; then
    log "Stage 3: evaluation classifier -> ${exp_dir}/classifier"
    "${run[@]}" "${exp_dir}/classifier/train.log" ${python} -m espnet2_clip.bin.classifier_train \
        --train_scp "${dump_dir}/train/wav.scp" --train_label "${dump_dir}/train/label" \
        --valid_scp "${dump_dir}/valid/wav.scp" --valid_label "${dump_dir}/valid/label" \
        --class_names "${gen}/classes" --output_dir "${exp_dir}/classifier" ${classifier_args}
    real_opts=()  # the real-audio row: FAD / CLAP (against the label text) too
    [ -n "${fad_model}" ] && real_opts+=(--fad_model "${fad_model}")
    [ -n "${clap_model}" ] && real_opts+=(--clap_model "${clap_model}" --query_text "${dump_dir}/valid/label")
    "${run[@]}" "${exp_dir}/classifier/real/score.log" ${python} -m espnet2_clip.bin.clipsonic_eval score \
        --gen_scp "${dump_dir}/valid/wav.scp" --gen_label "${dump_dir}/valid/label" \
        --classifier_dir "${exp_dir}/classifier" --ref_scp "${gen}/reference.scp" \
        --ref_cache_dir "${gen}/reference_embeddings" "${real_opts[@]}" \
        --output_dir "${exp_dir}/classifier/real" --name "real held-out audio" --device "${inference_device}"
    log "$(grep -h "relevance" "${exp_dir}/classifier/real/score.log" | tail -n 1 | sed 's/.*INFO: //')"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ -n "${vocoder_config}" ]; then
    log "Stage 4: HiFi-GAN vocoder (${vocoder_config}) -> ${voc_dir}"
    launch_training "${voc_dir}/train.log" "${voc_dir}" espnet2_clip.bin.vocoder_train --config "${vocoder_config}" \
        --train_data_path_and_name_and_type "${dump_dir}/train/wav.scp,speech,sound" \
        --train_shape_file "${dump_dir}/train/wav.scp" \
        --valid_data_path_and_name_and_type "${dump_dir}/valid/wav.scp,speech,sound" \
        --valid_shape_file "${dump_dir}/valid/wav.scp" ${vocoder_args}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ] && [ -n "${pretrained_prior}" ]; then
    log "Stage 5: no prior to train: PD uses the published prior ${pretrained_prior}"
fi
if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ] && [ -n "${prior_config}" ]; then
    if [ -f "${data_dir}/clip_train/caption" ]; then
        log "Stage 5: diffusion prior on ${data_dir}/clip_train (CLIP: ${clip_model}) -> ${prior_dir}"
        "${run[@]}" "${prior_dir}/train.log" ${python} -m espnet2_clip.bin.prior_train --config "${prior_config}" \
            --image_scp "${data_dir}/clip_train/image.scp" --caption "${data_dir}/clip_train/caption" \
            --query_encoder clip --query_encoder_conf "{model_name: ${clip_model}, pretrained: ${clip_pretrained}}" \
            --output_dir "${prior_dir}" ${prior_args}
    else
        log "Stage 5: skipped (no captioned images in ${data_dir}/clip_train; PD needs a prior)"
    fi
fi

train_model() {  # train_model "TRAIN_QUERY CONFIG": stage 6 for one model
    local train_query config tag qscp data_opts mode extra popts
    read -r train_query config <<< "$1"
    tag=$(model_tag "${config}")
    qscp=query_image.scp
    [ "${train_query}" = image ] || qscp=query_text_${tag}.scp  # stage 1's label-text embeddings
    log "Stage 6: train ${tag} (${config}, conditioned on CLIP ${train_query} embeddings) -> ${exp_dir}/${tag}"
    data_opts=()
    for mode in train valid; do
        # wav.scp as ESPnet's "text" type: the preprocessor gets each path and reads only the crop
        data_opts+=(--${mode}_data_path_and_name_and_type "${dump_dir}/${mode}/wav.scp,speech,text"
                    --${mode}_data_path_and_name_and_type "${dump_dir}/${mode}/${qscp},query,npy"
                    --${mode}_shape_file "${dump_dir}/${mode}/wav.scp")
    done
    extra=(--query_encoder_conf "{model_name: ${clip_model}, pretrained: ${clip_pretrained}}")
    # recorded in config.yaml (used by TextToAudio and packed with the model)
    if [ "${gen_vocoder}" = hifigan ] && [ -f "${voc_file}" ]; then
        extra+=(--vocoder_config "${voc_dir}/config.yaml" --vocoder_file "${voc_file}")
    fi
    if [ "${train_query}" = image ]; then
        read -r -a popts <<< "$(prior_opts)"
        extra+=("${popts[@]}")
    fi
    launch_training "${exp_dir}/${tag}/train.log" "${exp_dir}/${tag}" espnet2_clip.bin.clipsonic_train \
        --config "${config}" "${data_opts[@]}" "${extra[@]}" ${train_args} < /dev/null
}
if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    mapfile -t model_lines < <(models)
    [ ${#model_lines[@]} -eq 0 ] || run_at_once "${train_nj}" train_model "${model_lines[@]}"
fi

# The variants a model generates: "VARIANT option value [option]" lines.
model_variants() {  # model_variants TRAIN_QUERY
    if [ "$1" = image ]; then
        has_variant IQ && [ -f "${gen}/image/query_image.scp" ] && echo "IQ --query_image ${gen}/image/query_image.scp"
        has_variant ZS && echo "ZS --query_text ${gen}/text/text --no_prior"
        has_variant PD && [ -n "$(prior_opts)" ] && echo "PD --query_text ${gen}/text/text $(prior_opts)"
    else
        has_variant SD && echo "SD --query_text ${gen}/text/text --no_prior"
    fi
    return 0
}
label_of() { if [ "$1" = IQ ]; then echo "${gen}/image/label"; else echo "${gen}/text/label"; fi; }
gen_dir() { echo "${exp_dir}/$1/gen_$(echo "$2" | tr 'A-Z' 'a-z')_w$3"; }  # gen_dir TAG VARIANT W

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    voc_opts=()
    if [ "${gen_vocoder}" = hifigan ] && [ -f "${voc_file}" ]; then
        voc_opts=(--vocoder_config "${voc_dir}/config.yaml" --vocoder_file "${voc_file}")
    fi
    while read -r train_query config; do
        tag=$(model_tag "${config}")
        model_file=${exp_dir}/${tag}/valid.loss.best.pth
        while read -r variant query_opts; do
            # every guidance scale in one pass (same noise and prior sample per query), the query list in
            # --inference_nj parts; the jobs write gen_<variant>_w<w>/logdir/output.JOB, merged into wav.scp
            read -r -a opts <<< "${query_opts}"
            split_dir=${exp_dir}/${tag}/logdir/gen_$(echo "${variant}" | tr 'A-Z' 'a-z')
            jobs=$(split_list "${opts[1]}" "${inference_nj}" "${split_dir}")
            log "Stage 7: ${tag} ${variant} w = ${guidance_scales} (${jobs} jobs) -> $(gen_dir "${tag}" "${variant}" "{${guidance_scales// /,}}")"
            "${inference_run[@]}" JOB=1:"${jobs}" "${split_dir}/generate.JOB.log" ${python} -m espnet2_clip.bin.clipsonic_inference \
                --train_config "${exp_dir}/${tag}/config.yaml" --model_file "${model_file}" ${query_opts} \
                --key_file "${split_dir}/keys.JOB" "${voc_opts[@]}" --guidance_scale ${guidance_scales} \
                --num_steps "${gen_steps}" --batch_size "${gen_batch_size}" --device "${inference_device}" \
                --output_dir "$(gen_dir "${tag}" "${variant}" "{w}")/logdir/output.JOB" < /dev/null
            for w in ${guidance_scales}; do
                out=$(gen_dir "${tag}" "${variant}" "${w}")
                merge_scps "${out}/wav.scp" $(seq -f "${out}/logdir/output.%g/wav.scp" "${jobs}")
            done
        done < <(model_variants "${train_query}")
    done < <(models)
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    eval_opts=()
    [ "${eval_classifier}" = true ] && eval_opts+=(--classifier_dir "${exp_dir}/classifier")
    [ -n "${fad_model}" ] && eval_opts+=(--fad_model "${fad_model}")
    while read -r train_query config; do
        tag=$(model_tag "${config}")
        while read -r variant _; do
            clap_opts=()  # the class text each clip was generated for (IQ: its test item's label)
            [ -n "${clap_model}" ] && clap_opts=(--clap_model "${clap_model}" --query_text "$(label_of "${variant}")")
            for w in ${guidance_scales}; do
                out=$(gen_dir "${tag}" "${variant}" "${w}")
                "${run[@]}" "${out}/scoring.log" ${python} -m espnet2_clip.bin.clipsonic_eval score \
                    --gen_scp "${out}/wav.scp" --gen_label "$(label_of "${variant}")" --ref_scp "${gen}/reference.scp" \
                    --ref_cache_dir "${gen}/reference_embeddings" \
                    "${eval_opts[@]}" "${clap_opts[@]}" --device "${inference_device}" --output_dir "${out}/scoring" \
                    --name "${tag} ${variant} w=${w}" \
                    --meta "system=${tag}" "variant=${variant}" "guidance_scale=${w}" < /dev/null
                log "Stage 8: $(grep -h "n=" "${out}/scoring.log" | tail -n 1 | sed 's/.*INFO: //')"
            done
        done < <(model_variants "${train_query}")
    done < <(models)
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    log "Stage 9: RESULTS.md"
    notes=()
    [ "${train_clip}" = true ] && [ -f "${exp_dir}/clip/train_info.json" ] && \
        notes+=(--note "query encoder: small CLIP trained here on captioned images only: $(${python} -c \
        "import json,sys; d=json.load(open(sys.argv[1])); print({k: d[k] for k in d if 'acc' in k or k in ('steps', 'seconds')})" \
        "${exp_dir}/clip/train_info.json")")
    [ -f "${exp_dir}/classifier/train_info.json" ] && notes+=(--note "evaluation classifier (trained on the \
training videos' audio + labels): $(${python} -c "import json,sys; d=json.load(open(sys.argv[1])); \
print({k: d[k] for k in ('valid_accuracy', 'n_train', 'n_params', 'train_seconds') if k in d})" \
        "${exp_dir}/classifier/train_info.json"); FD reference: the clean test targets (${gen}/reference.scp)")
    vocoder_note="Griffin-Lim"
    [ "${gen_vocoder}" = hifigan ] && [ -f "${voc_file}" ] && vocoder_note="HiFi-GAN (${voc_dir})"
    notes+=(--note "generation: ${gen_steps} DDIM steps, vocoder ${vocoder_note}, ${gen_per_class} text queries per class \
(text = the label; prompt template of the model config), image queries = $(wc -l < "${gen}/image/label" 2>/dev/null || echo 0) \
of the test set's query images; CLIP: ${clip_model}")
    if [ "${benchmark_samples}" -gt 0 ]; then  # generation speed of the first model, text query of the first class
        read -r _ config < <(models)
        tag=$(model_tag "${config}")
        "${run[@]}" "${exp_dir}/${tag}/benchmark.log" ${python} -m espnet2_clip.bin.clipsonic_benchmark \
            --train_config "${exp_dir}/${tag}/config.yaml" --model_file "${exp_dir}/${tag}/valid.loss.best.pth" \
            --query "$(head -n 1 "${gen}/classes")" --num_samples "${benchmark_samples}" --num_steps "${gen_steps}" \
            --guidance_scale "${main_guidance}" --threads "${nj}" --device "${inference_device}" \
            --output "${exp_dir}/${tag}/benchmark.json" < /dev/null
        notes+=(--note "generation speed (${tag}): $(${python} -c "import json, sys; d = json.load(open(sys.argv[1])); \
print(f\"one {d['audio_seconds']} s clip ({d['variant']}, {d['num_steps']} steps, w = {d['guidance_scale']}, {d['vocoder']}) \
in {d['seconds_total']} s on {d['hardware']} (RTF {d['rtf']}; sampling {d['seconds_mel_sampling']} s, \
vocoder {d['seconds_vocoder']} s)\")" "${exp_dir}/${tag}/benchmark.json")")
    fi
    real=()
    [ -f "${exp_dir}/classifier/real/result.json" ] && real=(--real_result "${exp_dir}/classifier/real/result.json")
    mkdir -p images
    ${python} -m espnet2_clip.bin.clipsonic_eval report --exp_dir "${exp_dir}" --output RESULTS.md \
        --plot images/guidance_sweep.png --main_guidance "${main_guidance}" --title "${results_title}" \
        "${real[@]}" "${notes[@]}" > /dev/null
    log "wrote $(pwd)/RESULTS.md"
    sed -n '/^| System/,/^$/p' RESULTS.md
fi

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ]; then
    while read -r train_query config; do
        tag=$(model_tag "${config}")
        log "Stage 10: model card ${exp_dir}/${tag}/README.md; pack ${exp_dir}/${tag} -> ${exp_dir}/${tag}/packed_model.zip"
        # the card: task, training data and missing videos, CLIP, this model's variant rows of RESULTS.md
        # ("not scored" without them), licence, how to run it
        card_opts=()
        [ -f "${dump_dir}/train/wav.scp" ] && card_opts+=(--train_scp "${dump_dir}/train/wav.scp")
        ${python} -m espnet2_clip.bin.model_card --exp_dir "${exp_dir}/${tag}" --tag "${tag}" \
            --train_query "${train_query}" --corpus "${corpus_name}" --results RESULTS.md --world_dir "${world_dir}" \
            --license "${model_license}" --model_ref "${exp_dir}/${tag}/packed_model.zip" "${card_opts[@]}" < /dev/null
        options=(--option "${exp_dir}/${tag}/README.md")
        [ -f RESULTS.md ] && options+=(--option RESULTS.md)
        [ "${train_clip}" = true ] && options+=(--option "${clip_model}" --option "${clip_pretrained}")
        for key in vocoder_config vocoder_file prior_config prior_file; do
            value=$(config_value "${exp_dir}/${tag}/config.yaml" "${key}" None < /dev/null)
            case "${value}" in None|laion|hf-hub:*) continue ;; esac  # a hub prior is fetched on first use
            options+=(--option "${value}")
            case "${value}" in *.json) options+=(--option "$(dirname "${value}")/best.pth") ;; esac  # a local LAION prior
        done
        ${python} -m espnet2.bin.pack tts --train_config "${exp_dir}/${tag}/config.yaml" \
            --model_file "${exp_dir}/${tag}/valid.loss.best.pth" "${options[@]}" \
            --outpath "${exp_dir}/${tag}/.packed_model.tmp.zip" < /dev/null  # moved into place whole
        mv -f "${exp_dir}/${tag}/.packed_model.tmp.zip" "${exp_dir}/${tag}/packed_model.zip"
    done < <(models)
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ] && [ "${demo_examples}" -gt 0 ]; then
    tags=""
    while read -r _ config; do tags="${tags} $(model_tag "${config}")"; done < <(models)
    log "Stage 11: demo page (${demo_examples} prompts, w = ${main_guidance}) -> ${exp_dir}/demo/index.html"
    ${python} -m espnet2_clip.bin.demo_page generation --exp_dir "${exp_dir}" --gen_dir "${gen}" --tags "${tags}" \
        --guidance "${main_guidance}" --num_examples "${demo_examples}" --title "${results_title}" \
        --output_dir "${exp_dir}/demo" > /dev/null < /dev/null
fi
log "Successfully finished."
exit
}
