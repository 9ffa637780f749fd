#!/bin/sh
# Runs train.py with the environment it was timed and made deterministic in:
# OpenBLAS from Debian's libopenblas0-pthread (the default netlib BLAS is ~15x
# slower), two BLAS threads, passive OpenMP waiting (spinning threads collapse
# on a shared machine), low priority. Usage: run.sh [train.py options]
set -e
here=$(dirname "$0")
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
if [ ! -e "$openblas/libblas.so.3" ]; then
  echo "run.sh: $openblas/libblas.so.3 not found: apt-get install libopenblas0-pthread" >&2
  exit 1
fi
export LD_LIBRARY_PATH="$openblas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec nice -n 10 /usr/bin/python3 "$here/train.py" "$@"
