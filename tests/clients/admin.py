"""confluent-kafka admin and offsets: create/list/describe topics, configs, offsets by time."""
import json, sys
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource

bs = sys.argv[1]
a = AdminClient({"bootstrap.servers": bs})
out = {}
fs = a.create_topics([NewTopic("admin-t", num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})])
fs["admin-t"].result(10)
dup = a.create_topics([NewTopic("admin-t", num_partitions=3, replication_factor=1)])
try:
    dup["admin-t"].result(10)
    out["duplicate_error"] = None
except Exception as e:
    out["duplicate_error"] = e.args[0].name()
bad = a.create_topics([NewTopic("rf3", num_partitions=1, replication_factor=3)])
try:
    bad["rf3"].result(10)
    out["rf3_error"] = None
except Exception as e:
    out["rf3_error"] = e.args[0].name()
md = a.list_topics(timeout=10)
out["partitions"] = len(md.topics["admin-t"].partitions)
res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "admin-t")])
cfg = list(res.values())[0].result(10)
out["retention.ms"] = cfg["retention.ms"].value
p = Producer({"bootstrap.servers": bs})
for i in range(10):
    p.produce("admin-t", value=b"x", partition=1, timestamp=1_700_000_000_000 + i * 1000)
    p.flush(10)  # one batch per record, so lookups by time are exact
c = Consumer({"bootstrap.servers": bs, "group.id": "admin-g"})
lo, hi = c.get_watermark_offsets(TopicPartition("admin-t", 1), timeout=10)
out["watermarks"] = [lo, hi]
t = c.offsets_for_times([TopicPartition("admin-t", 1, 1_700_000_004_500)], timeout=10)
out["offset_for_time"] = t[0].offset
c.close()
print(json.dumps(out))
