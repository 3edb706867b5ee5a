#!/usr/bin/env python3
"""acct_call - a raw client of dime-accountd (daemonlib/ACCOUNT.md) for the tests: TLS with
the test CA, the greeting, then each LINE sent in turn and its reply printed (one line each,
the greeting first). A word @FILE in a line is replaced by the base64 of the binary object in
FILE (an armored signet or a dime-client key file).

usage: acct_call.py HOST PORT CA-FILE LINE...
"""
import base64
import socket
import ssl
import sys


def b64_of(path):
    data = open(path, 'rb').read()
    if data.startswith(b'-----BEGIN'):
        body = [l for l in data.decode().splitlines()[1:-1] if l and not l.startswith('=')]
        return ''.join(body)
    return base64.b64encode(data).decode()


def main():
    host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False  # the certificate names the IP; the client checks it itself
    with socket.create_connection((host, port), timeout=30) as raw:
        with ctx.wrap_socket(raw) as s:
            f = s.makefile('rwb')
            print(f.readline().decode().rstrip())
            for line in sys.argv[4:]:
                words = [b64_of(w[1:]) if w.startswith('@') else w for w in line.split(' ')]
                f.write((' '.join(words) + '\r\n').encode())
                f.flush()
                print(f.readline().decode().rstrip())
    return 0


sys.exit(main())
