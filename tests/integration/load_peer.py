#!/usr/bin/env python3
"""Load test clients for test_load.sh (not part of the product).

  load_peer.py attack ADDR PORT FROM-DOMAIN TO-DOMAIN SECONDS
      Attacks a DX server until SIGTERM or SECONDS, then prints one summary line
      "key=value ...". Every client connects from its own loopback source address
      (127.0.1.x, 127.0.2.x), so max-clients-per-address does not turn them away at once:
        slow      ATTACK_SLOW (200) concurrent TLS clients dripping bytes: half drip a
                  command line a byte a second (never a whole line: idle-timeout cuts them,
                  they come back), half start a message (MAIL SIZE=30000000, RCPT, DATA, a
                  D/MIME header for that length) and drip 64 bytes every 0.5 s (each holds a
                  connection and, below data-spool-threshold, the message's memory)
        sgnt      4 addresses each sending SGNT <TO-DOMAIN> in batches of 20, ATTACK_SGNT_RATE
                  (400) requests a second in all
        oversize  4 times a second: MAIL SIZE above any limit (552), or a message whose
                  header claims 2 GB (552, then 421)
  load_peer.py big ADDR PORT FROM-DOMAIN TO-DOMAIN FILE BYTES-PER-SECOND
      one mail transaction with the D/MIME bytes of FILE, sent in 64 KiB pieces at about
      BYTES-PER-SECOND (a slow link); prints the final reply line and "after S s"
  load_peer.py mail XFER_SUBMIT CONF FROM TO MAILDIR N SECONDS TAG
      messages one after another through the submission service (xfer_submit, one process
      each), at most N and none started after SECONDS; each is timed from the start of its
      submission until a new file is in MAILDIR/new (the recipient's mailbox). Prints
      "latency TAG i seconds" per message and "sent=K" at the end; exit 1 when a submission
      failed or a message did not arrive within 30 s.
"""
import asyncio
import os
import socket
import signal
import ssl
import struct
import subprocess
import sys
import time

DMIME_MAGIC = 1847


