"""confluent-kafka: produce keyed records with headers and explicit timestamps under every
compression codec and acks setting, then read them back and compare byte for byte."""
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition

bs = sys.argv[1]
N = 300
report = {}
for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
    for acks in ["0", "1", "all"]:
        topic = f"codec-{codec}-{acks}"
        p = Producer({"bootstrap.servers": bs, "compression.type": codec, "acks": acks, "linger.ms": 5})
        delivered = []
        p.produce(topic, value=b"warmup")  # creates the topic (auto-create on metadata)
        p.flush(10)
        for i in range(N):
            p.produce(topic, key=f"key-{i}".encode(), value=(f"value-{i}-" * 20).encode(),
                      headers=[("trace", f"t{i}".encode()), ("codec", codec.encode())],
                      timestamp=1_700_000_000_000 + i,
                      on_delivery=lambda err, msg: delivered.append(err is None))
        left = p.flush(30)
        c = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, 1)])
        got, deadline = [], time.time() + 30
        while len(got) < N and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            got.append(m)
        c.close()
        ok = len(got) == N
        for i, m in enumerate(got):
            ok = ok and m.offset() == i + 1 and m.key() == f"key-{i}".encode() \
                and m.value() == (f"value-{i}-" * 20).encode() \
                and m.timestamp()[1] == 1_700_000_000_000 + i \
                and m.headers() == [("trace", f"t{i}".encode()), ("codec", codec.encode())]
        report[f"{codec}/{acks}"] = {"delivered": sum(delivered), "unflushed": left, "consumed": len(got), "ok": ok}
print(json.dumps(report))
