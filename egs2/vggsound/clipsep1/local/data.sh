#!/usr/bin/env bash
# Stage 1 of the MUSIC and VGGSound recipes: fetch the official CLIPSep lists, download the videos
# with yt-dlp, and build the world layout in ${world_dir}:
#   data/train/{video.scp,label}  data/valid/{video.scp,label}
#   data/test_mix/{wav.scp,spk1.scp,spk2.scp,text,label,query_image.scp}  (MUSIC+ / VGGSound-Clean+)
#   data/test_music_plus/...  (--corpus vggsound: MUSIC+ too, since the paper scores its VGGSound-trained
#                              models on both test sets)
# plus lists/ (the official lists), download/{train,valid,test}/ (videos, video.scp, missing,
# download_report.json), test_av/ (test clips: 16 kHz wav + frames), pairs.csv, lists_report.json.
# Every step can be rerun: finished downloads, extractions and lists are kept; files are written
# atomically, so a killed run leaves no half-written output.
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
. scripts/log.sh

corpus=vggsound       # vggsound | music
world_dir=world
lists_dir=""          # dir with the official lists (a CLIPSep checkout or flat names); else fetched
lists_url=https://raw.githubusercontent.com/sony/CLIPSep/main   # where the lists are fetched from
music_train=list      # MUSIC train videos: list (official train.csv minus val/test) | json (all others)
max_train_clips=0     # random subset of the training clips (0: all)
max_valid_clips=0     # random subset of the validation clips (0: all)
sets="test valid train"  # what to download (test first: it is small and fixes the scores)
nj=4                  # parallel downloads
extract_nj=2          # parallel ffmpeg jobs for the test clips
cookies=""            # Netscape cookies.txt for yt-dlp (YouTube asks for sign-in)
cookies_from_browser=""  # e.g. firefox
limit_rate=""         # yt-dlp --limit-rate, e.g. 2M
sleep_interval=0      # pause (s) between two yt-dlp calls of a worker
download_args=""      # extra options of espnet2_clip.bin.download_youtube
frame_size=224        # test frames (training frames are extracted at stage 3)
python=python3
_option_names="corpus world_dir lists_dir lists_url music_train max_train_clips max_valid_clips sets nj extract_nj
cookies cookies_from_browser limit_rate sleep_interval download_args frame_size python"
. scripts/parse_options.sh

local_dir=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
mkdir -p "${world_dir}/lists"

# fetch_list REPO_PATH FLAT_NAME: ${lists_dir}/REPO_PATH, ${lists_dir}/FLAT_NAME, or the official repo.
fetch_list() {
    local repo_path=$1 name=$2 dst=${world_dir}/lists/$2
    if [ -n "${lists_dir}" ]; then
        local f
        for f in "${lists_dir}/${repo_path}" "${lists_dir}/${name}"; do
            if [ -f "${f}" ]; then
                cp "${f}" "${dst}.tmp" && mv "${dst}.tmp" "${dst}"
                return 0
            fi
        done
        log "error: --lists_dir ${lists_dir} has neither ${repo_path} nor ${name}"
        return 1
    fi
    if [ -s "${dst}" ]; then return 0; fi  # fetched by an earlier run
    log "fetching ${lists_url}/${repo_path}"
    ${python} -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" \
        "${lists_url}/${repo_path}" "${dst}.tmp" \
        || { log "error: cannot fetch ${lists_url}/${repo_path} (offline? use --lists_dir)"; rm -f "${dst}.tmp"; return 1; }
    mv "${dst}.tmp" "${dst}"
}

