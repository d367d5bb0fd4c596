"""One consumer-group member: consume for a while, commit after processing (at-least-once),
print what it processed, its final assignment and its assignment over time.

`timeline` lists [wall-clock time, sorted partitions] at every change the member saw, so a
test can compare two members at one instant while both were in the group: a member's final
assignment is not that, because whichever member leaves first hands its partitions to the
other (a rebalance, as Kafka does), and the other may see it before it stops."""
import json, sys, time
from confluent_kafka import Consumer, KafkaException

bs, topic, group, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe([topic])
seen, timeline, end = [], [], time.time() + seconds


def note_assignment():
    now = sorted(tp.partition for tp in c.assignment())
    if not timeline or timeline[-1][1] != now:
        timeline.append([time.time(), now])


refused = {}  # partition -> the last processed message whose commit was refused


def commit(m):
    """Commit after processing. A commit while the group rebalances is refused
    (REBALANCE_IN_PROGRESS, or the generation moved on): it is tried again once the partition
    is still ours after the rebalance; if another member owns it by then, that member reads the
    record again (at-least-once). Any other error fails the member."""
    try:
        c.commit(message=m, asynchronous=False)
        refused.pop(m.partition(), None)
    except KafkaException as e:
        if e.args[0].name() not in ("REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION",
                                    "UNKNOWN_MEMBER_ID"):
            raise
        refused[m.partition()] = m


while time.time() < end:
    m = c.poll(0.2)
    note_assignment()
    owned = {tp.partition for tp in c.assignment()}
    for part, old in list(refused.items()):
        if part not in owned:
            del refused[part]
        elif m is None or m.error() or m.partition() != part:
            commit(old)
    if m is None or m.error():
        continue
    seen.append([m.partition(), m.offset(), m.value().decode()])
    commit(m)
note_assignment()
stopped = time.time()
assignment = timeline[-1][1]
c.close()
print(json.dumps({"seen": seen, "assignment": assignment, "timeline": timeline,
                  "stopped": stopped}))
