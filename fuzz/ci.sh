#!/usr/bin/env bash
# Run every fuzz target briefly (CI), or for a number of executions each (FUZZ_RUNS=1000000).
# Works on the stable toolchain: `-s none` builds without sanitizers (they need nightly; see
# docs/fuzzing.md). The checked-in corpus is copied, so runs never modify the checkout.
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
SECS=${FUZZ_SECS:-30}
RUNS=${FUZZ_RUNS:-}
TARGETS=${FUZZ_TARGETS:-"kafka_request record_batch segment_recovery group_records broker_ops sasl"}
cargo fuzz build -s none -O
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $TARGETS; do
  mkdir -p "$work/$t"
  cp -r corpus/$t/. "$work/$t/" 2>/dev/null || true
  if [ -n "$RUNS" ]; then limit="-runs=$RUNS"; else limit="-max_total_time=$SECS"; fi
  echo "== fuzz $t ($limit)"
  start=$(date +%s)
  set +e
  cargo fuzz run -s none -O "$t" "$work/$t" -- $limit -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 > "$work/$t.log" 2>&1
  status=$?
  set -e
  grep -E "^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::peak_rss_mb|ERROR|panicked|SUMMARY" "$work/$t.log" || true
  echo "   $t: exit $status after $(( $(date +%s) - start ))s"
  if [ "$status" != 0 ]; then
    tail -40 "$work/$t.log"
    echo "fuzz target $t failed; the crashing input is under fuzz/artifacts/$t/"
    exit 1
  fi
done
