"""Produce log lines with a `severity` header and chosen timestamps (confluent-kafka), for
the `gregor streams severity` test. Args: bootstrap topic sev:ts_ms ... Prints {"produced": N}."""
import json
import sys

from confluent_kafka import Producer

bootstrap, topic, records = sys.argv[1], sys.argv[2], sys.argv[3:]
p = Producer({"bootstrap.servers": bootstrap})
failed = []
for i, rec in enumerate(records):
    sev, ts = rec.split(":")
    headers = [("severity", sev.encode())] if sev != "-" else []
    p.produce(topic, value=f"line {i}".encode(), headers=headers, timestamp=int(ts),
              on_delivery=lambda err, msg: err and failed.append(str(err)))
    # One at a time, in order: the windows' outcome depends on the order (stream time).
    p.flush(30)
assert not failed, failed
print(json.dumps({"produced": len(records)}))
