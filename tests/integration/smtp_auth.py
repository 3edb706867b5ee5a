#!/usr/bin/env python3
"""SMTP submission with SASL AUTH PLAIN, for test_sasl.sh (no swaks needed).

usage: smtp_auth.py HOST PORT LOGIN PASSWORD MAIL-FROM RCPT MESSAGE-FILE

Prints one line, "STAGE CODE TEXT": the stage where the server refused (auth, mail, rcpt or
data) and its reply, or "sent 250 ..." with its reply to the message's end when it queued it. Exit status 0 when the
message was queued, 1 when the server refused it at some stage, 2 for anything else (no
connection, no AUTH offered, a protocol error).
"""
import smtplib
import sys


def out(stage, code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    print(stage, code, " ".join(text.split()))


def main():
    host, port, login, password, sender, rcpt, path = sys.argv[1:8]
    with open(path, "rb") as f:
        msg = f.read()
    try:
        with smtplib.SMTP(host, int(port), local_hostname="client.test", timeout=30) as s:
            s.ehlo()
            if not s.has_extn("auth"):
                out("auth", 0, "the server offers no AUTH")
                return 2
            s.user, s.password = login, password
            try:
                # PLAIN only: the one mechanism the test's Dovecot is asked to check
                s.auth("PLAIN", s.auth_plain, initial_response_ok=True)
            except smtplib.SMTPAuthenticationError as e:
                out("auth", e.smtp_code, e.smtp_error)
                return 1
            steps = (("mail", lambda: s.mail(sender)), ("rcpt", lambda: s.rcpt(rcpt)),
                     ("data", lambda: s.data(msg)))
            for stage, step in steps:
                try:
                    code, text = step()
                except smtplib.SMTPDataError as e:  # DATA itself refused
                    code, text = e.smtp_code, e.smtp_error
                if code != 250:
                    out(stage, code, text)
                    return 1
            out("sent", code, text)
            return 0
    except (OSError, smtplib.SMTPException) as e:
        out("error", 0, str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
