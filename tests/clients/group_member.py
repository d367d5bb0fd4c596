"""One consumer-group member: consume for a while, commit after processing (at-least-once),
print what it processed and its final assignment."""
import json, sys, time
from confluent_kafka import Consumer

bs, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe([topic])
seen, end = [], time.time() + seconds
while time.time() < end:
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    seen.append([m.partition(), m.offset(), m.value().decode()])
    c.commit(message=m, asynchronous=False)
assignment = sorted(tp.partition for tp in c.assignment())
c.close()
print(json.dumps({"seen": seen, "assignment": assignment}))
