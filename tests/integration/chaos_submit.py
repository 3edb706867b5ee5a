#!/usr/bin/env python3
"""The submitting clients of test_chaos.sh: N messages over SMTP, as a real client sends them.

usage: chaos_submit.py HOST PORT FROM RCPT N CLIENTS MARK DEADLINE_S PACE_MS OUT

Message i (1..N) has the subject "chaos S<MARK>-<i>", the body line "chaos B<MARK>-<i>" and the
Message-ID <chaos-<i>.<MARK>@alice.test>; the markers are what test_chaos.sh looks for in
bob's mailbox (and must not find anywhere else). CLIENTS threads take the messages in turn;
each sends one message per connection and sends it again, after a short pause, on a 4xx reply
or a lost connection (the outcome of such an attempt is unknown to the client: this is what a
real client does, and why the gateway must not deliver what it answered with 4xx), until it
gets 250 or 5xx or DEADLINE_S seconds have passed since the start; then it pauses PACE_MS
(so that the flow lasts while daemons are killed) and takes the next message. One line per message to
OUT, in the order they end: "<i> <code> <attempts> <queue id or ->" (code 0: given up at the
deadline).
"""
import random
import smtplib
import sys
import threading
import time


def message(i, mark, sender, rcpt):
    return (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: chaos S{mark}-{i}\r\n"
            f"Date: Mon, 07 Dec 2026 08:00:00 +0000\r\n"
            f"Message-ID: <chaos-{i}.{mark}@alice.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"chaos B{mark}-{i}\r\nsent through the real milter path\r\n").encode()


def attempt(host, port, sender, rcpt, msg):
    """(code, queue id): 0 when the connection failed or was lost without a reply."""
    try:
        with smtplib.SMTP(host, port, local_hostname="client.alice.test", timeout=60) as s:
            code, _ = s.ehlo()
            if code != 250:
                return code, None
            for step in (lambda: s.mail(sender), lambda: s.rcpt(rcpt)):
                code, text = step()
                if code != 250:
                    return code, None
            try:
                code, text = s.data(msg)
            except smtplib.SMTPDataError as e:
                return e.smtp_code, None
            qid = None
            words = text.decode("ascii", "replace").split()
            if "as" in words and words.index("as") + 1 < len(words):
                qid = words[words.index("as") + 1]
            return code, qid
    except (OSError, smtplib.SMTPException):
        return 0, None


def main():
    host, port, sender, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    n, clients, mark, deadline = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], float(sys.argv[8])
    pace = int(sys.argv[9]) / 1000.0
    out = open(sys.argv[10], "w", buffering=1)
    start = time.monotonic()
    todo = list(range(1, n + 1))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            msg = message(i, mark, sender, rcpt)
            tries = 0
            while True:
                tries += 1
                code, qid = attempt(host, port, sender, rcpt, msg)
                if code == 250 or 500 <= code < 600:
                    break
                if time.monotonic() - start > deadline:
                    code = 0
                    break
                time.sleep(0.2 + random.random() * 0.3)
            with lock:
                out.write(f"{i} {code} {tries} {qid or '-'}\n")
            time.sleep(pace)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
