"""The topic configs that change what the broker stores, seen through real clients:
message.timestamp.type=LogAppendTime (confluent-kafka produces with a timestamp of 2001 and
reads back the broker's append time, typed TIMESTAMP_LOG_APPEND_TIME, in the delivery report
and in the consumer), and compression.type (kcat produces uncompressed lines to topics stored
as gzip, zstd, lz4 and uncompressed; confluent-kafka reads every value back). Prints one JSON
object; the test compares the segment files' sizes.

usage: topic_formats.py BOOTSTRAP
"""
import json, subprocess, sys, time
from confluent_kafka import (Consumer, Producer, TopicPartition, TIMESTAMP_CREATE_TIME,
                             TIMESTAMP_LOG_APPEND_TIME)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

bs = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bs})
report = {}

OLD_MS = 1_000_000_000_000  # September 2001
TOPICS = {
    "lat": {"message.timestamp.type": "LogAppendTime"},
    "ct": {},
    "gz": {"compression.type": "gzip"},
    "zs": {"compression.type": "zstd"},
    "l4": {"compression.type": "lz4"},
    "un": {"compression.type": "uncompressed"},
}
for topic, f in admin.create_topics([NewTopic(t, 1, 1, config=c) for t, c in TOPICS.items()]).items():
    f.result(30)

# DescribeConfigs: each override, with its source.
res = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in ["lat", "ct", "gz"]]
described = {}
for r, f in admin.describe_configs(res).items():
    entries = f.result(30)
    described[r.name] = {k: [entries[k].value, entries[k].source]
                         for k in ["message.timestamp.type", "compression.type"]}
report["described"] = described


def read(topic, n, seconds=30):
    c = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + seconds
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append(m)
    c.close()
    return got


# LogAppendTime: produced with a timestamp of 2001, stored with the broker's clock.
p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 0})
delivered = []
before_ms = int(time.time() * 1000)
for topic in ["lat", "ct"]:
    for i in range(3):
        p.produce(topic, value=f"{topic}-{i}".encode(), timestamp=OLD_MS + i,
                  on_delivery=lambda err, msg: delivered.append(
                      [msg.topic(), err is None, msg.timestamp()[0], msg.timestamp()[1]]))
    p.flush(30)
after_ms = int(time.time() * 1000)
report["window"] = [before_ms, after_ms]
report["delivered"] = delivered
for topic in ["lat", "ct"]:
    report[f"read_{topic}"] = [[m.value().decode(), m.timestamp()[0], m.timestamp()[1]]
                               for m in read(topic, 3)]
report["types"] = {"create": TIMESTAMP_CREATE_TIME, "append": TIMESTAMP_LOG_APPEND_TIME}

# compression.type: kcat produces uncompressed, one line a record; compressible values.
N = 200
lines = "".join(f"{i:04d}-" + "gregor " * 150 + "\n" for i in range(N))
for topic in ["gz", "zs", "l4", "un"]:
    out = subprocess.run(["timeout", "60", "kcat", "-P", "-b", bs, "-t", topic, "-p", "0",
                          "-z", "none", "-X", "linger.ms=0"],
                         input=lines.encode(), capture_output=True)
    assert out.returncode == 0, out.stderr
    got = read(topic, N)
    report[f"values_{topic}"] = [len(got), all(
        m.value().decode() == f"{i:04d}-" + "gregor " * 150 for i, m in enumerate(got))]
print(json.dumps(report))
