"""Topic configs are enforced, not only stored, seen through confluent-kafka as an operator
sees them: max.message.bytes refuses a larger batch with MSG_SIZE_TOO_LARGE until it is raised
(IncrementalAlterConfigs); segment.bytes with retention.bytes keeps the log near its size
limit; segment.ms with retention.ms deletes records by age. Prints one JSON object.

usage: enforced_configs.py BOOTSTRAP
"""
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic)

bs = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bs})
producer = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 0,
                     "message.send.max.retries": 0})
consumer = Consumer({"bootstrap.servers": bs, "group.id": "enforced",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def create(topic, configs):
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(30)


def produce(topic, value):
    """One record in its own batch; the delivery error's name, or None when acknowledged."""
    got = []
    producer.produce(topic, value, callback=lambda err, msg: got.append(err))
    producer.flush(30)
    assert len(got) == 1, got
    return got[0].name() if got[0] else None


def watermarks(topic):
    return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)


def wait_low(topic, at_least, seconds=20):
    deadline = time.time() + seconds
    low, high = watermarks(topic)
    while low < at_least and time.time() < deadline:
        time.sleep(0.1)
        low, high = watermarks(topic)
    return low, high


def read_all(topic):
    """Every record a consumer reads from the earliest offset: (offset, value)."""
    low, high = watermarks(topic)
    consumer.assign([TopicPartition(topic, 0, -2)])
    out, deadline = [], time.time() + 20
    while (not out or out[-1][0] < high - 1) and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            out.append((m.offset(), m.value().decode()))
    consumer.unassign()
    return out


out = {}

# max.message.bytes: a batch larger than the topic's limit is refused; raising it lets it in.
create("mmb", {"max.message.bytes": "1000"})
out["mmb_small"] = produce("mmb", b"s" * 100)
out["mmb_big"] = produce("mmb", b"b" * 3000)
res = ConfigResource("topic", "mmb", incremental_configs=[
    ConfigEntry("max.message.bytes", "100000",
                incremental_operation=AlterConfigOpType.SET)])
for f in admin.incremental_alter_configs([res]).values():
    f.result(30)
deadline = time.time() + 20
out["mmb_big_after"] = produce("mmb", b"b" * 3000)
while out["mmb_big_after"] is not None and time.time() < deadline:
    time.sleep(0.2)
    out["mmb_big_after"] = produce("mmb", b"b" * 3000)
out["mmb_read"] = [len(v) for _, v in read_all("mmb")]

# segment.bytes and retention.bytes: 40 records of ~270 bytes a batch in segments of 1 KiB;
# the log keeps at most retention.bytes plus the active segment.
# (gregor wants a batch of max.message.bytes to fit in one segment.)
create("rb", {"segment.bytes": "1024", "retention.bytes": "3000",
              "max.message.bytes": "900"})
for i in range(40):
    assert produce("rb", b"%03d" % i + b"r" * 200) is None
out["rb_watermarks"] = wait_low("rb", 1)
out["rb_read_first"] = read_all("rb")[0][0]

# segment.ms and retention.ms: five records 300 ms apart each roll a segment (segment.ms 100);
# once older than retention.ms (3 s) their segments are deleted, and the later record stays.
create("rm", {"segment.ms": "100", "retention.ms": "3000"})
for i in range(5):
    assert produce("rm", b"old-%d" % i) is None
    time.sleep(0.3)
time.sleep(1.5)
assert produce("rm", b"new") is None
out["rm_watermarks"] = wait_low("rm", 5)
out["rm_read"] = [v for _, v in read_all("rm")]

consumer.close()
print(json.dumps(out))
