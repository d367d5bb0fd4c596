#!/usr/bin/env bash
# librdkafka's own benchmark tool, `rdkafka_performance`, against gregor and against librdkafka's
# in-process mock broker, in one run: the A/B of issue 11, as a new user would measure it.
#
# Usage (from anywhere; builds what is missing):
#   tests/bench/rdkafka-perf.sh                    # burst: 500k x 1 KiB, plus one-record batches
#   ROUNDS=5 RECORDS=1000000 tests/bench/rdkafka-perf.sh
#   SUSTAINED=1 RECORDS=5000000 tests/bench/rdkafka-perf.sh   # long run, beside dd on the same disk
#   INFLIGHT=1024 tests/bench/rdkafka-perf.sh       # gregor's requests_per_connection_max (default 64)
#
# What it runs, per round (A B A B, so drift on the machine hits every target alike):
#   - for each gregor durability policy in $POLICIES (default "group-commit none"): a fresh
#     `gregor serve` on a new data directory under $DATA (default: the system temp dir) per run,
#     after `sync` (so no earlier run's write-back lands on this run's fsyncs), for
#       burst:      rdkafka_performance -P -s 1024 -a 1 -X linger.ms=5 -c $RECORDS, one partition
#       one-record: rdkafka_performance -P -s 100 -a 1 -X batch.num.messages=1 -X linger.ms=0
#                   -c $SMALL_RECORDS (what a chatty producer or a log shipper sends)
#     and the broker's CPU seconds (user+system, /proc/PID/stat) per GB produced;
#   - the same two commands against librdkafka's mock broker (`-X test.mock.num.brokers=1`), an
#     in-memory broker inside the client process: the 100% line.
# It prints every run's rate as it goes, then the median of rounds per target and gregor's ratio
# to the mock's median. It asserts nothing about time: it is a measuring command.
#
# With SUSTAINED=1 it also writes the same number of bytes with `dd` (1 MiB blocks, fdatasync at
# the end) to the same disk, once per round: past the first gigabyte a fresh VM's page cache is
# the bound (shared/guide/PERFORMANCE.md), so a long run is compared with dd, not only the mock.
#
# librdkafka: $LIBRDKAFKA_TAG (default v2.15.0, the newest tag the project could fetch) is built
# from $LIBRDKAFKA_SRC, a checkout of librdkafka (cloned from $LIBRDKAFKA_GIT at that tag if
# missing); its binary is $LIBRDKAFKA_SRC/examples/rdkafka_performance, librdkafka linked in
# statically. With LINK=wheel (the default when it is installed: tests/run.sh installs it), the
# same tool's source is also compiled against the librdkafka that the confluent-kafka wheel
# bundles (2.16.0 for confluent-kafka 2.16), and that binary is used: the producer and the mock
# broker are the library's code, the tool is a thin driver, so this measures librdkafka 2.16.
# LINK=static keeps the tag's own build. gregor is
# $GREGOR (default: target/release/gregor of this repository, built if missing). BEFORE=PATH adds
# a second gregor binary (a build from before a change) to every round, as "before (POLICY)".
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=perf-tool.sh
source "$here/perf-tool.sh"
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-500000}
SMALL_RECORDS=${SMALL_RECORDS:-100000}
POLICIES=${POLICIES:-group-commit none}
BEFORE=${BEFORE:-}
SUSTAINED=${SUSTAINED:-0}
DATA=${DATA:-${TMPDIR:-/tmp}}
# Extra -X settings for every run (both targets), e.g. EXTRA="-X queue.buffering.max.messages=1000000".
EXTRA=${EXTRA:-}
# Requests one connection may have in flight inside gregor (both builds), if set.
INFLIGHT=${INFLIGHT:-}
[[ -n $INFLIGHT ]] && export GREGOR_REQUESTS_PER_CONNECTION_MAX=$INFLIGHT

echo "rdkafka_performance from librdkafka $LIBRDKAFKA_TAG ($LIBRDKAFKA_SRC); gregor $GREGOR"
echo "gregor requests_per_connection_max: ${INFLIGHT:-64 (default)}"
echo "burst: $RECORDS x 1024 B, acks=1, linger.ms=5; one-record: $SMALL_RECORDS x 100 B, batch.num.messages=1, linger.ms=0; $ROUNDS rounds; one partition"


declare -A results
targets=""
for policy in $POLICIES; do
    targets+=" gregor:$policy"
    [[ -n $BEFORE ]] && targets+=" before:$policy"
done
label() { echo "${1%%:*} (${1#*:})"; }
trap stop_gregor EXIT

