#!/usr/bin/env python3
"""DMTP test peer for test_relay.sh (not part of the product).

  dmtp_peer.py fake-dx ADDR PORT CERT KEY MAPFILE READYFILE [dual]
      A DX that answers `SGNT <name>` with the line given for name in MAPFILE
      ("name<TAB>reply line" per line), anything else with 500. Used to serve signets a
      real relay would never serve (tampered bytes, a user of another org). With `dual`,
      it speaks dual mode: a plain banner, STARTTLS <host> MODE=DMTPv1, TLS, 250 OK DMTPv1.
      With `drip`, every other command is answered "250 OK", one byte a second. Each command
      received is written to stderr.
  dmtp_peer.py blackhole ADDR PORT READYFILE
      accepts TCP connections and never sends a byte (a DX host that hangs)
  dmtp_peer.py sgnt ADDR PORT NAME        prints the base64 signet from SGNT
  dmtp_peer.py tamper B64                 flips one bit near the end (inside the last signature)
  dmtp_peer.py robust ADDR PORT CASE      one server robustness case; exit 0 when it behaves
  dmtp_peer.py send ADDR PORT FROM-DOMAIN TO-DOMAIN FILE [flip-offset]
      one DMTP mail transaction with the D/MIME bytes of FILE (one byte XORed with 0x01 at
      flip-offset, counted from the end when negative); prints the final reply line
  dmtp_peer.py drip ADDR PORT FROM-DOMAIN TO-DOMAIN FILE GAP [STOP]
      like send, but the D/MIME bytes go in 64-byte pieces GAP seconds apart (a slow link);
      with STOP, the peer stops sending after STOP bytes and waits for the server; prints
      the final reply line and the seconds from 354 to it ("421 ... after 3.1 s")
  dmtp_peer.py peraddr ADDR PORT N SRC OTHER
      N connections from SRC get the banner; one more from SRC gets 421 and is closed, one
      from OTHER still gets the banner; after one of the N closes, SRC connects again
  dmtp_peer.py sgnts ADDR PORT NAME N
      N SGNT <NAME> requests at once on one connection; prints the reply codes
  dmtp_peer.py stall ADDR PORT NAME
      SGNT <NAME> on one connection, then NOOP on a second one while the first waits (the
      keyvault hangs); prints "noop=CODE in S s sgnt=CODE in S s"
  dmtp_peer.py budget ADDR PORT FROM-DOMAIN SIZE
      two sessions: the first MAIL SIZE=SIZE is accepted, the second gets 431 while the
      first holds its reservation, and 250 once the first said RSET
Client connections come from DMTP_PEER_SOURCE when it is set (a loopback address, so that
a test can tell this peer's lines in the relay's log), else from where the kernel chooses.
"""
import base64
import os
import select
import socket
import ssl
import sys
import threading
import time


def client(addr, port, timeout=10, src=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    src = src or os.environ.get("DMTP_PEER_SOURCE")
    raw = socket.create_connection((addr, port), timeout=timeout,
                                   source_address=(src, 0) if src else None)
    return ctx.wrap_socket(raw)


class Lines:
    def __init__(self, s):
        self.s, self.buf = s, b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(8192)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode("ascii", "replace")

    def reply(self):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3] == " ":
                return int(l[:3]), lines


def closed(s, wait=10):
    """True when the server closes the connection (EOF) within wait seconds."""
    s.settimeout(wait)
    try:
        while True:
            d = s.recv(8192)
            if not d:
                return True
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    except socket.timeout:
        return False