def tls_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Attack:
    def __init__(self, addr, port, frm, to, seconds):
        self.addr, self.port, self.frm, self.to = addr, int(port), frm, to
        self.deadline = time.monotonic() + float(seconds)
        self.stop = asyncio.Event()
        self.ctx = tls_ctx()
        self.n = {}

    def count(self, key, k=1):
        self.n[key] = self.n.get(key, 0) + k

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    async def connect(self, src):
        r, w = await asyncio.wait_for(asyncio.open_connection(
            self.addr, self.port, ssl=self.ctx, local_addr=(src, 0)), 10)
        return r, w

    @staticmethod
    async def reply(r):
        while True:
            line = await asyncio.wait_for(r.readline(), 30)
            if not line:
                raise EOFError
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), line

    async def pause(self, s):
        try:
            await asyncio.wait_for(self.stop.wait(), s)
        except asyncio.TimeoutError:
            pass

    async def sessions(self, src, session, cut, gap):
        """Connects from src again and again until the attack ends; session(r, w) runs one
        connection; a connection the server cut counts as cut."""
        while self.running():
            w = None
            try:
                r, w = await self.connect(src)
                await session(r, w)
            except (OSError, EOFError, asyncio.TimeoutError, ssl.SSLError):
                self.count(cut)
            finally:
                if w is not None:
                    w.close()
            await self.pause(gap)

    async def greeted(self, r):
        """A slow client's banner: False (after a pause) when it is not 220."""
        code, _ = await self.reply(r)
        self.count("slow_conn")
        if code != 220:
            self.count("slow_refused_%d" % code)
            await self.pause(1)
        return code == 220

    async def transaction(self, r, w, size_arg):
        """EHLO, MAIL, RCPT and DATA: the last reply code (354 when the message may start)."""
        for cmd in (b"EHLO " + self.frm.encode(),
                    b"MAIL FROM: <%s> [fingerprint]%s" % (self.frm.encode(), size_arg),
                    b"RCPT TO: <%s> [fingerprint]" % self.to.encode(),
                    b"DATA [fingerprint]"):
            w.write(cmd + b"\r\n")
            code, _ = await self.reply(r)
            if code // 100 not in (2, 3):
                break
        return code

    async def drip(self, r, w, piece, every):
        """Sends piece() every `every` seconds until the attack ends or the server answers
        (421 when it gives up) or closes."""
        while self.running():
            w.write(piece())
            await w.drain()
            await self.pause(every)
            if r.at_eof() or len(r._buffer):
                break

    async def slow_command(self, r, w):
        if await self.greeted(r):
            line = iter(b"NOOP" + b"x" * 200)  # never a whole line
            await self.drip(r, w, lambda: bytes([next(line, 0x78)]), 1)

    async def slow_data(self, r, w):
        size = 30000000
        if not await self.greeted(r):
            return
        code = await self.transaction(r, w, b" SIZE=%d" % size)
        if code != 354:
            self.count("slow_data_refused_%d" % code)
            await self.pause(1)
            return
        self.count("slow_data_354")
        w.write(struct.pack(">HI", DMIME_MAGIC, size - 6))
        await self.drip(r, w, lambda: os.urandom(64), 0.5)

    def sgnt(self, rate):
        batch = 20
        line = b"SGNT <%s>\r\n" % self.to.encode()

        async def session(r, w):
            await self.reply(r)
            while self.running():
                t0 = time.monotonic()
                w.write(line * batch)
                for _ in range(batch):
                    code, _ = await self.reply(r)
                    self.count("sgnt_%d" % code)
                await self.pause(max(0.0, batch / rate - (time.monotonic() - t0)))
        return session

    def oversize(self):
        k = [0]

        async def session(r, w):
            k[0] += 1
            await self.reply(r)
            if k[0] % 2:
                w.write(b"EHLO " + self.frm.encode() + b"\r\n")
                await self.reply(r)
                w.write(b"MAIL FROM: <%s> [fingerprint] SIZE=2000000000\r\n" % self.frm.encode())
                code, _ = await self.reply(r)
                self.count("oversize_size_%d" % code)
            else:
                await self.transaction(r, w, b"")
                w.write(struct.pack(">HI", DMIME_MAGIC, 2000000000) + os.urandom(4096))
                code, _ = await self.reply(r)
                self.count("oversize_data_%d" % code)
            w.write(b"QUIT\r\n")
        return session

    async def run(self, nslow, sgnt_rate):
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        tasks = []
        for i in range(nslow):
            src = "127.0.1.%d" % (10 + i // 10)  # 10 clients per address
            f = self.slow_command if i % 2 == 0 else self.slow_data
            tasks.append(asyncio.create_task(self.sessions(src, f, "slow_cut", 0.2)))
            if i % 20 == 19:
                await asyncio.sleep(0.05)  # not all 200 handshakes in one instant
        for i in range(4):
            tasks.append(asyncio.create_task(self.sessions(
                "127.0.2.%d" % (10 + i), self.sgnt(sgnt_rate / 4), "sgnt_cut", 0.2)))
        tasks.append(asyncio.create_task(self.sessions(
            "127.0.2.20", self.oversize(), "oversize_cut", 0.25)))
        print("attack started", flush=True)
        while self.running():
            await self.pause(0.5)
        self.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        print(" ".join("%s=%d" % kv for kv in sorted(self.n.items())), flush=True)


def big(addr, port, frm, to, path, rate):
    data = open(path, "rb").read() + b"\r\n"
    raw = socket.create_connection((addr, int(port)), timeout=60)
    s = tls_ctx().wrap_socket(raw)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                return "closed"
            if line[3:4] != b"-":
                return line.decode(errors="replace").rstrip()

    reply()
    last = ""
    for cmd in (b"EHLO " + frm.encode(),
                b"MAIL FROM: <%s> [fingerprint] SIZE=%d" % (frm.encode(), len(data) - 2),
                b"RCPT TO: <%s> [fingerprint]" % to.encode(), b"DATA [fingerprint]"):
        s.sendall(cmd + b"\r\n")
        last = reply()
        if last[:1] not in ("2", "3"):
            print(last)
            return
    t0 = time.monotonic()
    piece = 65536
    for off in range(0, len(data), piece):
        s.sendall(data[off:off + piece])
        ahead = (off + piece) / float(rate) - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    print("%s after %.1f s" % (reply(), time.monotonic() - t0))


def mail(xfer, conf, frm, to, maildir, n, seconds, tag):
    new = os.path.join(maildir, "new")
    start = time.monotonic()
    sent = 0
    while sent < int(n) and time.monotonic() - start < float(seconds):
        i = sent
        before = len(os.listdir(new)) if os.path.isdir(new) else 0
        t0 = time.monotonic()
        p = subprocess.run([xfer, "-c", conf, "-f", frm, "-t", to, "-q", "%s%dQ" % (tag, i),
                            "-m", "%s-%d" % (tag, i)], capture_output=True, text=True)
        if p.returncode != 0:
            print("submission %d failed: %s %s" % (i, p.stdout.strip(), p.stderr.strip()))
            sys.exit(1)
        sent += 1
        while (len(os.listdir(new)) if os.path.isdir(new) else 0) <= before:
            if time.monotonic() - t0 > 30:
                print("message %d did not arrive within 30 s" % i)
                sys.exit(1)
            time.sleep(0.002)
        print("latency %s %d %.4f" % (tag, i, time.monotonic() - t0), flush=True)
    print("sent=%d" % sent)


if __name__ == "__main__":
    if sys.argv[1] == "attack":
        a = Attack(*sys.argv[2:7])
        asyncio.run(a.run(int(os.environ.get("ATTACK_SLOW", "200")),
                          float(os.environ.get("ATTACK_SGNT_RATE", "400"))))
    elif sys.argv[1] == "big":
        big(*sys.argv[2:9])
    elif sys.argv[1] == "mail":
        mail(*sys.argv[2:10])
    else:
        sys.exit("unknown mode " + sys.argv[1])
