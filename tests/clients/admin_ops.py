"""The admin APIs behind Kafka's tools, through confluent-kafka's AdminClient and kafka-python's
KafkaAdminClient: create_partitions, delete_records, incremental_alter_configs, describe_configs,
describe_cluster, list/describe groups; kafka-python: create_partitions, delete_records,
delete_group_offsets, describe_log_dirs, describe_producers, describe_configs, describe_cluster. Prints one JSON object of what an operator would check.

usage: admin_ops.py BOOTSTRAP setup | after-restart
"""
import json, sys
from confluent_kafka import Producer, Consumer, TopicPartition, KafkaException
from confluent_kafka.admin import (AdminClient, NewTopic, NewPartitions, ConfigResource,
                                   ConfigEntry, AlterConfigOpType)
from confluent_kafka import ConsumerGroupTopicPartitions

bs, phase = sys.argv[1], sys.argv[2]
a = AdminClient({"bootstrap.servers": bs})
out = {}
TOPIC = "ops"


def error_name(f):
    """The Kafka error name a future fails with, or None if it succeeds."""
    try:
        f.result(15)
        return None
    except KafkaException as e:
        return e.args[0].name()


def topic_config(key):
    res = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, TOPIC)])
    cfg = list(res.values())[0].result(15)
    e = cfg[key]
    return [e.value, e.source]


def first_offset_read(group):
    """The offset a new consumer group starts at on partition 0 (auto.offset.reset=earliest)."""
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0)])
    first = None
    for _ in range(100):
        m = c.poll(0.2)
        if m is not None and not m.error():
            first = m.offset()
            break
    lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
    c.close()
    return first, [lo, hi]


if phase == "setup":
    a.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])[TOPIC].result(15)

    # CreatePartitions: grow 1 -> 3; shrinking and validate_only.
    out["shrink_error"] = error_name(a.create_partitions([NewPartitions(TOPIC, 1)])[TOPIC])
    out["validate_only_error"] = error_name(
        a.create_partitions([NewPartitions(TOPIC, 5)], validate_only=True)[TOPIC])
    out["grow_error"] = error_name(a.create_partitions([NewPartitions(TOPIC, 3)])[TOPIC])
    out["partitions"] = len(a.list_topics(timeout=10).topics[TOPIC].partitions)

    p = Producer({"bootstrap.servers": bs, "linger.ms": 0})
    delivered = []
    p.produce(TOPIC, value=b"to-the-new-partition", partition=2,
              on_delivery=lambda err, m: delivered.append((err is None, m.partition(), m.offset())))
    for i in range(20):
        p.produce(TOPIC, value=b"v%d" % i, partition=0)
        p.flush(10)  # one batch per record
    p.flush(10)
    out["delivered_to_2"] = [d for d in delivered if d[1] == 2]

    # DeleteRecords: everything below offset 12 of partition 0 goes.
    res = a.delete_records([TopicPartition(TOPIC, 0, 12)])
    out["low_watermark"] = list(res.values())[0].result(15).low_watermark
    res = a.delete_records([TopicPartition(TOPIC, 0, 99)])
    out["delete_above_hw_error"] = error_name(list(res.values())[0])
    out["first_offset_read"], out["watermarks"] = first_offset_read("reader-1")

    # Topic configs: an incremental SET, an unknown key, validate_only.
    r = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    out["alter_error"] = error_name(a.incremental_alter_configs([r])[r])
    bad = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("retention.millis", "1", incremental_operation=AlterConfigOpType.SET)])
    out["unknown_key_error"] = error_name(a.incremental_alter_configs([bad])[bad])
    dry = ConfigResource(ConfigResource.Type.TOPIC, TOPIC, incremental_configs=[
        ConfigEntry("retention.bytes", "12345", incremental_operation=AlterConfigOpType.SET)])
    out["validate_only_alter_error"] = error_name(
        a.incremental_alter_configs([dry], validate_only=True)[dry])
    out["retention.ms"] = topic_config("retention.ms")
    out["retention.bytes_source"] = topic_config("retention.bytes")[1]
    broker = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", "1", incremental_operation=AlterConfigOpType.SET)])
    out["broker_alter_error"] = error_name(a.incremental_alter_configs([broker])[broker])

    # DescribeCluster.
    d = a.describe_cluster().result(15)
    out["cluster"] = {"id": d.cluster_id, "nodes": len(d.nodes),
                      "controller": d.controller.id if d.controller else None}

    # Offsets of a group without members: commit, then delete one partition's.
    c = Consumer({"bootstrap.servers": bs, "group.id": "og", "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(TOPIC, 0, 15), TopicPartition(TOPIC, 1, 0)],
             asynchronous=False)
    c.close()
    # (confluent-kafka's Python AdminClient has no OffsetDelete; kafka-python's does.)
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTP
    k = KafkaAdminClient(bootstrap_servers=bs)
    deleted = k.delete_group_offsets("og", [KTP(TOPIC, 1)])
    out["kp_delete_group_offsets"] = {str(tp.partition): str(e) for tp, e in deleted.items()}
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("og")])
    got = list(res.values())[0].result(15)
    out["og_offsets"] = sorted([tp.partition, tp.offset] for tp in got.topic_partitions)
    groups = a.list_consumer_groups().result(15)
    out["groups"] = sorted(g.group_id for g in groups.valid)
    desc = a.describe_consumer_groups(["og"])["og"].result(15)
    out["og_state"] = str(desc.state)

    # kafka-python's admin client on the same broker.
    from kafka.admin import ConfigResource as KCR, ConfigResourceType
    k.create_partitions({TOPIC: 4})
    out["kp_partitions"] = len(k.describe_topics([TOPIC])[0]["partitions"])
    k.delete_records({KTP(TOPIC, 0): 14})
    dirs = k.describe_log_dirs()
    out["kp_log_dirs"] = json.loads(json.dumps(dirs, default=str))
    # kafka-python's producer is idempotent by default: partition 3 then remembers it.
    from kafka import KafkaProducer
    kp = KafkaProducer(bootstrap_servers=bs)
    for i in range(3):
        kp.send(TOPIC, b"idempotent-%d" % i, partition=3).get(10)
    kp.close()
    prods = k.describe_producers([KTP(TOPIC, 3), KTP(TOPIC, 1)])
    out["kp_producers"] = {
        str(tp.partition): [[p.producer_id >= 0, p.last_sequence] for p in v.active_producers]
        for tp, v in prods.items()}
    cfg = k.describe_configs([KCR(ConfigResourceType.TOPIC, TOPIC)])
    out["kp_describe_configs"] = json.loads(json.dumps(cfg, default=str))
    out["kp_cluster"] = json.loads(json.dumps(k.describe_cluster(), default=str))
    k.close()
    out["first_offset_read_after_kp"], _ = first_offset_read("reader-2")
else:
    # After a restart: the start offset and the altered config are still there.
    out["first_offset_read"], out["watermarks"] = first_offset_read("reader-3")
    out["retention.ms"] = topic_config("retention.ms")
    out["partitions"] = len(a.list_topics(timeout=10).topics[TOPIC].partitions)

print(json.dumps(out, default=str))
