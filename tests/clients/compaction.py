"""Log compaction through confluent-kafka: create a compacted topic with the AdminClient, produce
keyed values and tombstones, read the topic from the start. Prints one JSON object.

usage: compaction.py BOOTSTRAP create TOPIC
       compaction.py BOOTSTRAP produce TOPIC ROUND FIRST_KEY COUNT [TOMBSTONE_KEYS]
       compaction.py BOOTSTRAP consume TOPIC
"""
import json, sys
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource

bs, phase, topic = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}

if phase == "create":
    a = AdminClient({"bootstrap.servers": bs})
    # A bad cleanup.policy is refused, naming the value.
    bad = NewTopic(topic + "-bad", num_partitions=1, replication_factor=1,
                   config={"cleanup.policy": "compact,shred"})
    try:
        a.create_topics([bad])[topic + "-bad"].result(15)
        out["bad_policy"] = None
    except KafkaException as e:
        out["bad_policy"] = [e.args[0].name(), e.args[0].str()]
    t = NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "cleanup.policy": "compact",
        "segment.ms": "300",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "86400000",
    })
    a.create_topics([t])[topic].result(15)
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    cfg = list(res.values())[0].result(15)
    out["configs"] = {k: cfg[k].value for k in
                      ["cleanup.policy", "delete.retention.ms", "min.cleanable.dirty.ratio",
                       "min.compaction.lag.ms", "segment.ms"]}
    # A record without a key is refused by a compacted topic.
    p = Producer({"bootstrap.servers": bs, "retries": 0})
    errors = []
    p.produce(topic, value=b"no key", on_delivery=lambda e, m: errors.append(
        e.name() if e else None))
    p.flush(15)
    out["keyless"] = errors

elif phase == "produce":
    rnd, first, count = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    tomb = set(int(k) for k in sys.argv[7].split(",")) if len(sys.argv) > 7 and sys.argv[7] else set()
    p = Producer({"bootstrap.servers": bs, "linger.ms": 0, "acks": "all"})
    acked = []

    def done(err, msg):
        if err is None:
            v = msg.value()
            acked.append([msg.offset(), msg.key().decode(), v.decode() if v is not None else None])

    for k in range(first, first + count):
        value = None if k in tomb else f"r{rnd}-k{k}".encode()
        p.produce(topic, key=f"k{k}".encode(), value=value, partition=0, on_delivery=done)
        p.poll(0)
    p.flush(30)
    out["acked"] = sorted(acked)

elif phase == "consume":
    c = Consumer({"bootstrap.servers": bs, "group.id": "compaction-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    records = []
    while True:
        m = c.poll(10)
        if m is None:
            raise SystemExit("no end of partition within 10 s")
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            raise SystemExit(str(m.error()))
        v = m.value()
        records.append([m.offset(), m.key().decode(), v.decode() if v is not None else None])
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    out["records"] = records
    out["watermarks"] = [lo, hi]

print(json.dumps(out))
