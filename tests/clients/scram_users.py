"""SCRAM users managed as an operator would with Kafka (KIP-554), through confluent-kafka's
AdminClient. Prints one JSON line.

  scram_users.py ADMIN_BOOTSTRAP ADMIN_PROTOCOL ADMIN_USER ADMIN_PASSWORD ACTION USER [PASSWORD]

The admin connection uses SCRAM-SHA-512 when ADMIN_PROTOCOL is SASL_PLAINTEXT, nothing on
PLAINTEXT. ACTION is `add` (a SCRAM-SHA-512 credential with 8192 iterations), `delete` or
`describe` (USER may be `-` for every user). The JSON has the per-user error (null on success)
and, for describe, each user's mechanisms and iteration counts.
"""
import json, sys
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)


def main():
    bs, proto, admin_user, admin_pw, action, user = sys.argv[1:7]
    password = sys.argv[7] if len(sys.argv) > 7 else None
    conf = {"bootstrap.servers": bs, "security.protocol": proto}
    if proto.startswith("SASL"):
        conf.update({"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": admin_user,
                     "sasl.password": admin_pw})
    admin = AdminClient(conf)
    out = {}
    if action in ("add", "delete"):
        if action == "add":
            info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
            alt = UserScramCredentialUpsertion(user, info, password.encode())
        else:
            alt = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
        for u, f in admin.alter_user_scram_credentials([alt], request_timeout=20).items():
            try:
                f.result()
                out[u] = None
            except Exception as e:  # the KafkaException carries Kafka's error name
                out[u] = str(e.args[0].name() if e.args else e)
    else:
        users = None if user == "-" else [user]
        try:
            res = admin.describe_user_scram_credentials(users, request_timeout=20)
            # One future per user when users were named; one for all otherwise.
            if isinstance(res, dict):
                items = {}
                for u, f in res.items():
                    try:
                        items[u] = f.result()
                    except Exception as e:
                        out[u] = {"error": str(e.args[0].name() if e.args else e)}
            else:
                items = res.result()
            for u, d in items.items():
                out[u] = {"credentials": [[str(i.mechanism.name), i.iterations]
                                          for i in d.scram_credential_infos]}
        except Exception as e:
            out["error"] = str(e.args[0].name() if e.args else e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
