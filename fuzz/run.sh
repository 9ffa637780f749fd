#!/bin/sh
# fuzz/run.sh TARGET [SECONDS]: runs one libFuzzer target (built as in
# fuzz/README.md) for SECONDS (default 600), reading the seeds of
# fuzz/corpus/TARGET and keeping what it finds in build-fuzz/corpus/TARGET
# (outside git; copy inputs worth keeping into fuzz/corpus/). Crashes are
# written as build-fuzz/crash-* / leak-* / timeout-* files. The last lines
# of the log give the executions and coverage.
set -eu
cd "$(dirname "$0")/.."
TARGET=$1
SECONDS_TO_RUN=${2:-600}
BIN=""
for dir in build-fuzz build-fuzz-lib/tests; do
  if [ -x "$dir/fuzz_$TARGET" ]; then BIN="$dir/fuzz_$TARGET"; fi
done
if [ -z "$BIN" ]; then echo "fuzz_$TARGET is not built (fuzz/README.md)" >&2; exit 1; fi
WORK="build-fuzz/corpus/$TARGET"
mkdir -p "$WORK" build-fuzz/findings
# -timeout: an input taking longer is a finding (a hang); -rss_limit_mb: so
# is one that needs more memory than a small machine has.
"$BIN" "$WORK" "fuzz/corpus/$TARGET" -max_total_time="$SECONDS_TO_RUN" -timeout=20 -rss_limit_mb=2048 \
  -artifact_prefix=build-fuzz/findings/"$TARGET"- -print_final_stats=1 ${FUZZ_ARGS:-} 2>&1 | tail -n 25
