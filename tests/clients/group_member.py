"""One consumer-group member: consume for a while, commit after processing (at-least-once),
print what it processed, its final assignment and its assignment over time.

`timeline` lists [wall-clock time, sorted partitions] at every change the member saw, so a
test can compare two members at one instant while both were in the group: a member's final
assignment is not that, because whichever member leaves first hands its partitions to the
other (a rebalance, as Kafka does), and the other may see it before it stops."""
import json, sys, time
from confluent_kafka import Consumer

bs, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe([topic])
seen, timeline, end = [], [], time.time() + seconds


def note_assignment():
    now = sorted(tp.partition for tp in c.assignment())
    if not timeline or timeline[-1][1] != now:
        timeline.append([time.time(), now])


while time.time() < end:
    m = c.poll(0.2)
    note_assignment()
    if m is None or m.error():
        continue
    seen.append([m.partition(), m.offset(), m.value().decode()])
    c.commit(message=m, asynchronous=False)
note_assignment()
stopped = time.time()
assignment = timeline[-1][1]
c.close()
print(json.dumps({"seen": seen, "assignment": assignment, "timeline": timeline,
                  "stopped": stopped}))
