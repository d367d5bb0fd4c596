"""Read a whole topic from offset 0 of every partition; print every (partition, offset, value)."""
import json, sys, time
from confluent_kafka import Consumer, TopicPartition

bs, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": bs, "group.id": "reader", "enable.auto.commit": False, "enable.partition.eof": True})
c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
got, eof, deadline = [], set(), time.time() + 30
while len(eof) < partitions and time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        if m.error().code() == -191:  # _PARTITION_EOF
            eof.add(m.partition())
        continue
    got.append([m.partition(), m.offset(), m.value().decode()])
c.close()
print(json.dumps(got))
