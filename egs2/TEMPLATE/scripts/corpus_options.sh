#!/usr/bin/env bash
# Sourced by the YouTube corpus recipes' run.sh (music, vggsound) after they set their own defaults:
#   own_options="models"   # the recipe's own options, parsed here as well
#   . scripts/corpus_options.sh       # parses "$@" of run.sh
# Sets ${data_opts} (the stage-1 options of local/data.sh) and leaves every other option in ${args[@]}
# for the template script (clipsep.sh / clipsonic.sh).

cookies=""            # yt-dlp cookies.txt (YouTube now often asks to sign in)
cookies_from_browser=""  # or read the cookies from a browser, e.g. firefox
download_nj=4         # parallel downloads
limit_rate=""         # yt-dlp --limit-rate, e.g. 2M
sleep_interval=0      # seconds between two downloads of a worker
lists_dir=""          # offline: a CLIPSep checkout or a dir of the official lists; else fetched
max_train_clips=0     # random subset of the training clips (0: all)
max_valid_clips=0     # random subset of the validation clips (0: all)
data_args=""          # any other local/data.sh options

_corpus_names=" cookies cookies_from_browser download_nj limit_rate sleep_interval lists_dir max_train_clips \
max_valid_clips data_args ${own_options:-} "
args=()
while [ $# -gt 0 ]; do
    _name=${1#--}
    if [ "${1:0:2}" = "--" ] && [[ "${_corpus_names}" == *" ${_name} "* ]]; then
        [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 1; }
        printf -v "${_name}" '%s' "$2"
        shift 2
    else
        args+=("$1")
        shift
    fi
done

data_opts="--nj ${download_nj} --sleep_interval ${sleep_interval} --max_train_clips ${max_train_clips}"
data_opts+=" --max_valid_clips ${max_valid_clips}"
[ -z "${lists_dir}" ] || data_opts+=" --lists_dir ${lists_dir}"
[ -z "${cookies}" ] || data_opts+=" --cookies ${cookies}"
[ -z "${cookies_from_browser}" ] || data_opts+=" --cookies_from_browser ${cookies_from_browser}"
[ -z "${limit_rate}" ] || data_opts+=" --limit_rate ${limit_rate}"
data_opts+=" ${data_args}"
