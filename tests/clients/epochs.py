"""Leader epochs (KIP-101, KIP-320) seen by real clients on a standalone broker.

1. kafka-python 3.0.12 and confluent-kafka (librdkafka) consumers in a group read part of a
   topic, commit (the commit carries the leader epoch of the last record read), close, and a
   new consumer of the same group resumes. Both clients validate a committed position that
   carries an epoch with OffsetForLeaderEpoch before fetching from it (KIP-320), so a wrong
   answer would make them reset or re-read.
2. OffsetForLeaderEpoch and ListOffsets sent raw through kafka-python's own request classes,
   answered as Kafka answers them: the end offset of an epoch, (-1, -1) for an epoch the log
   does not know, UNKNOWN_LEADER_EPOCH (76) / FENCED_LEADER_EPOCH (74) for a current leader
   epoch newer / older than the broker's, UNKNOWN_TOPIC_OR_PARTITION (3)."""
import json, sys, time
from confluent_kafka import Consumer, TopicPartition as CkPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.net.compat import KafkaNetClient
from kafka.protocol.consumer.offsets import ListOffsetsRequest, OffsetForLeaderEpochRequest

bs, topic = sys.argv[1], sys.argv[2]
probe_only = sys.argv[3:] == ["probe-only"]  # only the raw requests, on an existing topic
N, FIRST = 100, 60
out = {}

tp = TopicPartition(topic, 0)
if not probe_only:
    p = KafkaProducer(bootstrap_servers=bs, acks="all")
    for i in range(N):
        p.send(topic, value=f"v{i}".encode())
    p.flush()
    p.close()


def kafka_python(group, limit):
    c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=4000)
    got = []
    for m in c:
        got.append(m.offset)
        if len(got) == limit:
            break
    c.commit()
    committed = c.committed(tp, metadata=True)
    c.close()
    return got, committed


if not probe_only:
    got, committed = kafka_python("epochs-kp", FIRST)
    out["kp_first"] = got == list(range(FIRST))
    out["kp_committed"] = [committed.offset, committed.leader_epoch]
    got, _ = kafka_python("epochs-kp", N)
    out["kp_resumed"] = got == list(range(FIRST, N))
    out["kp_resumed_got"] = got[:3] + got[-3:]


def confluent(group, limit):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, idle = [], time.time() + 6
    while len(got) < limit and time.time() < idle:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.offset(), m.leader_epoch()))
        idle = time.time() + 4
    c.commit(asynchronous=False)
    committed = c.committed([CkPartition(topic, 0)], timeout=10)[0]
    c.close()
    return got, committed


if not probe_only:
    got, committed = confluent("epochs-ck", FIRST)
    out["ck_first"] = [o for o, _ in got] == list(range(FIRST))
    out["ck_record_epochs"] = sorted({e for _, e in got})
    out["ck_committed"] = [committed.offset, committed.leader_epoch]
    got, _ = confluent("epochs-ck", N)
    out["ck_resumed"] = [o for o, _ in got] == list(range(FIRST, N))
    out["ck_resumed_got"] = [o for o, _ in got][:3]

# Raw requests.
client = KafkaNetClient(bootstrap_servers=bs)
client.check_version()
node = next(iter(client.cluster.brokers())).node_id
OT = OffsetForLeaderEpochRequest.OffsetForLeaderTopic
OP = OT.OffsetForLeaderPartition


def ofle(current, epoch, name=topic):
    req = OffsetForLeaderEpochRequest(replica_id=-1, topics=[OT(
        topic=name, partitions=[OP(partition=0, current_leader_epoch=current, leader_epoch=epoch)])])
    r = client.send_and_receive(node, req)
    q = r.topics[0].partitions[0]
    return [q.error_code, q.leader_epoch, q.end_offset]


# After a restart the partition has a newer leader epoch (the restarted broker was fenced,
# then elected again, each a new epoch, as in Kafka): the probe names no current epoch then.
current = -1 if probe_only else 0
out["ofle_epoch0"] = ofle(current, 0)
out["ofle_no_current"] = ofle(-1, 0)
out["ofle_unknown_epoch"] = ofle(-1, 7)
out["ofle_newer_current"] = ofle(1, 0)
out["ofle_unknown_topic"] = ofle(-1, 0, "no-such-topic")

LT = ListOffsetsRequest.ListOffsetsTopic
LP = LT.ListOffsetsPartition


def list_offsets(current, timestamp):
    req = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[LT(
        name=topic, partitions=[LP(partition_index=0, current_leader_epoch=current,
                                   timestamp=timestamp)])], min_version=4)
    r = client.send_and_receive(node, req)
    q = r.topics[0].partitions[0]
    return [q.error_code, q.offset, q.leader_epoch]


out["list_latest"] = list_offsets(current, -1)
out["list_earliest"] = list_offsets(-1, -2)
out["list_newer_current"] = list_offsets(3, -1)
client.close()
print(json.dumps(out))
