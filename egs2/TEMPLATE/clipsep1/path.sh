# Activate the environment made by `make -C tools` (a venv at tools/venv), if present,
# and set the usual ESPnet recipe environment. Sourced by run.sh.
_root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
if [ -f "${_root}/tools/venv/bin/activate" ]; then
    . "${_root}/tools/venv/bin/activate"
fi
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
export PYTHONDONTWRITEBYTECODE=1
export HF_HUB_DISABLE_TELEMETRY=1
