#!/usr/bin/env bash
# Stage 1 of the MUSIC recipe: the shared MUSIC/VGGSound data preparation with --corpus music
# (MUSIC solo train/valid by video id, MUSIC+ test mixtures); see
# egs2/vggsound/clipsep1/local/data.sh for every option.
{ # bash reads this whole block before running it: editing the file during a run cannot change that run
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
exec "${here}/../../../vggsound/clipsep1/local/data.sh" --corpus music "$@"
exit
}
