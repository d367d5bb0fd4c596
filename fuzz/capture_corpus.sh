#!/usr/bin/env bash
# Rebuild the kafka_request seed corpus from real clients: kcat (librdkafka), confluent-kafka
# and kafka-python produce, consume, run a group and use the admin API through capture.py.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=fuzz/corpus/kafka_request
DATA=$(mktemp -d)
cargo build --release -p gregor-net
./target/release/gregor serve --data-dir "$DATA" --listen 127.0.0.1:19093 --advertised-port 19092 \
  --group-initial-rebalance-delay-ms 0 >/dev/null 2>&1 &
BROKER=$!
trap 'kill $BROKER $PROXY 2>/dev/null; rm -rf "$DATA"' EXIT
sleep 1
run() { # tag, command...
  local tag=$1; shift
  python3 fuzz/capture.py --listen 19092 --upstream 127.0.0.1:19093 --out "$OUT" --tag "$tag" &
  PROXY=$!
  sleep 0.5
  "$@" || true
  sleep 1
  kill $PROXY 2>/dev/null || true
  wait $PROXY 2>/dev/null || true
}
B=127.0.0.1:19092
run kcat bash -c "printf 'k1:v1\nk2:v2\n' | kcat -b $B -t cap-kcat -P -K: -z snappy && kcat -b $B -t cap-kcat -C -e -o beginning -q && kcat -b $B -L"
run kcat-group timeout 8 kcat -b $B -G cap-group cap-kcat -e -q
run confluent python3 - <<PY
from confluent_kafka import Producer, Consumer
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": "$B"})
for f in a.create_topics([NewTopic("cap-ck", 2, 1)]).values():
    f.result()
p = Producer({"bootstrap.servers": "$B", "enable.idempotence": True, "compression.type": "zstd"})
for i in range(5):
    p.produce("cap-ck", key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"x")])
p.flush(10)
c = Consumer({"bootstrap.servers": "$B", "group.id": "cap-ck-group", "auto.offset.reset": "earliest"})
c.subscribe(["cap-ck"])
n = 0
for _ in range(40):
    m = c.poll(0.5)
    if m is not None and not m.error():
        n += 1
        if n == 5:
            break
c.commit()
c.close()
PY
run kafka-python python3 - <<PY
from kafka import KafkaProducer, KafkaConsumer
p = KafkaProducer(bootstrap_servers="$B", compression_type="gzip")
for i in range(5):
    p.send("cap-kp", key=b"k", value=b"value %d" % i)
p.flush()
c = KafkaConsumer("cap-kp", bootstrap_servers="$B", group_id="cap-kp-group",
                  auto_offset_reset="earliest", consumer_timeout_ms=5000)
for i, m in enumerate(c):
    if i == 4:
        break
c.commit()
c.close()
PY
# The broker's own files seed the storage targets: segment files for recovery, their batches for
# the batch parser, and __consumer_offsets batches for the group-record decoder.
kill $BROKER; wait $BROKER 2>/dev/null || true
python3 - "$DATA" <<'PY'
import hashlib, os, sys
data = sys.argv[1]
def save(target, b):
    d = os.path.join("fuzz/corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
        f.write(b)
for root, _, files in os.walk(data):
    for name in files:
        if not name.endswith(".log"):
            continue
        b = open(os.path.join(root, name), "rb").read()
        if len(b) <= 32 or len(b) > 64 * 1024:
            continue
        save("segment_recovery", b)
        if "__consumer_offsets" in root:
            save("group_records", b[32:])
        else:
            save("record_batch", b[32:])
PY
for t in kafka_request record_batch segment_recovery group_records; do
  echo "$t: $(ls fuzz/corpus/$t 2>/dev/null | wc -l) seeds"
done
