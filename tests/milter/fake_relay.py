#!/usr/bin/env python3
"""A stand-in for dime-relayd's two local services, for the milter's miltertest scenarios.

  fake_relay.py LOOKUP_SOCK SUBMIT_SOCK TABLE_DIR SPOOL_DIR

Lookup (daemonlib/LOOKUP.md): `LOOKUP name [local]` is answered with the text of the file
TABLE_DIR/<name> (key=value lines; the empty line that ends the answer is added). A file
holding the single word CLOSE makes the service close the connection without an answer (a
relay that dies mid-answer). Unknown names get outcome=tempfail.

Submission (daemonlib/SUBMIT.md): the request is parsed strictly; every message is written
to SPOOL_DIR/<n>.<recipient>.dmsg and the header lines to SPOOL_DIR/<n>.request, and the
reply is `250 2.0.0 queued <sid> <count>`. When SPOOL_DIR/REPLY exists, its first line is
the reply instead and nothing is stored. Requests are numbered from 1. When SPOOL_DIR/DROP
exists, the next request is stored and answered with the first line of DROP, or, when it is
empty, the connection closed without a reply (a relay that commits and dies before answering);
DROP is removed, and a later request with the same key (queue-id, message-id, recipients)
gets `250 2.0.0 duplicate <sid> <count>`, as the relay's.
"""
import os
import socket
import sys
import threading

lookup_path, submit_path, table, spool = sys.argv[1:5]
count = 0
lock = threading.Lock()
dropped = {}  # key of a request stored without a reply -> (sid, count)


def read_line(f, limit=1100):
    line = f.readline(limit)
    if not line.endswith(b"\n"):
        raise ValueError("unterminated line")
    return line[:-1].decode("ascii")


def lookup(conn):
    with conn, conn.makefile("rb") as f:
        words = read_line(f, 700).split(" ")
        if len(words) not in (2, 3) or words[0] != "LOOKUP" or "/" in words[1]:
            conn.sendall(b"outcome=refused\nreason=bad request\n\n")
            return
        path = os.path.join(table, words[1].lower())
        if not os.path.exists(path):
            conn.sendall(b"outcome=tempfail\nreason=not in the test table\n\n")
            return
        text = open(path, "rb").read()
        if text.strip() == b"CLOSE":
            return
        conn.sendall(text.rstrip(b"\n") + b"\n\n")


def submit(conn):
    global count
    with conn, conn.makefile("rb") as f:
        try:
            if read_line(f) != "DIME-SUBMIT 1":
                raise ValueError("version line")
            head = [read_line(f) for _ in range(3)]
            keys = [h.split(" ", 1)[0] for h in head]
            if keys != ["queue-id", "message-id", "messages"]:
                raise ValueError("header lines " + repr(keys))
            n = int(head[2].split(" ")[1])
            msgs = []
            for _ in range(n):
                w = read_line(f).split(" ")
                if len(w) != 4 or w[0] != "message":
                    raise ValueError("message line")
                data = f.read(int(w[3]))
                if len(data) != int(w[3]):
                    raise ValueError("short data")
                msgs.append((w[1], w[2], data))
            if read_line(f) != "end":
                raise ValueError("no end line")
        except (ValueError, IndexError) as e:
            conn.sendall(("500 5.5.2 %s\n" % e).encode())
            return
        reply_file = os.path.join(spool, "REPLY")
        if os.path.exists(reply_file):
            conn.sendall(open(reply_file, "rb").read().split(b"\n")[0] + b"\n")
            return
        key = (head[0], head[1], tuple(sorted(m[1] for m in msgs)))
        drop = os.path.join(spool, "DROP")
        with lock:
            if key in dropped:
                conn.sendall(("250 2.0.0 duplicate %016x %d\n" % dropped[key]).encode())
                return
            count += 1
            k = count
            drop_reply = None
            if os.path.exists(drop):
                drop_reply = open(drop, "rb").read().split(b"\n")[0]
                os.unlink(drop)
                dropped[key] = (k, n)
        for sender, rcpt, data in msgs:
            with open(os.path.join(spool, "%d.%s.dmsg" % (k, rcpt)), "wb") as o:
                o.write(data)
        with open(os.path.join(spool, "%d.request" % k), "w") as o:
            o.write("\n".join(head) + "\n")
            for sender, rcpt, data in msgs:
                o.write("message %s %s %d\n" % (sender, rcpt, len(data)))
        if drop_reply:
            conn.sendall(drop_reply + b"\n")
        elif drop_reply is None:
            conn.sendall(("250 2.0.0 queued %016x %d\n" % (k, n)).encode())


def serve(path, handler):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    s.bind(path)
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


threading.Thread(target=serve, args=(submit_path, submit), daemon=True).start()
serve(lookup_path, lookup)
