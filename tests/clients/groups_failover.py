"""A consumer group's committed offsets through a coordinator failover, with confluent-kafka.

Usage:
  consume BS TOPIC GROUP N COMMIT  read N records of partition 0 in group GROUP, committing
                                   (synchronously) after each of the first COMMIT; then close
                                   without committing the rest (the uncommitted tail):
                                   {"offsets": [...], "committed": next offset committed}
  resume BS TOPIC GROUP END        join GROUP again and read partition 0 from its committed
                                   offset until offset END: {"offsets": [...], "first": ...,
                                   "seconds": time to the first record}
  offsets BS GROUP TOPIC SECONDS   the group's committed offset of partition 0, through
                                   AdminClient.list_consumer_group_offsets (OffsetFetch at the
                                   coordinator), retried until answered or SECONDS pass:
                                   {"offset": ..., "seconds": time until answered, "errors": [...]}
"""
import json, sys, time
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

mode, bs = sys.argv[1], sys.argv[2]


def consumer(group):
    return Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": 6000,
                     "heartbeat.interval.ms": 500})


if mode == "consume":
    topic, group, n, commit_n = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    c = consumer(group)
    c.subscribe([topic])
    offsets, committed, deadline = [], -1, time.time() + 60
    while len(offsets) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        offsets.append(m.offset())
        if len(offsets) <= commit_n:
            # Commit after processing (at-least-once); a synchronous commit returns once the
            # coordinator acknowledged it.
            c.commit(message=m, asynchronous=False)
            committed = m.offset() + 1
    c.close()
    print(json.dumps({"offsets": offsets, "committed": committed}))
elif mode == "resume":
    topic, group, end = sys.argv[3], sys.argv[4], int(sys.argv[5])
    c = consumer(group)
    c.subscribe([topic])
    start = time.time()
    offsets, first_at, deadline = [], None, start + 90
    while (not offsets or offsets[-1] < end - 1) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if first_at is None:
            first_at = time.time() - start
        offsets.append(m.offset())
    c.close()
    print(json.dumps({"offsets": offsets, "first": offsets[0] if offsets else None,
                      "seconds": first_at}))
elif mode == "offsets":
    group, topic, limit = sys.argv[3], sys.argv[4], float(sys.argv[5])
    admin = AdminClient({"bootstrap.servers": bs})
    start, errors = time.time(), []
    while True:
        try:
            req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
            res = admin.list_consumer_group_offsets([req])[group].result(3)
            tp = res.topic_partitions[0]
            if tp.error is not None:
                raise KafkaException(tp.error)
            print(json.dumps({"offset": tp.offset, "seconds": time.time() - start,
                              "errors": errors}))
            break
        except (KafkaException, TimeoutError) as e:
            # NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE while
            # the group's partition of __consumer_offsets gets a new leader and is loaded, or
            # no answer at all while the client still waits on the dead coordinator.
            errors.append(e.args[0].name() if isinstance(e, KafkaException) else "timeout")
            if time.time() - start > limit:
                raise
            # A fresh client: librdkafka may keep waiting on the dead coordinator.
            admin = AdminClient({"bootstrap.servers": bs})
            time.sleep(0.2)
else:
    sys.exit(__doc__)
