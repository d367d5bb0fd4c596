"""Leader elections with confluent-kafka's AdminClient.elect_leaders (KIP-460).

  elect.py elect BOOTSTRAP preferred|unclean TOPIC PARTITION [PARTITION...]

Prints one JSON document: each partition's outcome, null for elected or the Kafka error's
name (ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ...), or a whole-request error.
"""
import json, sys
from confluent_kafka import ElectionType, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

mode, bs, kind, topic = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
assert mode == "elect", mode
partitions = [TopicPartition(topic, int(p)) for p in sys.argv[5:]]
election = ElectionType.PREFERRED if kind == "preferred" else ElectionType.UNCLEAN
admin = AdminClient({"bootstrap.servers": bs})
try:
    got = admin.elect_leaders(election, partitions).result(timeout=30)
except KafkaException as e:
    print(json.dumps({"error": e.args[0].name()}))
    sys.exit(0)
out = {}
for tp, err in got.items():
    name = f"{tp.topic}-{tp.partition}"
    if err is None:
        out[name] = None
    else:
        e = err.args[0] if isinstance(err, KafkaException) else err
        out[name] = e.name() if hasattr(e, "name") else str(e)
print(json.dumps({"results": out}))
