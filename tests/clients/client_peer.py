"""confluent-kafka as the peer of gregor's own client (tests/it/client_cli.rs).

  client_peer.py partitions BOOTSTRAP TOPIC N
      produce key0..key{N-1} with partitioner=murmur2_random (the Java client's partitioner);
      print {key: partition} as JSON.
  client_peer.py mock [BROKERS]
      start librdkafka's in-process mock cluster (one broker, or BROKERS), print the host:port
      of its first broker, and keep it up until stdin closes.
"""
import json, sys
from confluent_kafka import Producer

if sys.argv[1] == "partitions":
    bs, topic, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    p = Producer({"bootstrap.servers": bs, "partitioner": "murmur2_random"})
    got = {}
    def report(err, m):
        if err is None:
            got[m.key().decode()] = m.partition()
    for i in range(n):
        p.produce(topic, key=f"key{i}", value=f"confluent{i}", on_delivery=report)
    assert p.flush(30) == 0, "unflushed records"
    print(json.dumps(got))
elif sys.argv[1] == "mock":
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    p = Producer({"test.mock.num.brokers": n, "bootstrap.servers": ""})
    md = p.list_topics(timeout=10)
    b = min(md.brokers.values(), key=lambda b: b.id)
    print(f"{b.host}:{b.port}", flush=True)
    sys.stdin.read()