def fake_dx(addr, port, cert, key, mapfile, ready, mode=""):
    m = {}
    with open(mapfile) as f:
        for l in f:
            n, r = l.rstrip("\n").split("\t", 1)
            m[n] = r
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(16)
    open(ready, "w").close()

    def serve(c):
        try:
            if mode == "dual":
                c.sendall(b"220 mx.dual.test ESMTP DMTPv1\r\n")
                pl = Lines(c).line().split()
                if len(pl) != 3 or pl[0] != "STARTTLS" or pl[2] != "MODE=DMTPv1":
                    c.sendall(b"501 STARTTLS <host> MODE=DMTPv1\r\n")
                    return
                c.sendall(b"250-STARTTLS\r\n250 go ahead\r\n")
                s = ctx.wrap_socket(c, server_side=True)
                s.sendall(b"250 OK DMTPv1\r\n")
            else:
                s = ctx.wrap_socket(c, server_side=True)
                s.sendall(b"220 dx.evil.test DMTPv1 fake\r\n")
            r = Lines(s)
            while True:
                l = r.line()
                sys.stderr.write("fake-dx: %s\n" % l)  # what was asked, for the test's log
                sys.stderr.flush()
                parts = l.split()
                if parts and parts[0].upper() == "QUIT":
                    s.sendall(b"221 BYE\r\n")
                    return
                if len(parts) >= 2 and parts[0].upper() == "SGNT":
                    name = parts[1].strip("<>")
                    if name in m:
                        s.sendall(m[name].encode() + b"\r\n")
                        continue
                if mode == "drip":
                    for ch in b"250 OK\r\n":
                        s.sendall(bytes([ch]))
                        time.sleep(1)
                    continue
                s.sendall(b"500 unknown\r\n")
        except Exception:
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def blackhole(addr, port, ready):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(64)
    open(ready, "w").close()
    held = []
    while True:
        c, _ = ls.accept()
        held.append(c)
        del held[:-64]  # the oldest are closed when dropped


def sgnt(addr, port, name):
    s = client(addr, int(port))
    r = Lines(s)
    code, _ = r.reply()
    assert code == 220
    s.sendall(("SGNT <%s>\r\n" % name).encode())
    code, lines = r.reply()
    assert code == 250, lines
    t = lines[0]
    print(t[t.index("[") + 1:t.index("]")])


def tamper(b64):
    raw = bytearray(base64.b64decode(b64 + "=" * (-len(b64) % 4)))
    raw[-5] ^= 0x01
    print(base64.b64encode(bytes(raw)).decode().rstrip("="))


def expect(cond, what):
    if not cond:
        print("FAILED: " + what)
        sys.exit(1)


