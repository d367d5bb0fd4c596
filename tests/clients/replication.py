"""Real clients against a three-broker gregor cluster with replicated partitions
(tests/it/replication.rs); topics are created, written with confluent-kafka and read
with it by cluster.py's `create`, `produce` and `read`.

Every mode prints one JSON document on its last line. Every loop is bounded in time.

  describe BS TOPIC                Metadata of TOPIC: {partition: {leader, replicas, isr}}
  produce-kp BS TOPIC N PREFIX GAP_MS  N records with acks=all and idempotence, one every
                                   GAP_MS, with kafka-python's KafkaProducer: prints what
                                   cluster.py's `produce` prints for confluent-kafka
  produce-acks BS TOPIC ACKS VALUE one record to partition 0 with confluent-kafka, acks=ACKS
                                   (librdkafka sends any count; gregor takes N >= 2 as acks=N),
                                   no retries: {"error": name or null, "offset": n}
  produce-stream BS TOPIC ACKS PREFIX N GAP_MS [PARTITION]
                                   N records to PARTITION (0) with confluent-kafka, one every
                                   GAP_MS, acks=ACKS, no idempotence and no retries (a record
                                   sent to a leader that died fails instead of being written
                                   twice), a record waiting for a leader waits up to 30 s:
                                   {"acked": [[value, offset, unix ms of the ack], ...] in
                                   acknowledgement order, "failed": [[value, error name], ...],
                                   "unfinished": n}
  read-kp BS TOPIC N               every record of partitions 0..N from offset 0 with kafka-python
                                   (assign + seek to the beginning), as cluster.py's `read`
                                   prints confluent-kafka's: [[partition, offset, value], ...]
                                   and the partitions read to their end
"""
import json, sys, time
from confluent_kafka.admin import AdminClient

mode, bs = sys.argv[1], sys.argv[2]


def describe(admin, topic):
    md = admin.list_topics(topic=topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return {
        str(p.id): {"leader": p.leader, "replicas": sorted(p.replicas), "isr": sorted(p.isrs)}
        for p in t.partitions.values()
    }


if mode == "describe":
    d = describe(AdminClient({"bootstrap.servers": bs}), sys.argv[3])
    print(json.dumps({"partitions": d}))
elif mode == "produce-acks":
    from confluent_kafka import Producer
    topic, acks, value = sys.argv[3], sys.argv[4], sys.argv[5]
    p = Producer({"bootstrap.servers": bs, "acks": acks, "enable.idempotence": False,
                  "retries": 0, "message.timeout.ms": 15000})
    result = {}

    def done(err, msg):
        result["error"] = err.name() if err else None
        result["offset"] = msg.offset() if err is None else -1

    p.produce(topic, value.encode(), partition=0, on_delivery=done)
    deadline = time.time() + 20
    while "error" not in result and time.time() < deadline:
        p.poll(0.1)
    print(json.dumps(result))
elif mode == "produce-stream":
    from confluent_kafka import Producer
    topic, acks, prefix, n, gap = (sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]),
                                   int(sys.argv[7]) / 1000)
    part = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    p = Producer({"bootstrap.servers": bs, "acks": acks, "enable.idempotence": False,
                  "retries": 0, "message.timeout.ms": 30000, "linger.ms": 0})
    acked, failed = [], []

    def report(err, m):
        if err is None:
            acked.append([m.value().decode(), m.offset(), int(time.time() * 1000)])
        else:
            failed.append([m.value().decode(), err.name()])

    for i in range(n):
        p.produce(topic, f"{prefix}-{i}".encode(), partition=part, on_delivery=report)
        p.poll(gap)
    left = p.flush(60)
    print(json.dumps({"acked": acked, "failed": failed, "unfinished": left}))
elif mode == "produce-kp":
    from kafka import KafkaProducer
    topic, n, prefix, gap = sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]) / 1000
    p = KafkaProducer(bootstrap_servers=bs.split(","), acks="all", enable_idempotence=True,
                      delivery_timeout_ms=60000, request_timeout_ms=10000)
    acked, failed = {}, []
    futures = []
    for i in range(n):
        futures.append((f"{prefix}-{i}", p.send(topic, key=b"k", value=f"{prefix}-{i}".encode())))
        time.sleep(gap)
    p.flush(90)
    # Acknowledgement order within a partition is offset order.
    done = []
    for value, f in futures:
        try:
            md = f.get(timeout=1)
            done.append((md.partition, md.offset, value))
        except Exception as e:  # a failed delivery: its error's name
            failed.append([value, type(e).__name__])
    for part, _, value in sorted(done):
        acked.setdefault(str(part), []).append(value)
    p.close(10)
    print(json.dumps({"acked": acked, "failed": failed, "unfinished": 0}))
elif mode == "read-kp":
    from kafka import KafkaConsumer, TopicPartition as KTP
    topic, n = sys.argv[3], int(sys.argv[4])
    c = KafkaConsumer(bootstrap_servers=bs.split(","), enable_auto_commit=False,
                      consumer_timeout_ms=3000)
    tps = [KTP(topic, p) for p in range(n)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    ends = c.end_offsets(tps)
    got, deadline = [], time.time() + 40
    while time.time() < deadline and any(c.position(tp) < ends[tp] for tp in tps):
        for m in c:
            got.append([m.partition, m.offset, m.value.decode()])
    eof = [tp.partition for tp in tps if c.position(tp) >= ends[tp]]
    c.close()
    print(json.dumps({"records": got, "eof": sorted(eof)}))
else:
    raise SystemExit(f"unknown mode {mode}")
