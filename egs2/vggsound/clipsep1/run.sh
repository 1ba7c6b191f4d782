#!/usr/bin/env bash
# CLIPSep on VGGSound (the paper's main experiment): train on the VGGSound training videos with CLIP
# image queries (no labels), test on VGGSound-Clean+ with text queries. See README.md.
#
#   ./run.sh --stage 1 --ngpu 1                        # everything (needs internet for stage 1)
#   ./run.sh --stage 1 --stop_stage 1 --cookies cookies.txt --download_nj 2   # downloads only
#   ./run.sh --stage 7 --ngpu 4 --models "clipsep_nit"  # train one model on 4 GPUs
#   ./run.sh --skip_upload_hf false --hf_repo user/clipsep_vggsound --stage 12  # share on the Hub
set -euo pipefail
. ./path.sh

models="clipsep clipsep_nit clipsep_text bertsep labelsep pit"   # conf/train_<model>.yaml each
bert_model=bert-base-uncased  # BERTSep's text encoder (must match conf/train_bertsep.yaml)
# stage 1 (local/data.sh) options
lists_dir=""          # offline: a CLIPSep checkout or a dir of the official lists; else fetched
cookies=""            # yt-dlp cookies.txt (YouTube now often asks to sign in)
cookies_from_browser=""
download_nj=4         # parallel downloads
limit_rate=""         # e.g. 2M
sleep_interval=0      # seconds between two downloads of a worker
max_train_clips=0     # random subset of the ~180k training clips (0: all)
max_valid_clips=0     # random subset of the 7,271 validation clips (0: all)
data_args=""          # any other local/data.sh options

# Parse only our own options here; the rest go to clipsep.sh.
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --models|--bert_model|--lists_dir|--cookies|--cookies_from_browser|--download_nj|--limit_rate|\
--sleep_interval|--max_train_clips|--max_valid_clips|--data_args)
            [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 1; }
            name=${1#--}; printf -v "${name}" '%s' "$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

data_opts="--nj ${download_nj} --sleep_interval ${sleep_interval} --max_train_clips ${max_train_clips}"
data_opts+=" --max_valid_clips ${max_valid_clips}"
[ -z "${lists_dir}" ] || data_opts+=" --lists_dir ${lists_dir}"
[ -z "${cookies}" ] || data_opts+=" --cookies ${cookies}"
[ -z "${cookies_from_browser}" ] || data_opts+=" --cookies_from_browser ${cookies_from_browser}"
[ -z "${limit_rate}" ] || data_opts+=" --limit_rate ${limit_rate}"
configs=""
bert_opts=()
for m in ${models}; do
    configs+=" conf/train_${m}.yaml"
    [ "${m}" != bertsep ] || bert_opts=(--bert_model "${bert_model}")
done

./clipsep.sh \
    --world_dir world --data_dir data --dump_dir dump --exp_dir exp \
    --local_data_args "${data_opts} ${data_args}" \
    --train_clip false --clip_model ViT-B-32 --clip_pretrained openai --frame_size 224 \
    --train_configs "${configs# }" "${bert_opts[@]}" \
    --text_prompt ensemble --score_backend museval --corpus_name VGGSound \
    --results_title "CLIPSep recipe on VGGSound-Clean+" \
    "${args[@]}"