def robust(addr, port, case):
    port = int(port)

    def session():
        s = client(addr, port)
        r = Lines(s)
        code, lines = r.reply()
        expect(code == 220 and " DMTPv1" in lines[0], "banner: %r" % lines)
        return s, r

    def alive():
        s, r = session()
        s.sendall(b"NOOP\r\n")
        code, _ = r.reply()
        s.close()
        expect(code == 250, "server still serving others")

    if case == "overlong":
        s, r = session()
        s.sendall(b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n")
        code, _ = r.reply()
        expect(code == 500, "overlong line gets 500, got %d" % code)
        code, _ = r.reply()
        expect(code == 250, "next command after the overlong line works, got %d" % code)
    elif case == "junk":
        s, r = session()
        s.sendall(bytes(range(256)) + b"\r\n")
        code, _ = r.reply()
        expect(code in (500, 501), "binary junk gets 500/501, got %d" % code)
        s.sendall(os.urandom(3000).replace(b"\n", b"x") + b"\r\n" + b"\x00\xff\r\n" * 5)
        got421 = False
        try:
            while True:
                code, _ = r.reply()
                if code == 421:
                    got421 = True
                    break
                expect(code in (500, 501), "junk answered with %d" % code)
        except (EOFError, ConnectionError, ssl.SSLError):
            pass
        expect(got421 and closed(s), "repeated garbage ends with 421 and disconnect")
    elif case == "unknown":
        s, r = session()
        s.sendall(b"FROB\r\nSGNT\r\nSGNT <alice.test> [notafingerprint]\r\nHELP\r\n")
        codes = [r.reply()[0] for _ in range(4)]
        expect(codes == [500, 501, 501, 214], "unknown/bad commands: %r" % codes)
    elif case == "order":
        s, r = session()
        s.sendall(b"MAIL FROM: <alice.test> [fingerprint] SIZE=10\r\nDATA\r\nRCPT TO: <x.test>\r\n")
        codes = [r.reply()[0] for _ in range(3)]
        expect(codes == [503, 503, 503], "out of order: %r" % codes)
        s.sendall(b"EHLO <bob.test>\r\nMAIL FROM: <bob.test> [fingerprint] SIZE=10\r\nMODE\r\nQUIT\r\n")
        c1, l1 = r.reply()
        c2, l2 = r.reply()
        c3, l3 = r.reply()
        c4, _ = r.reply()
        expect(c1 == 250 and len(l1) > 1, "EHLO multi-line 250")
        expect(c2 == 250, "MAIL after EHLO starts a transaction: %r" % l2)
        expect(c3 == 250 and l3[0][4:] == "OK DMTPv1", "MODE: %r" % l3)
        expect(c4 == 221 and closed(s), "QUIT 221 then close")
    elif case == "idle":
        s, r = session()
        slow = client(addr, port)      # a TLS handshake that never sends a command
        sr = Lines(slow)
        sr.reply()
        t0 = time.time()
        # trickle a line one byte at a time: must not keep the connection alive
        slow.settimeout(0.3)
        dead = False
        for i in range(40):
            try:
                slow.sendall(b"N")
                d = slow.recv(8192)
                if not d:
                    dead = True
                    break
                if b"421" in d:
                    dead = closed(slow, 5)
                    break
            except socket.timeout:
                continue
            except (ssl.SSLError, ConnectionError, OSError):
                dead = True
                break
        expect(dead, "slow sender disconnected")
        expect(closed(s, 10), "idle connection closed")
        expect(time.time() - t0 < 12, "within the idle timeout")
        alive()
    elif case == "concurrent":
        conns = []
        for i in range(200):
            conns.append(session())
        for s, _ in conns:
            s.sendall(b"NOOP\r\n")
        ok = sum(1 for s, r in conns if r.reply()[0] == 250)
        expect(ok == 200, "200 concurrent connections answered (%d)" % ok)
        for s, _ in conns:
            s.close()
        alive()
    elif case.startswith("limit"):
        n = int(case[5:])
        conns = [session() for _ in range(n)]
        refused = False
        try:
            s, r = session()
            s.sendall(b"NOOP\r\n")
            r.reply()
        except (EOFError, ConnectionError, ssl.SSLError, OSError):
            refused = True
        expect(refused, "connection %d beyond max-clients is closed" % (n + 1))
        for s, r in conns:
            s.sendall(b"NOOP\r\n")
            expect(r.reply()[0] == 250, "the first %d connections are still served" % n)
            s.close()
        # the server frees the slots when it sees the closes: poll until one is free
        for _ in range(100):
            try:
                s, r = session()
                s.close()
                break
            except (EOFError, ConnectionError, ssl.SSLError, OSError):
                time.sleep(0.05)
    else:
        print("unknown case " + case)
        sys.exit(2)
    alive()


def send(addr, port, frm, to, path, flip=None):
    data = bytearray(open(path, "rb").read())
    if flip is not None:
        data[int(flip)] ^= 0x01
    s = client(addr, int(port), timeout=60)
    r = Lines(s)
    r.reply()
    s.sendall(b"EHLO " + frm.encode() + b"\r\n")
    r.reply()
    s.sendall(b"MAIL FROM: <%s> [fingerprint] SIZE=%d\r\n" % (frm.encode(), len(data)))
    c, l = r.reply()
    if c // 100 == 2:
        s.sendall(b"RCPT TO: <%s> [fingerprint]\r\n" % to.encode())
        c, l = r.reply()
    if c // 100 == 2:
        s.sendall(b"DATA [fingerprint]\r\n")
        c, l = r.reply()
    if c // 100 == 3:
        s.sendall(bytes(data) + b"\r\n")
        c, l = r.reply()
    print(l[-1])
    try:
        s.sendall(b"QUIT\r\n")
        r.reply()
    except (OSError, EOFError):
        pass


def transaction(addr, port, frm, to, size):
    """Connects, EHLO, MAIL, RCPT, DATA; returns (socket, Lines, code, lines) of the last."""
    s = client(addr, int(port), timeout=60)
    r = Lines(s)
    r.reply()
    s.sendall(b"EHLO " + frm.encode() + b"\r\n")
    r.reply()
    for cmd in (b"MAIL FROM: <%s> [fingerprint] SIZE=%d" % (frm.encode(), size),
                b"RCPT TO: <%s> [fingerprint]" % to.encode(), b"DATA [fingerprint]"):
        s.sendall(cmd + b"\r\n")
        c, l = r.reply()
        if c // 100 not in (2, 3):
            break
    return s, r, c, l


def drip(addr, port, frm, to, path, gap, stop=None):
    data = open(path, "rb").read() + b"\r\n"
    s, r, c, l = transaction(addr, port, frm, to, len(data) - 2)
    if c != 354:
        print(l[-1])
        return
    t0 = time.time()
    limit = len(data) if stop is None else int(stop)
    try:
        for off in range(0, limit, 64):
            # a reply before the end (the server gave up): read it, do not write into a close
            if select.select([s], [], [], 0)[0]:
                break
            s.sendall(data[off:min(off + 64, limit)])
            if off + 64 < limit:
                time.sleep(float(gap))
        c, l = r.reply()
        print("%s after %.1f s" % (l[-1], time.time() - t0))
    except (OSError, EOFError) as e:
        print("closed (%s) after %.1f s" % (e, time.time() - t0))


def peraddr(addr, port, n, src, other):
    port = int(port)

    def banner(frm):
        s = client(addr, port, src=frm)
        code, lines = Lines(s).reply()
        return s, code

    held = []
    for i in range(int(n)):
        s, code = banner(src)
        expect(code == 220, "connection %d from %s gets the banner, got %d" % (i + 1, src, code))
        held.append(s)
    s, code = banner(src)
    expect(code == 421 and closed(s), "connection %d from %s: 421 and closed, got %d"
           % (int(n) + 1, src, code))
    s, code = banner(other)
    expect(code == 220, "a connection from %s still gets the banner, got %d" % (other, code))
    s.close()
    held.pop().close()
    for _ in range(100):  # the server sees the close on its next round
        s, code = banner(src)
        s.close()
        if code == 220:
            break
        time.sleep(0.05)
    expect(code == 220, "after one closed, %s connects again" % src)
    for s in held:
        s.sendall(b"NOOP\r\n")
        expect(Lines(s).reply()[0] == 250, "the first connections are still served")
        s.close()


def sgnts(addr, port, name, n):
    s = client(addr, int(port))
    r = Lines(s)
    r.reply()
    s.sendall(b"SGNT <%s>\r\n" % name.encode() * int(n))
    print(" ".join(str(r.reply()[0]) for _ in range(int(n))))


def stall(addr, port, name):
    a = client(addr, int(port), timeout=30)
    ra = Lines(a)
    ra.reply()
    t0 = time.time()
    a.sendall(b"SGNT <%s>\r\n" % name.encode())
    time.sleep(0.2)
    b = client(addr, int(port), timeout=30)
    rb = Lines(b)
    rb.reply()
    b.sendall(b"NOOP\r\n")
    nc = rb.reply()[0]
    nt = time.time() - t0
    sc = ra.reply()[0]
    print("noop=%d in %.1f s sgnt=%d in %.1f s" % (nc, nt, sc, time.time() - t0))


def budget(addr, port, frm, size):
    def mail(s, r):
        s.sendall(b"MAIL FROM: <%s> [fingerprint] SIZE=%s\r\n" % (frm.encode(), size.encode()))
        return r.reply()[0]

    sess = []
    for _ in range(2):
        s = client(addr, int(port))
        r = Lines(s)
        r.reply()
        s.sendall(b"EHLO " + frm.encode() + b"\r\n")
        r.reply()
        sess.append((s, r))
    (s1, r1), (s2, r2) = sess
    c = mail(s1, r1)
    expect(c == 250, "first MAIL SIZE=%s: 250, got %d" % (size, c))
    c = mail(s2, r2)
    expect(c == 431, "second MAIL SIZE=%s while the first holds the memory: 431, got %d" % (size, c))
    s1.sendall(b"RSET\r\n")
    expect(r1.reply()[0] == 250, "RSET")
    c = mail(s2, r2)
    expect(c == 250, "after the first RSET, the second MAIL: 250, got %d" % c)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fake-dx":
        fake_dx(*sys.argv[2:9])
    elif cmd == "blackhole":
        blackhole(*sys.argv[2:5])
    elif cmd == "sgnt":
        sgnt(*sys.argv[2:5])
    elif cmd == "tamper":
        tamper(sys.argv[2])
    elif cmd == "robust":
        robust(*sys.argv[2:5])
    elif cmd == "send":
        send(*sys.argv[2:9])
    elif cmd == "drip":
        drip(*sys.argv[2:10])
    elif cmd == "peraddr":
        peraddr(*sys.argv[2:7])
    elif cmd == "sgnts":
        sgnts(*sys.argv[2:6])
    elif cmd == "stall":
        stall(*sys.argv[2:5])
    elif cmd == "budget":
        budget(*sys.argv[2:6])
