"""Topic configs through kafka-python's KafkaAdminClient, as an operator changes them in a KRaft
cluster: create a topic, alter retention.ms and min.insync.replicas (AlterConfigs), describe them
back (DescribeConfigs). Prints one JSON object.

usage: topic_configs.py BOOTSTRAP create TOPIC RF | alter TOPIC | describe TOPIC
"""
import json, sys
from kafka import KafkaAdminClient
from kafka.admin import NewTopic, ConfigResource, ConfigResourceType

bs, phase, topic = sys.argv[1], sys.argv[2], sys.argv[3]
k = KafkaAdminClient(bootstrap_servers=bs)
out = {}
if phase == "create":
    import time
    from kafka.errors import InvalidReplicationFactorError
    rf = int(sys.argv[4])
    # A new cluster's brokers register and unfence within seconds: until then RF 3 is refused.
    for attempt in range(100):
        try:
            k.create_topics([NewTopic(topic, num_partitions=2, replication_factor=rf)])
            break
        except InvalidReplicationFactorError:
            if attempt == 99:
                raise
            time.sleep(0.2)
    out["created"] = topic
elif phase == "alter":
    r = ConfigResource(ConfigResourceType.TOPIC, topic,
                       configs={"retention.ms": "7200000", "min.insync.replicas": "2"})
    resp = k.alter_configs([r])
    out["alter"] = json.loads(json.dumps(resp, default=str))
    bad = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"min.insync.replicas": "0"})
    try:
        out["bad"] = str(k.alter_configs([bad]))
    except Exception as e:  # newer kafka-python raises the broker's error
        out["bad"] = "%s %s" % (type(e).__name__, e)
else:
    cfg = k.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    out["configs"] = json.loads(json.dumps(cfg, default=str))
k.close()
print(json.dumps(out))
