"""Produce to one partition with acks=all and idempotence (confluent-kafka) for SECONDS, a
record every GAP ms, and time every acknowledgement: the longest stretch with no acknowledged
record is the pause a broker's stop cost the producer.

  shutdown.py produce BOOTSTRAP TOPIC SECONDS PREFIX GAP_MS

Prints one JSON document: the acknowledged values in order, the records that failed, how many
were unanswered, and the longest gap between two acknowledgements (ms) with when it began
(unix ms). The loop is bounded by SECONDS and the final flush by 90 s.
"""
import json, sys, time
from confluent_kafka import Producer

mode, bs, topic = sys.argv[1], sys.argv[2], sys.argv[3]
assert mode == "produce", mode
seconds, prefix, gap = float(sys.argv[4]), sys.argv[5], int(sys.argv[6]) / 1000
# Retried until the delivery timeout, so a leader's failover is waited out; idempotence
# (KIP-98) keeps a retried batch from being written twice.
p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True,
              "message.timeout.ms": 60000, "linger.ms": 0, "retry.backoff.ms": 50})
acked, failed, times = [], [], []

def report(err, m):
    if err is None:
        acked.append(m.value().decode())
        times.append(time.time())
    else:
        failed.append([m.value().decode(), err.name()])

i, end = 0, time.time() + seconds
while time.time() < end:
    p.produce(topic, partition=0, value=f"{prefix}-{i}".encode(), on_delivery=report)
    i += 1
    p.poll(gap)
left = p.flush(90)
gaps = [(b - a, a) for a, b in zip(times, times[1:])]
longest, at = max(gaps) if gaps else (0, 0)
print(json.dumps({"acked": acked, "failed": failed, "unfinished": left, "sent": i,
                  "max_gap_ms": round(longest * 1000), "max_gap_at_ms": round(at * 1000)}))
