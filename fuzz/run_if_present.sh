#!/bin/sh
# run_if_present.sh FILE COMMAND...: runs COMMAND when FILE exists, else skips
# (exit 77, CTest's skip code) with a message -- for inputs from ../shared.
if [ ! -e "$1" ]; then echo "skipped: $1 is not here (../shared absent)"; exit 77; fi
shift
exec "$@"