fetch_list vggsound/vggsound.csv vggsound.csv
fetch_list clipsep/data/MUSIC/solo/test.csv music_test.csv            # MUSIC+ (both corpora)
fetch_list clipsep/data/vggsound/test-good-no-music.csv test-good-no-music.csv
case "${corpus}" in
    music)
        fetch_list clipsep/data/MUSIC/solo/train.csv music_train.csv
        fetch_list clipsep/data/MUSIC/solo/val.csv music_val.csv
        if [ "${music_train}" = json ]; then fetch_list music/MUSIC_solo_videos.json MUSIC_solo_videos.json; fi
        ;;
    vggsound)
        fetch_list clipsep/data/vggsound/val.csv val.csv
        fetch_list clipsep/data/vggsound/test-good.csv test-good.csv
        fetch_list clipsep/data/vggsound/test-no-music.csv test-no-music.csv
        ;;
    *) log "error: unknown --corpus ${corpus} (music|vggsound)"; exit 1 ;;
esac

log "${corpus}: splits, download lists and test pairs from ${world_dir}/lists"
${python} "${local_dir}/prepare_lists.py" --corpus "${corpus}" --lists "${world_dir}/lists" --output_dir "${world_dir}" \
    --music_train "${music_train}" --max_train_clips "${max_train_clips}" --max_valid_clips "${max_valid_clips}"

dl_opts=(--nj "${nj}" --sleep_interval "${sleep_interval}" --no_progress)
if [ -n "${cookies}" ]; then dl_opts+=(--cookies "${cookies}"); fi
if [ -n "${cookies_from_browser}" ]; then dl_opts+=(--cookies_from_browser "${cookies_from_browser}"); fi
if [ -n "${limit_rate}" ]; then dl_opts+=(--limit_rate "${limit_rate}"); fi

# keep_obtained IN_TABLE VIDEO_SCP OUT: the lines of IN_TABLE whose id is in VIDEO_SCP (atomically).
keep_obtained() {
    awk 'NR == FNR { ok[$1] = 1; next } ($1 in ok)' "$2" "$1" > "$3.tmp" && mv "$3.tmp" "$3"
}

for set in ${sets}; do
    dl=${world_dir}/download/${set}
    log "download ${set}: $(grep -c . "${dl}/ids") clips -> ${dl}"
    # shellcheck disable=SC2086
    ${python} -m espnet2_clip.bin.download_youtube --ids "${dl}/ids" --output_dir "${dl}" "${dl_opts[@]}" ${download_args} \
        || log "warning: download of ${set} failed or obtained nothing (see above); rerun to resume"
    if [ -f "${dl}/download_report.json" ]; then
        log "${set}: $(${python} -c "import sys; from espnet2_clip.data.download import missing_report_line as m; print(m(sys.argv[1]))" "${dl}")"
    fi
    [ -f "${dl}/video.scp" ] || continue
    if [ "${set}" = test ]; then
        log "test clips: 16 kHz audio and 1 fps frames -> ${world_dir}/test_av"
        ${python} -m espnet2_clip.bin.extract_av "${dl}" --output_dir "${world_dir}/test_av" --nj "${extract_nj}" \
            --size "${frame_size}" --no_progress || log "warning: no test clip could be extracted"
        [ -f "${world_dir}/test_av/wav.scp" ] || { log "error: no test clips"; exit 1; }
        for pairs in pairs:test_mix pairs_music_plus:test_music_plus; do
            [ -f "${world_dir}/${pairs%%:*}.csv" ] || continue  # MUSIC+ pairs of --corpus vggsound
            ${python} -m espnet2_clip.bin.build_test_mixtures --pairs "${world_dir}/${pairs%%:*}.csv" \
                --wav_scp "${world_dir}/test_av/wav.scp" --frames_scp "${world_dir}/test_av/frames.scp" \
                --output_dir "${world_dir}/data/${pairs#*:}" --wav_dir "${world_dir}/wav/${pairs#*:}"
        done
    else
        mkdir -p "${world_dir}/data/${set}"
        cp "${dl}/video.scp" "${world_dir}/data/${set}/video.scp.tmp"
        mv "${world_dir}/data/${set}/video.scp.tmp" "${world_dir}/data/${set}/video.scp"
        keep_obtained "${dl}/label" "${dl}/video.scp" "${world_dir}/data/${set}/label"
        log "${set}: $(wc -l < "${world_dir}/data/${set}/video.scp") videos -> ${world_dir}/data/${set}"
    fi
done
exit
}
