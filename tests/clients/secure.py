"""Produce and consume over a secured listener (docs/security.md), as an application would
configure its client. Prints one JSON line.

  secure.py FAMILY BOOTSTRAP PROTOCOL MECHANISM USER PASSWORD CA TOPIC N

FAMILY is confluent (librdkafka) or kafka-python; PROTOCOL is SSL, SASL_PLAINTEXT or SASL_SSL;
MECHANISM is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (ignored for SSL); CA is the PEM file of the
CA that signed the broker's certificate ("-" for none). The JSON says how many records were
produced and read back, or the error the client reported.
"""
import json, sys, time


def confluent(bs, proto, mech, user, password, ca, topic, n):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    conf = {"bootstrap.servers": bs, "security.protocol": proto}
    if proto.startswith("SASL"):
        conf.update({"sasl.mechanism": mech, "sasl.username": user, "sasl.password": password})
    if ca != "-":
        conf["ssl.ca.location"] = ca
    errors = []
    conf["error_cb"] = lambda e: errors.append(e.str())
    p = Producer(dict(conf, **{"message.timeout.ms": 15000}))
    delivered = []
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, partition=0,
                  on_delivery=lambda err, m: delivered.append(err))
    p.flush(20)
    failed = [str(e) for e in delivered if e is not None]
    if failed or len(delivered) < n:
        return {"produced": len(delivered) - len(failed), "errors": errors + failed}
    c = Consumer(dict(conf, **{"group.id": "secure-" + topic, "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + 30
    while len(got) < n and time.time() < deadline:
        for m in c.consume(100, 0.5):
            if m.error() is None:
                got.append(m.value().decode())
    c.close()
    return {"produced": n, "consumed": got, "errors": errors}


def kafka_python(bs, proto, mech, user, password, ca, topic, n):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError
    conf = {"bootstrap_servers": bs, "security_protocol": proto}
    if proto.startswith("SASL"):
        conf.update({"sasl_mechanism": mech, "sasl_plain_username": user,
                     "sasl_plain_password": password})
    if ca != "-":
        conf["ssl_cafile"] = ca
        conf["ssl_check_hostname"] = False
    import logging
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())
    logging.getLogger("kafka").addHandler(Keep(level=logging.ERROR))
    try:
        p = KafkaProducer(request_timeout_ms=10000, max_block_ms=15000, **conf)
        for i in range(n):
            p.send(topic, value=b"v%d" % i, partition=0).get(timeout=20)
        p.close()
    except KafkaError as e:
        return {"produced": 0, "errors": [type(e).__name__ + ": " + str(e)] + seen}
    c = KafkaConsumer(**conf)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got, deadline = [], time.time() + 30
    while len(got) < n and time.time() < deadline:
        for records in c.poll(timeout_ms=500).values():
            got.extend(r.value.decode() for r in records)
    c.close()
    return {"produced": n, "consumed": got, "errors": []}


if __name__ == "__main__":
    family, bs, proto, mech, user, password, ca, topic, n = sys.argv[1:10]
    run = {"confluent": confluent, "kafka-python": kafka_python}[family]
    print(json.dumps(run(bs, proto, mech, user, password, ca, topic, int(n))))
