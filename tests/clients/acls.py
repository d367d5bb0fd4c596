"""ACLs with confluent-kafka (docs/security.md, "ACLs"): an admin super user grants alice Write
and Read on topic `orders` and Read on group `g1` with AdminClient.create_acls; bob has
nothing. Prints one JSON line with what each client saw.

  acls.py BOOTSTRAP    (a SASL_PLAINTEXT listener with PLAIN; users admin, alice, bob)
"""
import json, sys, time
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
                                   ResourceType)

bs = sys.argv[1]


def conf(user):
    return {"bootstrap.servers": bs, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user,
            "sasl.password": user + "-secret"}


def produce(user, topic, n):
    p = Producer(dict(conf(user), **{"message.timeout.ms": 10000}))
    results = []
    for i in range(n):
        p.produce(topic, value=b"%s-%d" % (user.encode(), i), partition=0,
                  on_delivery=lambda err, m: results.append(err))
    p.flush(15)
    return [None if e is None else e.name() for e in results]


out = {}
admin = AdminClient(conf("admin"))
for f in admin.create_topics([NewTopic("orders", 1, 1), NewTopic("secret", 1, 1)]).values():
    f.result(15)
A, T, G = AclPermissionType.ALLOW, ResourceType.TOPIC, ResourceType.GROUP
LIT = ResourcePatternType.LITERAL
grants = [
    AclBinding(T, "orders", LIT, "User:alice", "*", AclOperation.WRITE, A),
    AclBinding(T, "orders", LIT, "User:alice", "*", AclOperation.READ, A),
    AclBinding(G, "g1", LIT, "User:alice", "*", AclOperation.READ, A),
]
for f in admin.create_acls(grants).values():
    f.result(15)
alice_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice",
                                None, AclOperation.ANY, AclPermissionType.ANY)
out["described"] = len(admin.describe_acls(alice_filter).result(15))

out["bob_produce"] = produce("bob", "orders", 1)
out["alice_produce"] = produce("alice", "orders", 5)

c = Consumer(dict(conf("alice"), **{"group.id": "g1", "auto.offset.reset": "earliest",
                                     "enable.auto.commit": False}))
c.subscribe(["orders"])
got, deadline = [], time.time() + 30
while len(got) < 5 and time.time() < deadline:
    m = c.poll(0.5)
    if m is not None and m.error() is None:
        got.append(m.value().decode())
try:
    c.commit(asynchronous=False)
    out["alice_commit"] = "ok"
except KafkaException as e:
    out["alice_commit"] = e.args[0].name()
out["alice_consumed"] = got
out["alice_topics"] = sorted(t for t in c.list_topics(timeout=10).topics)
c.close()

# bob in group g1: the group refuses him.
b = Consumer(dict(conf("bob"), **{"group.id": "g1", "enable.auto.commit": False}))
b.subscribe(["orders"])
bob_errors, deadline = [], time.time() + 10
while not bob_errors and time.time() < deadline:
    m = b.poll(0.5)
    if m is not None and m.error() is not None:
        bob_errors.append(m.error().name())
b.close()
out["bob_group"] = bob_errors

group_read = AclBindingFilter(G, "g1", LIT, "User:alice", "*", AclOperation.READ, A)
deleted = admin.delete_acls([group_read])[group_read].result(15)
out["deleted"] = [(str(d.restype), d.name, str(d.operation)) for d in deleted]
time.sleep(1)
out["described_after"] = len(admin.describe_acls(alice_filter).result(15))
print(json.dumps(out))
