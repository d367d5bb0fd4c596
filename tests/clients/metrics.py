"""Produce, consume and commit with confluent-kafka, then scrape gregor's /metrics and parse it
with the Prometheus project's own Python parser (prometheus_client's OpenMetrics parser).

Prints the figures the Rust test checks: records and bytes in and out, requests, fsyncs,
offsets and consumer lag, as one JSON line."""
import json, sys, time, urllib.request
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.openmetrics.parser import text_string_to_metric_families

bs, metrics_url, topic = sys.argv[1], sys.argv[2], sys.argv[3]
n, committed = 500, 300

p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 5})
acked = []
for i in range(n):
    p.produce(topic, value=b"v" * 100, key=str(i).encode(), partition=i % 2,
              on_delivery=lambda err, m: acked.append(err is None))
p.flush(30)
assert len(acked) == n and all(acked), acked.count(False)

# A consumer in group "mg" reads everything, then commits offsets covering 300 records:
# 150 on each partition, so the lag is 100 + 100.
c = Consumer({"bootstrap.servers": bs, "group.id": "mg", "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "enable.partition.eof": True})
c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
read, eof, deadline = 0, set(), time.time() + 30
while len(eof) < 2 and time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        if m.error().code() == -191:  # _PARTITION_EOF
            eof.add(m.partition())
        continue
    read += 1
c.commit(offsets=[TopicPartition(topic, 0, committed // 2), TopicPartition(topic, 1, committed // 2)],
         asynchronous=False)
c.close()

text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
values = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        values[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps({"read": read, "values": values}))
