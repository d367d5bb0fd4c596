#!/usr/bin/env python3
"""Capture real clients' request frames as a fuzz seed corpus.

A TCP proxy between a Kafka client and a running gregor: every client connection's bytes
(length-prefixed request frames) are saved as one corpus file, the input format of the
`kafka_request` target (a stream of frames, as one connection sends them).

    gregor serve --data-dir /tmp/g --listen 127.0.0.1:9092 &
    python3 fuzz/capture.py --listen 19092 --upstream 127.0.0.1:9092 --out fuzz/corpus/kafka_request --tag kcat &
    kcat -b 127.0.0.1:19092 -t t -P ...

The broker's Metadata answers name the broker itself, so start gregor with
`--advertised-port 19092` so clients keep talking through the proxy.
"""
import argparse
import hashlib
import os
import socket
import threading


def pump(src, dst, record):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.extend(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(args):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.listen))
    ls.listen(64)
    host, port = args.upstream.rsplit(":", 1)
    os.makedirs(args.out, exist_ok=True)
    while True:
        client, _ = ls.accept()
        upstream = socket.create_connection((host, int(port)))
        sent = bytearray()

        def session(client=client, upstream=upstream, sent=sent):
            back = threading.Thread(target=pump, args=(upstream, client, None))
            back.start()
            pump(client, upstream, sent)
            back.join()
            if sent:
                name = "%s-%s" % (args.tag, hashlib.sha1(sent).hexdigest()[:16])
                with open(os.path.join(args.out, name), "wb") as f:
                    f.write(bytes(sent))

        threading.Thread(target=session, daemon=True).start()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tag", default="client")
    serve(p.parse_args())
