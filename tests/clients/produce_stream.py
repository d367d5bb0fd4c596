"""Produce with acks=all until told to stop or the broker dies; append every acknowledged
(partition, offset, value) to a file as it is acknowledged."""
import json, sys, time
from confluent_kafka import Producer

bs, topic, path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 2, "message.timeout.ms": 4000,
              "enable.idempotence": True, "retry.backoff.ms": 50})
f = open(path, "w")
def cb(err, msg):
    if err is None:
        f.write(json.dumps([msg.partition(), msg.offset(), msg.value().decode()]) + "\n")
        f.flush()
i, end = 0, time.time() + seconds
while time.time() < end:
    try:
        p.produce(topic, value=f"value-{i}".encode(), on_delivery=cb)
        i += 1
    except BufferError:
        p.poll(0.05)
    p.poll(0)
    if i % 100 == 0:
        time.sleep(0.005)
p.flush(6)
f.close()
print(json.dumps({"sent": i}))
