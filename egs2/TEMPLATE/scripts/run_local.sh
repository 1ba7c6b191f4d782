#!/usr/bin/env bash
# Local job runner (the role of Kaldi's run.pl on one machine): run a command, log it, keep its status.
#   scripts/run_local.sh [--gpu N] [JOB=1:N] LOGFILE COMMAND [ARGS...]
# The log starts with the command line and ends with the exit status and elapsed time.
# "JOB=1:N" runs N copies at once, with the word JOB in LOGFILE and in every argument replaced by the
# job's number (1..N); it fails if any copy fails, naming the logs. Unless OMP_NUM_THREADS is set, each
# of N parallel copies gets nproc / N threads (at least 1), so that they do not fight over the cores.
# "--gpu N" is accepted (and ignored: the jobs see the machine's GPUs) so that ESPnet's
# launcher (python -m espnet2.bin.launch --cmd scripts/run_local.sh) can use it like run.pl.
set -u
if [ "${1:-}" = "--gpu" ]; then shift 2; fi
first=1 last=1 array=false
if [[ "${1:-}" =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
    first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]} array=true
    shift
    if [ "${first}" -gt "${last}" ]; then echo "$0: empty job range JOB=${first}:${last}" >&2; exit 2; fi
fi
if [ $# -lt 2 ]; then echo "usage: $0 [--gpu N] [JOB=1:N] LOGFILE COMMAND [ARGS...]" >&2; exit 2; fi

run_one() {  # run_one LOG COMMAND [ARGS...]
    local log=$1 start status
    shift
    mkdir -p "$(dirname "${log}")"
    start=$(date +%s)
    {
        echo "# $*"
        echo "# started at $(date)"
    } > "${log}"
    "$@" >> "${log}" 2>&1
    status=$?
    echo "# accounting: time=$(( $(date +%s) - start )) threads=${OMP_NUM_THREADS:-$(nproc)}" >> "${log}"
    echo "# ended (code ${status}) at $(date)" >> "${log}"
    return ${status}
}

report_failure() {  # report_failure LOG STATUS
    echo "$0: command failed (code $2); see $1:" >&2
    tail -n 20 "$1" >&2
}

if [ "${array}" = false ]; then
    run_one "$@"
    status=$?
    [ ${status} -eq 0 ] || report_failure "$1" ${status}
    exit ${status}
fi

njobs=$(( last - first + 1 ))
if [ -z "${OMP_NUM_THREADS:-}" ] && [ ${njobs} -gt 1 ]; then
    threads=$(( $(nproc) / njobs ))
    export OMP_NUM_THREADS=$(( threads > 0 ? threads : 1 ))
fi
pids=()
for (( job = first; job <= last; job++ )); do
    run_one "${@//JOB/${job}}" &
    pids+=($!)
done
failed=0
for (( job = first; job <= last; job++ )); do
    wait "${pids[job - first]}"
    status=$?
    if [ ${status} -ne 0 ]; then
        report_failure "${1//JOB/${job}}" ${status}
        failed=$(( failed + 1 ))
    fi
done
if [ ${failed} -gt 0 ]; then
    echo "$0: ${failed} of ${njobs} jobs failed (logs: $1 with JOB=${first}..${last})" >&2
    exit 1
fi
exit 0
