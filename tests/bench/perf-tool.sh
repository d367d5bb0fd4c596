# Shared by rdkafka-perf.sh and cluster-perf.sh (sourced, not run): find or build librdkafka's
# `rdkafka_performance` (see rdkafka-perf.sh's header for LIBRDKAFKA_TAG, LIBRDKAFKA_SRC and LINK),
# build gregor if missing, and the small helpers both scripts use to read and sum up runs.
# Expects $repo (the repository root) to be set.

LIBRDKAFKA_TAG=${LIBRDKAFKA_TAG:-v2.15.0}
LIBRDKAFKA_SRC=${LIBRDKAFKA_SRC:-${XDG_CACHE_HOME:-$HOME/.cache}/gregor-bench/librdkafka-${LIBRDKAFKA_TAG#v}}
LIBRDKAFKA_GIT=${LIBRDKAFKA_GIT:-https://github.com/confluentinc/librdkafka}
GREGOR=${GREGOR:-$repo/target/release/gregor}

perf="$LIBRDKAFKA_SRC/examples/rdkafka_performance"
LINK=${LINK:-auto}
wheel_lib=$(python3 -c 'import confluent_kafka, glob, os
d = os.path.dirname(confluent_kafka.__file__) + ".libs"
print((glob.glob(d + "/librdkafka*.so*") or [""])[0])' 2>/dev/null || true)
use_wheel=0
if [[ $LINK == wheel || ($LINK == auto && -n $wheel_lib) ]]; then
    [[ -n $wheel_lib ]] || { echo "LINK=wheel: no confluent-kafka wheel with a bundled librdkafka" >&2; exit 1; }
    use_wheel=1
fi
if [[ ! -f $LIBRDKAFKA_SRC/configure ]]; then
    echo "# cloning librdkafka $LIBRDKAFKA_TAG into $LIBRDKAFKA_SRC" >&2
    git clone --depth 1 --branch "$LIBRDKAFKA_TAG" "$LIBRDKAFKA_GIT" "$LIBRDKAFKA_SRC" >&2
fi
if [[ $use_wheel == 1 ]]; then
    # The tool's source needs only the headers and the config.h that ./configure writes.
    wheel_version=$(python3 -c 'import confluent_kafka; print(confluent_kafka.libversion()[0])')
    linked="$LIBRDKAFKA_SRC/examples/rdkafka_performance-$wheel_version"
    if [[ ! -x $linked ]]; then
        [[ -f $LIBRDKAFKA_SRC/config.h ]] || (cd "$LIBRDKAFKA_SRC" && ./configure --disable-gssapi >&2)
        echo "# compiling rdkafka_performance against librdkafka $wheel_version ($wheel_lib)" >&2
        gcc -O2 -I "$LIBRDKAFKA_SRC/src" -I "$LIBRDKAFKA_SRC" "$LIBRDKAFKA_SRC/examples/rdkafka_performance.c" \
            -o "$linked" "$wheel_lib" -Wl,-rpath,"$(dirname "$wheel_lib")" -lpthread -lm
    fi
    perf=$linked
    LIBRDKAFKA_TAG="$wheel_version (the confluent-kafka wheel's; tool source $LIBRDKAFKA_TAG)"
elif [[ ! -x $perf ]]; then
    echo "# building librdkafka and rdkafka_performance in $LIBRDKAFKA_SRC (a few minutes)" >&2
    (cd "$LIBRDKAFKA_SRC" && ./configure --disable-gssapi >&2 && make -j"$(nproc)" -C src >&2 &&
        make -C examples rdkafka_performance >&2)
fi
if [[ ! -x $GREGOR ]]; then
    echo "# building gregor" >&2
    (cd "$repo" && cargo build --release -p gregor-net >&2)
fi

# rdkafka_performance prints "... in 2053ms: 243502 msgs/s and 249.35 MB/s, ...": the msgs/s.
rate() { sed -n 's/.* \([0-9][0-9]*\) msgs\/s and .*/\1/p' | tail -1; }

# run_perf ARGS...: one rdkafka_performance producer run (with $EXTRA's -X settings, if any);
# prints its rate (msgs/s).
run_perf() {
    local out r
    out=$("$perf" -P -p 0 -q "$@" ${EXTRA:-} 2>&1) || { echo "$out" >&2; return 1; }
    r=$(echo "$out" | rate)
    [[ -n $r ]] || { echo "$out" >&2; return 1; }
    echo "$r"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The middle value, or the mean of the two middle ones for an even count.
median() {
    tr ' ' '\n' | grep -v '^$' | sort -g |
        awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }

# One single-node `gregor serve` (a fresh data directory under $DATA) in the background:
# sets gregor_pid, gregor_dir and gregor_addr. stop_gregor stops it.
gregor_pid=""
stop_gregor() {
    if [[ -n $gregor_pid ]]; then
        kill "$gregor_pid" 2>/dev/null || true
        wait "$gregor_pid" 2>/dev/null || true
        gregor_pid=""
    fi
}

start_gregor() { # policy binary
    local port dir
    port=$(free_port)
    dir=$(mktemp -d "$DATA/gregor-rdkperf-XXXXXX")
    "$2" serve --listen "127.0.0.1:$port" --data-dir "$dir" --durability "$1" >"$dir.log" 2>&1 &
    gregor_pid=$!
    gregor_dir=$dir
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    gregor_addr="127.0.0.1:$port"
}
