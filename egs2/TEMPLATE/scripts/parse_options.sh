#!/usr/bin/env bash
# Turn "--name value" / "--name=value" command-line options into shell variables, Kaldi style.
# Source it after the defaults are set:  . scripts/parse_options.sh || exit 1
# Only variables that already exist can be set (a typo is an error); "--help" prints them.
while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "Options (current values):"
            for _v in ${_option_names:-}; do echo "  --${_v} ${!_v}"; done
            exit 0 ;;
        --*=*) _name=${1%%=*}; _name=${_name#--}; _value=${1#*=}; shift ;;
        --*)
            _name=${1#--}
            if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" >&2; exit 1; fi
            _value=$2; shift 2 ;;
        *) break ;;
    esac
    _name=${_name//-/_}
    if ! declare -p "${_name}" >/dev/null 2>&1; then
        echo "$0: unknown option --${_name} (see --help)" >&2
        exit 1
    fi
    printf -v "${_name}" '%s' "${_value}"
done
