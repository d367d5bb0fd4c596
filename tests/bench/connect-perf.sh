#!/usr/bin/env bash
# The file source's throughput (records/s) beside `gregor produce` on the same data
# (docs/connect.md, "Throughput"). One broker on a scratch directory; a file of LINES lines of
# about 100 bytes; then
#   1. `gregor produce` reads the file on stdin into topic perf-produce (the reference), and
#   2. `gregor connect` with one file source reads it into topic perf-connect; the clock stops
#      when the source's stored offset (in connect-offsets) reaches the file's end, i.e. when
#      every line is acknowledged, as `gregor produce` exits when every record is.
# Usage: tests/bench/connect-perf.sh            (LINES=1000000 GREGOR=target/release/gregor)
set -euo pipefail
cd "$(dirname "$0")/../.."
GREGOR=${GREGOR:-target/release/gregor}
LINES=${LINES:-1000000}
PORT=${PORT:-19391}
DIR=$(mktemp -d /tmp/gregor-connect-perf.XXXXXX)
trap 'kill $WORKER 2>/dev/null || true; kill $BROKER 2>/dev/null && wait $BROKER 2>/dev/null || true; rm -rf "$DIR"' EXIT
BROKER=""; WORKER=""

"$GREGOR" serve --data-dir "$DIR/data" --listen 127.0.0.1:$PORT >"$DIR/broker.log" 2>&1 &
BROKER=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
"$GREGOR" topics create perf-produce --partitions 1 --bootstrap 127.0.0.1:$PORT >/dev/null
"$GREGOR" topics create perf-connect --partitions 1 --bootstrap 127.0.0.1:$PORT >/dev/null

python3 - "$DIR/in.log" "$LINES" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"{i:08d} " + "x" * 91 + "\n")
PY
SIZE=$(stat -c %s "$DIR/in.log")
echo "input: $LINES lines, $SIZE bytes"

start=$(date +%s.%N)
"$GREGOR" produce perf-produce --bootstrap 127.0.0.1:$PORT <"$DIR/in.log" 2>/dev/null
end=$(date +%s.%N)
python3 -c "import sys; t=$end-$start; print(f'gregor produce:        {t:6.2f} s  {$LINES/t:10.0f} records/s')"

cat >"$DIR/connect.toml" <<TOML
[worker]
offset.flush.interval.ms = 100
[[connector]]
name = "perf"
class = "file-source"
file = "$DIR/in.log"
topic = "perf-connect"
TOML
start=$(date +%s.%N)
"$GREGOR" connect --config "$DIR/connect.toml" --bootstrap 127.0.0.1:$PORT >"$DIR/connect.log" 2>&1 &
WORKER=$!
while :; do
  last=$(kcat -C -b 127.0.0.1:$PORT -t connect-offsets -o -1 -e -q -f '%s\n' 2>/dev/null | tail -1 || true)
  case "$last" in *"\"position\":$SIZE"*) break ;; esac
  sleep 0.05
done
end=$(date +%s.%N)
python3 -c "import sys; t=$end-$start; print(f'gregor connect source: {t:6.2f} s  {$LINES/t:10.0f} records/s')"
kill -TERM $WORKER; wait $WORKER || true; WORKER=""
