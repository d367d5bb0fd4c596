"""Conformance checks found by running librdkafka's own test suite against gregor (issue 8).
Each subcommand drives confluent-kafka (librdkafka 2.16) and prints one JSON line.

  fetch_max_bytes BOOTSTRAP TOPIC MESSAGES  read a large partition with fetch.max.bytes=1000000
  offsets_for_times BOOTSTRAP TOPIC CODEC   records at distinct timestamps inside one batch
  static_fence BOOTSTRAP TOPIC GROUP        two consumers share one group.instance.id
  roundrobin BOOTSTRAP TOPIC GROUP          two consumers prefer roundrobin over range
"""
import json, sys, threading, time
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition


def fetch_max_bytes(bs, topic, n):
    """KIP-74: the response to a fetch is bounded by fetch.max.bytes; librdkafka refuses a
    response larger than receive.message.max.bytes ("Invalid response size")."""
    n = int(n)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 50, "batch.size": 900000,
                  "compression.type": "none"})
    value = b"v" * 1000
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    errors = []
    c = Consumer({"bootstrap.servers": bs, "group.id": "kip74", "enable.auto.commit": False,
                  "fetch.max.bytes": 1000000, "max.partition.fetch.bytes": 20000000,
                  "receive.message.max.bytes": 1000512, "enable.partition.eof": True,
                  "error_cb": lambda e: errors.append(str(e))})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = 0, time.time() + 60
    while got < n and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error() is None:
                got += 1
    c.close()
    return {"produced": n, "consumed": got, "errors": errors}


def offsets_for_times(bs, topic, codec):
    """Three records at t0, t0+10, t0+20 in one batch: librdkafka's offsets-for-times test
    expects the first record at or after the target, not the batch's first offset."""
    p = Producer({"bootstrap.servers": bs, "linger.ms": 2000, "compression.type": codec})
    t0 = 1_700_000_000_000
    for i in range(3):
        p.produce(topic, value=b"r%d" % i * 50, partition=0, timestamp=t0 + 10 * i)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bs, "group.id": "oft"})
    answers = {}
    for delta in [0, 5, 10, 11, 20, 21]:
        tp = c.offsets_for_times([TopicPartition(topic, 0, t0 + delta)], timeout=10)[0]
        assert tp.error is None, tp.error
        answers[str(delta)] = tp.offset
    # Where a consumer lands reading from the offset for t0+5: the record at t0+10.
    first = None
    c.assign([TopicPartition(topic, 0, answers["5"])])
    deadline = time.time() + 10
    while first is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            first = [m.offset(), m.timestamp()[1] - t0]
    c.close()
    return {"answers": answers, "first": first}


def wait_assigned(c, seconds=30):
    deadline = time.time() + seconds
    while not c.assignment() and time.time() < deadline:
        c.poll(0.2)
    return sorted(tp.partition for tp in c.assignment())


def static_fence(bs, topic, group):
    """KIP-345: a second consumer joining with the same group.instance.id fences the first,
    whose next heartbeat, sync or commit gets FENCED_INSTANCE_ID: fatal to librdkafka."""
    errors = {"a": [], "b": []}

    def conf(who):
        def on_error(e):
            errors[who].append({"code": e.code(), "name": e.name(), "fatal": e.fatal(),
                                "str": e.str()})
        return {"bootstrap.servers": bs, "group.id": group, "group.instance.id": "same",
                "session.timeout.ms": 6000, "heartbeat.interval.ms": 300,
                "auto.offset.reset": "earliest", "error_cb": on_error}

    a = Consumer(conf("a"))
    a.subscribe([topic])
    a_assigned = wait_assigned(a)
    b = Consumer(conf("b"))
    b.subscribe([topic])
    # Keep both polling: the fenced member hears of it on its next heartbeat.
    stop = time.time() + 15
    b_assigned = []
    while time.time() < stop and not any(e["fatal"] for e in errors["a"]):
        for c, who in [(a, "a"), (b, "b")]:
            m = c.poll(0.1)
            if m is not None and m.error() is not None:
                e = m.error()
                errors[who].append({"code": e.code(), "name": e.name(), "fatal": e.fatal(),
                                    "str": e.str()})
        b_assigned = sorted(tp.partition for tp in b.assignment())
    fatal = a.fatal_error() if hasattr(a, "fatal_error") else None
    for c in (a, b):
        try:
            c.close()
        except Exception:
            pass
    return {"a_assigned": a_assigned, "b_assigned": b_assigned, "errors": errors,
            "fenced_code": KafkaError.FENCED_INSTANCE_ID}


def roundrobin(bs, topic, group):
    """Members listing roundrobin,range: each votes for its first choice, so roundrobin wins
    (Kafka's GroupMetadata.selectProtocol)."""
    cs = [Consumer({"bootstrap.servers": bs, "group.id": group, "client.id": "c%d" % i,
                    "partition.assignment.strategy": "roundrobin,range",
                    "session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
          for i in range(2)]
    for c in cs:
        c.subscribe([topic])
    deadline = time.time() + 30
    while time.time() < deadline:
        for c in cs:
            c.poll(0.1)
        a = [sorted(tp.partition for tp in c.assignment()) for c in cs]
        if sum(len(x) for x in a) == 4 and all(a):
            break
    for c in cs:
        c.close()
    # As librdkafka's test 0132 checks it: c0 (the lower member id, as Kafka's member ids
    # start with the client id) gets 0 and 2 under roundrobin, 0 and 1 under range.
    return {"assignments": a, "protocol": "roundrobin" if a == [[0, 2], [1, 3]] else "?"}


cmd, args = sys.argv[1], sys.argv[2:]
print(json.dumps(globals()[cmd](*args)))
