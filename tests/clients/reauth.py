"""Produce and consume across several SASL re-authentications (KIP-368): a confluent-kafka
(librdkafka) producer writes one record every 100 ms for SECONDS seconds while a consumer
reads them, both logged in on connections the broker gives a short session lifetime
(`connections.max.reauth.ms`). Prints one JSON line.

  reauth.py BOOTSTRAP MECHANISM USER PASSWORD TOPIC SECONDS

librdkafka logs in again on the same connection before each lifetime ends; a connection that
did not would be closed by the broker at its next request, which the clients would report as
errors (error_cb) and the records as late or lost.
"""
import json, sys, time

from confluent_kafka import Consumer, Producer, TopicPartition


def main(bs, mech, user, password, topic, seconds):
    conf = {"bootstrap.servers": bs, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mech, "sasl.username": user, "sasl.password": password}
    errors = []
    conf["error_cb"] = lambda e: errors.append(e.str())
    p = Producer(dict(conf, **{"message.timeout.ms": 15000, "linger.ms": 0}))
    c = Consumer(dict(conf, **{"group.id": "reauth-" + topic, "enable.auto.commit": False,
                               "fetch.wait.max.ms": 100}))
    c.assign([TopicPartition(topic, 0, 0)])
    delivered, got = [], []
    n, end = 0, time.time() + seconds
    while time.time() < end:
        p.produce(topic, value=b"v%d" % n, partition=0,
                  on_delivery=lambda err, m: delivered.append(err))
        n += 1
        p.poll(0)
        for m in c.consume(100, 0.1):
            if m.error() is None:
                got.append(m.value().decode())
    p.flush(20)
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        for m in c.consume(100, 0.2):
            if m.error() is None:
                got.append(m.value().decode())
    c.close()
    failed = [str(e) for e in delivered if e is not None]
    return {"produced": len(delivered) - len(failed), "sent": n, "consumed": got,
            "errors": errors + failed}


if __name__ == "__main__":
    bs, mech, user, password, topic, seconds = sys.argv[1:7]
    print(json.dumps(main(bs, mech, user, password, topic, float(seconds))))
