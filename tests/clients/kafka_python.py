"""kafka-python 3.0.12: its default producer (idempotent against a modern broker) and a
consumer without a group (assign + seek)."""
import json, sys
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

bs = sys.argv[1]
p = KafkaProducer(bootstrap_servers=bs)
futures = [p.send("kp", key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(500)]
p.flush()
offsets = [f.get(timeout=10).offset for f in futures]
idem = bool(p.config.get("enable_idempotence"))
p.close()
c = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, consumer_timeout_ms=3000)
tp = TopicPartition("kp", 0)
c.assign([tp]); c.seek(tp, 0)
got = [(m.offset, m.key.decode(), m.value.decode()) for m in c]
c.close()
print(json.dumps({"idempotent": idem, "offsets": offsets == list(range(500)),
                  "read_back": got == [(i, f"k{i}", f"v{i}") for i in range(500)], "consumed": len(got)}))
