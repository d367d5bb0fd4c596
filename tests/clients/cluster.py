"""Real clients against a three-broker gregor cluster (tests/it/cluster.rs).

Every mode prints one JSON document on its last line. Loops are bounded in time.

  brokers BS                     Metadata's broker list: [[id, host, port], ...] (confluent-kafka)
  create BS TOPIC N [RF MIN_ISR] CreateTopics through confluent-kafka's AdminClient (replication
                                 factor RF and min.insync.replicas=MIN_ISR if given), retried while
                                 the cluster answers with a retriable error (a controller
                                 failover); then waits until every partition has a leader and
                                 prints {partition: leader}
  produce BS TOPIC N PREFIX [GAP_MS]
                                 N keyed records with acks=all and idempotence (confluent-kafka),
                                 one every GAP_MS if given; prints the acknowledged values per
                                 partition in acknowledgement order, the failures and how many
                                 were left unanswered
  group BS TOPIC GROUP N         a kafka-python consumer in GROUP reads N records and commits;
                                 prints the values read and the group's coordinator (AdminClient)
  coordinator BS GROUP           the group's coordinator id (DescribeConsumerGroups answers it
                                 for a group that does not exist yet too)
  read BS TOPIC N                every record of every partition from offset 0 (confluent-kafka,
                                 assign): prints [[partition, offset, value], ...]
"""
import json, sys, time
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

mode, bs = sys.argv[1], sys.argv[2]


def brokers():
    md = AdminClient({"bootstrap.servers": bs}).list_topics(timeout=10)
    return sorted([b.id, b.host, b.port] for b in md.brokers.values())


def leaders(admin, topic, n, deadline):
    """Wait until Metadata shows all n partitions of topic with a leader."""
    while time.time() < deadline:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == n and all(
            p.leader >= 0 for p in t.partitions.values()
        ):
            return {str(p.id): p.leader for p in t.partitions.values()}
        time.sleep(0.2)
    raise SystemExit(f"{topic}: not every partition has a leader after the deadline")


if mode == "brokers":
    print(json.dumps(brokers()))
elif mode == "create":
    topic, n = sys.argv[3], int(sys.argv[4])
    rf = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    config = {"min.insync.replicas": sys.argv[6]} if len(sys.argv) > 6 else {}
    admin = AdminClient({"bootstrap.servers": bs})
    deadline, errors = time.time() + 40, []
    while True:
        try:
            new = NewTopic(topic, num_partitions=n, replication_factor=rf, config=config)
            admin.create_topics([new])[topic].result(15)
            break
        except KafkaException as e:
            err = e.args[0]
            errors.append(err.name())
            if err.name() == "TOPIC_ALREADY_EXISTS":
                break  # an earlier attempt's records were committed after all
            if not err.retriable() and err.name() not in ("NOT_CONTROLLER", "REQUEST_TIMED_OUT"):
                raise
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    print(json.dumps({"leaders": leaders(admin, topic, n, time.time() + 30), "errors": errors}))
elif mode == "produce":
    topic, n, prefix = sys.argv[3], int(sys.argv[4]), sys.argv[5]
    gap = int(sys.argv[6]) / 1000 if len(sys.argv) > 6 else 0
    # Retried until the delivery timeout: a leader's failover is waited out, and idempotence
    # (KIP-98) keeps a retried batch from being written twice.
    p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True,
                  "message.timeout.ms": 60000})
    acked, failed = {}, []

    def report(err, m):
        if err is None:
            acked.setdefault(str(m.partition()), []).append(m.value().decode())
        else:
            failed.append([m.value().decode(), err.name()])

    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"{prefix}-{i}".encode(), on_delivery=report)
        p.poll(gap)
    left = p.flush(90)
    print(json.dumps({"acked": acked, "failed": failed, "unfinished": left}))
elif mode == "group":
    from kafka import KafkaConsumer
    topic, group, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
    c = KafkaConsumer(topic, bootstrap_servers=bs.split(","), group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=1000)
    got, deadline = [], time.time() + 60
    while len(got) < n and time.time() < deadline:
        for m in c:
            got.append(m.value.decode())
            if len(got) >= n:
                break
    c.commit()
    c.close()
    admin = AdminClient({"bootstrap.servers": bs})
    desc = admin.describe_consumer_groups([group])[group].result(15)
    print(json.dumps({"values": got, "coordinator": desc.coordinator.id}))
elif mode == "coordinator":
    group, deadline = sys.argv[3], time.time() + 30
    admin = AdminClient({"bootstrap.servers": bs})
    while True:
        try:
            desc = admin.describe_consumer_groups([group])[group].result(10)
            print(json.dumps({"coordinator": desc.coordinator.id}))
            break
        except KafkaException:
            # COORDINATOR_NOT_AVAILABLE while __consumer_offsets is being created.
            if time.time() > deadline:
                raise
            time.sleep(0.5)
elif mode == "read":
    topic, n = sys.argv[3], int(sys.argv[4])
    c = Consumer({"bootstrap.servers": bs, "group.id": "reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(n)])
    got, eof, deadline = [], set(), time.time() + 40
    while len(eof) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                eof.add(m.partition())
            continue
        got.append([m.partition(), m.offset(), m.value().decode()])
    c.close()
    print(json.dumps({"records": got, "eof": sorted(eof)}))
else:
    raise SystemExit(f"unknown mode {mode}")
