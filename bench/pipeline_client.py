#!/usr/bin/env python3
"""SMTP load client of bench/pipeline.sh: submits COUNT messages over CONNS parallel SMTP
sessions, then watches a Maildir until every one of them was delivered.

  pipeline_client.py HOST PORT FROM TO COUNT SIZE CONNS TAG MAILDIR TIMEOUT LATFILE [paced]

Each message is about SIZE bytes (header fields + a text body of 76-column lines) and carries
Message-ID <TAG.I@bench.invalid>, which the DIME path restores byte for byte, so a delivered
file is matched to its submission by that field. Per message: t_sub = wall clock right after
the server's 250 to the end of DATA, t_del = mtime of the Maildir file (the virtual(8) delivery
agent writes it once and renames it into new/). Prints one line:

  rate=MSG/S p50=MS p99=MS submit=S total=S dimepass=K cpu=S

rate = COUNT / (last delivery - start of the first session); latencies in milliseconds;
dimepass = delivered files with an Authentication-Results field saying dime=pass; cpu = the
client's own CPU time (user + system).
LATFILE gets "I latency_ms" lines. Exit status 1 if not all were delivered within TIMEOUT s.
"paced": one session, and each message is submitted only after the previous one was
delivered, so the latencies are those of an idle pipeline (no queueing behind other messages).
"""
import os
import random
import smtplib
import string
import sys
import threading
import time


def body_lines(size, seed):
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "+/"
    out, n = [], 0
    while n < size:
        line = "".join(rnd.choice(alphabet) for _ in range(76))
        out.append(line)
        n += 78
    return "\r\n".join(out) + "\r\n"


def message(mfrom, rcpt, tag, i, body):
    head = (f"From: <{mfrom}>\r\nTo: <{rcpt}>\r\nSubject: pipeline bench\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: <{tag}.{i}@bench.invalid>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n")
    return (head + body).encode()


def scan(maildir, tag, found, dimepass):
    needle = f"Message-ID: <{tag}.".encode()
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for name in names:
            if (sub, name) in found["seen"]:
                continue
            path = os.path.join(d, name)
            try:
                st = os.stat(path)
                with open(path, "rb") as f:
                    head = f.read(65536).split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
            except FileNotFoundError:
                continue  # moved from new/ to cur/ meanwhile: found on the next scan
            found["seen"].add((sub, name))
            for line in head.split(b"\n"):
                if line.startswith(needle):
                    i = int(line[len(needle):].split(b"@", 1)[0])
                    if i not in found["t"]:
                        found["t"][i] = st.st_mtime_ns / 1e9
                        if b"; dime=pass " in head:
                            dimepass[0] += 1
                    break


def pct(sorted_vals, p):
    # nearest rank
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def main():
    if len(sys.argv) not in (12, 13) or (len(sys.argv) == 13 and sys.argv[12] != "paced"):
        sys.exit(__doc__)
    paced = len(sys.argv) == 13
    host, port, mfrom, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    count, size, conns = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    tag, maildir, timeout, latfile = sys.argv[8], sys.argv[9], float(sys.argv[10]), sys.argv[11]
    body = body_lines(max(0, size - 250), size)
    msgs = [message(mfrom, rcpt, tag, i, body) for i in range(count)]
    t_sub = [None] * count
    errors = []
    found = {"seen": set(), "t": {}}
    dimepass = [0]
    nexti = [0]
    lock = threading.Lock()

    def worker():
        try:
            s = smtplib.SMTP(host, port, local_hostname="client.alice.test", timeout=120)
            while True:
                with lock:
                    i = nexti[0]
                    nexti[0] += 1
                if i >= count:
                    break
                s.sendmail(mfrom, [rcpt], msgs[i])
                t_sub[i] = time.time()
                while paced and i not in found["t"] and time.time() < t_sub[i] + timeout:
                    time.sleep(0.002)
                    scan(maildir, tag, found, dimepass)
            s.quit()
        except Exception as e:  # reported below; the run fails
            errors.append(repr(e))

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(1 if paced else conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_submitted = time.time()
    if errors or None in t_sub:
        print(f"pipeline_client: submission failed: {errors[:3]}", file=sys.stderr)
        return 1
    deadline = time.time() + timeout
    while len(found["t"]) < count and time.time() < deadline:
        scan(maildir, tag, found, dimepass)
        if len(found["t"]) < count:
            time.sleep(0.02)
    if len(found["t"]) < count:
        print(f"pipeline_client: {len(found['t'])} of {count} delivered after {timeout} s",
              file=sys.stderr)
        return 1
    lat = sorted((found["t"][i] - t_sub[i]) * 1000 for i in range(count))
    last = max(found["t"].values())
    with open(latfile, "w") as f:
        for i in range(count):
            f.write(f"{i} {(found['t'][i] - t_sub[i]) * 1000:.1f}\n")
    cpu = os.times()
    print(f"rate={count / (last - t0):.1f} p50={pct(lat, 50):.0f} p99={pct(lat, 99):.0f} "
          f"submit={t_submitted - t0:.2f} total={last - t0:.2f} dimepass={dimepass[0]} "
          f"cpu={cpu.user + cpu.system:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
