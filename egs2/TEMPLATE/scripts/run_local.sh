#!/usr/bin/env bash
# Local job runner (the role of Kaldi's run.pl for one job): run a command, log it, keep its status.
#   scripts/run_local.sh [--gpu N] LOGFILE COMMAND [ARGS...]
# The log starts with the command line and ends with the exit status and elapsed time.
# "--gpu N" is accepted (and ignored: the job sees the machine's GPUs) so that ESPnet's
# launcher (python -m espnet2.bin.launch --cmd scripts/run_local.sh) can use it like run.pl.
set -u
if [ "${1:-}" = "--gpu" ]; then shift 2; fi
if [ $# -lt 2 ]; then echo "usage: $0 LOGFILE COMMAND [ARGS...]" >&2; exit 2; fi
log=$1; shift
mkdir -p "$(dirname "${log}")"
start=$(date +%s)
{
    echo "# $*"
    echo "# started at $(date)"
} > "${log}"
"$@" >> "${log}" 2>&1
status=$?
echo "# accounting: time=$(( $(date +%s) - start )) threads=1" >> "${log}"
echo "# ended (code ${status}) at $(date)" >> "${log}"
if [ ${status} -ne 0 ]; then
    echo "$0: command failed (code ${status}); see ${log}:" >&2
    tail -n 20 "${log}" >&2
fi
exit ${status}