for round in $(seq "$ROUNDS"); do
    for target in $targets; do
        policy=${target#*:}
        bin=$GREGOR
        [[ $target == before:* ]] && bin=$BEFORE
        # A fresh broker for each run, and `sync` first: the previous run's dirty pages would
        # otherwise be written back during this run's fsyncs.
        sync
        start_gregor "$policy" "$bin"
        t0=$(cpu_ticks "$gregor_pid")
        big=$(run_perf -b "$gregor_addr" -t "burst-$round" -s 1024 -a 1 -c "$RECORDS" -X linger.ms=5)
        t1=$(cpu_ticks "$gregor_pid")
        stop_gregor
        rm -rf "$gregor_dir" "$gregor_dir-metadata" "$gregor_dir.log"
        sync
        start_gregor "$policy" "$bin"
        small=$(run_perf -b "$gregor_addr" -t "small-$round" -s 100 -a 1 -c "$SMALL_RECORDS" \
            -X batch.num.messages=1 -X linger.ms=0)
        cpu=$(awk -v t="$((t1 - t0))" -v n="$RECORDS" 'BEGIN { printf "%.2f", t / 100 / (n * 1024 / 1e9) }')
        stop_gregor
        rm -rf "$gregor_dir" "$gregor_dir-metadata" "$gregor_dir.log"
        echo "round $round $(label "$target"): burst $big rec/s, one-record $small rec/s, broker CPU $cpu s/GB" >&2
        results["$target burst"]+="$big "
        results["$target small"]+="$small "
        results["$target cpu"]+="$cpu "
    done
    big=$(run_perf -X test.mock.num.brokers=1 -t "burst-$round" -s 1024 -a 1 -c "$RECORDS" -X linger.ms=5)
    small=$(run_perf -X test.mock.num.brokers=1 -t "small-$round" -s 100 -a 1 -c "$SMALL_RECORDS" \
        -X batch.num.messages=1 -X linger.ms=0)
    echo "round $round mock: burst $big rec/s, one-record $small rec/s" >&2
    results["mock burst"]+="$big "
    results["mock small"]+="$small "
    if [[ $SUSTAINED == 1 ]]; then
        dir=$(mktemp -d "$DATA/gregor-rdkperf-dd-XXXXXX")
        mib=$((RECORDS * 1024 / 1048576))
        ddout=$(dd if=/dev/zero of="$dir/f" bs=1M count="$mib" conv=fdatasync 2>&1 | tail -1)
        rm -rf "$dir"
        # dd prints "... bytes (...) copied, 2.1 s, 1.2 GB/s": turn the seconds into rec/s.
        secs=$(echo "$ddout" | sed -n 's/.*copied, \([0-9.]*\) s.*/\1/p')
        ddr=$(awk -v s="$secs" -v n="$RECORDS" 'BEGIN { printf "%.0f", n / s }')
        echo "round $round dd, same bytes, same disk: $ddr rec/s equivalent ($ddout)" >&2
        results["dd burst"]+="$ddr "
    fi
done


mock_big=$(echo "${results["mock burst"]}" | median)
mock_small=$(echo "${results["mock small"]}" | median)
echo
printf '%-26s %12s %16s %12s %18s %8s %10s\n' "median of $ROUNDS rounds" "burst rec/s" "(min-max)" "one-record" "(min-max)" "CPU s/GB" ""
for target in $targets; do
    b=$(echo "${results["$target burst"]}" | median)
    s=$(echo "${results["$target small"]}" | median)
    c=$(echo "${results["$target cpu"]}" | median)
    printf '%-26s %12s %16s %12s %18s %8s\n' "$(label "$target")" "$b" "($(echo "${results["$target burst"]}" | range))" \
        "$s" "($(echo "${results["$target small"]}" | range))" "$c"
done
printf '%-26s %12s %16s %12s %18s %8s\n' "librdkafka mock" "$mock_big" "($(echo "${results["mock burst"]}" | range))" \
    "$mock_small" "($(echo "${results["mock small"]}" | range))" "-"
if [[ $SUSTAINED == 1 ]]; then
    printf '%-26s %12s %16s\n' "dd, same bytes and disk" "$(echo "${results["dd burst"]}" | median)" \
        "($(echo "${results["dd burst"]}" | range))"
fi
echo
for target in $targets; do
    b=$(echo "${results["$target burst"]}" | median)
    s=$(echo "${results["$target small"]}" | median)
    line=$(awk -v b="$b" -v s="$s" -v mb="$mock_big" -v ms="$mock_small" \
        'BEGIN { printf "burst %.2fx, one-record %.2fx", b / mb, s / ms }')
    if [[ $SUSTAINED == 1 ]]; then
        d=$(echo "${results["dd burst"]}" | median)
        line+=$(awk -v b="$b" -v d="$d" 'BEGIN { printf ", produce / dd %.2fx", b / d }')
    fi
    echo "$(label "$target") / mock: $line"
done
