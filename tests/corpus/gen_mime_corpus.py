#!/usr/bin/env python3
"""Writes the MIME corpus of tests/corpus/mime (run from anywhere; deterministic).

File names say what each message exercises. A name starting with "whole-" must be carried
in whole-message mode by dc_dmap; every other file must map in structured mode. Every file
must round-trip byte for byte (tests/unit/test_mime.c).
"""
import base64
import os
import random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mime")
rnd = random.Random(5322)


def crlf(s):
    return s.replace("\n", "\r\n").encode()


def lf(s):
    return s.encode()


def b64lines(data, width=76):
    t = base64.b64encode(data).decode()
    return "\n".join(t[i:i + width] for i in range(0, len(t), width)) + "\n"


STD = """Date: Thu, 26 Nov 2026 12:00:00 +0000
From: Alice Example <alice@alice.test>
To: Bob Example <bob@bob.test>
Subject: corpus message
Message-ID: <corpus-{n}@alice.test>
"""

files = {}


def add(name, data):
    assert name not in files
    files[name] = data


add("plain-text-crlf.eml", crlf(STD.format(n=1) + "\nHello Bob,\nplain text body.\n"))
add("plain-text-lf.eml", lf(STD.format(n=2) + "\nHello Bob,\nLF only here.\n"))
add("mixed-line-endings.eml",
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nFrom: a@alice.test\nTo: b@bob.test\r\n"
    b"Subject: mixed\n\r\nline one\nline two\r\nline three with lone \r cr\n")
add("libdime-vector-headers.eml", crlf(
    "Date: Thu, 26 Nov 2026 12:00:00 +0000\nTo: Bob Example <bob@bob.test>\n"
    "From: Alice Example <alice@alice.test>\nOrganization: Alice Test Organization\n"
    "Subject: DIME interop test message\nX-Interop-Test: libdime-vector-1\n\n"
    "Hello Bob,\nthis is a DIME interop test message from Alice.\nRegards, Alice\n"))
add("multipart-alternative.eml", crlf(STD.format(n=3) +
    "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"alt-1\"\n\n"
    "--alt-1\nContent-Type: text/plain; charset=utf-8\n\nplain version\n"
    "--alt-1\nContent-Type: text/html; charset=utf-8\n\n<p>html version</p>\n--alt-1--\n"))
pdf = bytes(rnd.randrange(256) for _ in range(3000))
add("multipart-mixed-base64-attachment.eml", crlf(STD.format(n=4) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=mix\n\n"
    "--mix\nContent-Type: text/plain\n\nsee attached\n"
    "--mix\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=a.pdf\n\n" + b64lines(pdf) + "--mix--\n"))
add("nested-mixed-alternative-attachment.eml", crlf(STD.format(n=5) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"outer\"\n\n"
    "--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n"
    "--inner\nContent-Type: text/plain\n\nplain\n--inner\nContent-Type: text/html\n\n<b>html</b>\n"
    "--inner--\n\n--outer\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n"
    + b64lines(bytes(range(256))) + "--outer--\n"))
add("whole-display-not-at-top-level.eml", crlf(STD.format(n=6) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"L1\"\n\n"
    "--L1\nContent-Type: multipart/mixed; boundary=\"L2\"\n\n"
    "--L2\nContent-Type: text/plain\n\ndeep text\n--L2\nContent-Type: application/zip\n\nPK\n--L2--\n"
    "--L1\nContent-Type: application/octet-stream\n\nbytes\n--L1--\n"))
add("base64-binary-part.eml", crlf(STD.format(n=7) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b64\n\n"
    "--b64\nContent-Type: text/plain\n\nbinary follows\n"
    "--b64\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
    + b64lines(bytes(rnd.randrange(256) for _ in range(777))) + "--b64--\n"))
add("quoted-printable-part.eml", crlf(STD.format(n=8) +
    "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "Caf=E9 cr=E8me br=FBl=E9e, a soft line break=\n here, and =3D signs.\n"))
add("eightbit-part.eml", STD.format(n=9).replace("\n", "\r\n").encode() +
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=8b\r\n\r\n"
    b"--8b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x82\xac\r\n"
    b"--8b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\x00\x01\x02\xff\xfe\r\x00\n\x80--8b is not a delimiter here\r\n--8b--\r\n")
add("rfc2047-subject-from.eml", crlf(
    "Date: Thu, 26 Nov 2026 12:00:00 +0000\n"
    "From: =?UTF-8?Q?Andr=C3=A9_M=C3=BCller?= <andre@alice.test>\nTo: bob@bob.test\n"
    "Subject: =?UTF-8?B?RElNRSB0ZXN0IOKCrA==?= =?ISO-8859-1?Q?caf=E9?=\n\nbody\n"))
add("long-folded-headers.eml", crlf(
    "Date: Thu, 26 Nov 2026\n 12:00:00 +0000\nFrom: Alice\n\t<alice@alice.test>\n"
    "To: one@bob.test,\n two@bob.test,\n    three@bob.test\n"
    "Subject: a subject that is long enough to be folded over\n several lines by a\n\tmail client\n"
    "References: " + "\n ".join("<ref-%d@alice.test>" % i for i in range(60)) + "\n\nbody\n"))
add("duplicate-date-subject-to.eml", crlf(
    "Date: Thu, 26 Nov 2026 12:00:00 +0000\nSubject: first subject\nTo: first@bob.test\n"
    "From: a@alice.test\nDate: Fri, 27 Nov 2026 12:00:00 +0000\nSubject: second subject\n"
    "To: second@bob.test\n\nbody\n"))
add("missing-date.eml", crlf("From: a@alice.test\nTo: b@bob.test\nSubject: no date\n\nbody\n"))
add("missing-subject.eml", crlf("Date: Thu, 26 Nov 2026 12:00:00 +0000\nFrom: a@alice.test\n"
                                "To: b@bob.test\n\nbody\n"))
add("missing-to.eml", crlf("Date: Thu, 26 Nov 2026 12:00:00 +0000\nFrom: a@alice.test\n"
                           "Subject: undisclosed\n\nbody\n"))
add("missing-all-required.eml", crlf("X-Only: this header\n\nbody\n"))
add("no-headers-blank-first-line.eml", crlf("\nbody without any header\n"))
add("preamble-and-epilogue.eml", crlf(STD.format(n=10) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=pe\n\n"
    "This is a multi-part message in MIME format.\nPreamble line two.\n"
    "--pe\nContent-Type: text/plain\n\ntext\n--pe\nContent-Type: application/x-thing\n\nthing\n"
    "--pe--\nEpilogue line one.\nEpilogue line two without ending"))
add("message-rfc822-attachment.eml", crlf(STD.format(n=11) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=fwd\n\n"
    "--fwd\nContent-Type: text/plain\n\nforwarded message attached\n"
    "--fwd\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n"
    "From: carol@carol.test\nTo: alice@alice.test\nSubject: inner\n"
    "Content-Type: multipart/mixed; boundary=fwd-inner\n\n--fwd-inner\n\ninner text\n"
    "--fwd-inner--\n--fwd--\n"))
add("empty-body.eml", crlf(STD.format(n=12) + "\n"))
add("no-body-separator.eml", crlf(STD.format(n=13)))
add("header-only-no-final-newline.eml", crlf(STD.format(n=14)).rstrip(b"\r\n"))
add("empty-message.eml", b"")
add("boundary-in-preamble.eml", crlf(STD.format(n=15) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"bp\"\n\n"
    "The preamble mentions --bp in running text and a line\n--bpx that only starts like it\n"
    "--bp-- trailing words make this no close delimiter\n"
    "--bp\nContent-Type: text/plain\n\nreal text\n--bp\nContent-Type: application/x-a\n\naaa\n--bp--\n"))
add("whitespace-after-boundary.eml", crlf(STD.format(n=16) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=ws\n\n"
    "--ws  \t\nContent-Type: text/plain\n\ntext\n--ws \nContent-Type: application/x-b\n\nbbb\n"
    "--ws--\t \n"))
add("very-long-body-lines.eml", crlf(STD.format(n=17) + "\n" + "x" * 200000 + "\nshort\n" +
                                      "y" * 70000))
add("whole-header-line-over-64k.eml", crlf(STD.format(n=18) + "X-Huge: " + "h" * 70000 +
                                           "\n\nbody\n"))
add("non-ascii-header-bytes.eml",
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\nFrom: J\xc3\xbcrgen <j@alice.test>\r\n"
    b"To: b@bob.test\r\nSubject: Gr\xc3\xbc\xc3\x9fe \xff\xfe raw bytes\r\nX-Latin1: caf\xe9\r\n\r\nbody\r\n")
add("lf-only-multipart.eml", lf(STD.format(n=19) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=lf\n\n"
    "--lf\nContent-Type: text/plain\n\nlf text\n--lf\nContent-Type: application/x-c\n\nccc\n--lf--\n"))
add("mixed-endings-multipart.eml",
    b"From: a@alice.test\r\nTo: b@bob.test\nSubject: mix\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\n"
    b"Content-Type: multipart/mixed; boundary=mx\r\n\n"
    b"--mx\nContent-Type: text/plain\r\n\r\ntext\r\n--mx\r\nContent-Type: application/x-d\n\nddd\n"
    b"--mx--\r\n")
add("boundary-quoted-with-specials.eml", crlf(STD.format(n=20) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed;\n boundary=\"=_Part 1; (x) \\\"q\\\"\"\n\n"
    "--=_Part 1; (x) \"q\"\nContent-Type: text/plain\n\nt\n"
    "--=_Part 1; (x) \"q\"\nContent-Type: application/x-e\n\ne\n--=_Part 1; (x) \"q\"--\n"))
add("boundary-rfc2231-continuation.eml", crlf(STD.format(n=21) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary*0=\"abc\";\n"
    " boundary*1*=%2Ddef\n\n"
    "--abc-def\nContent-Type: text/plain\n\nt\n--abc-def\nContent-Type: application/x-f\n\nf\n"
    "--abc-def--\n"))
add("boundary-rfc2231-extended.eml", crlf(STD.format(n=22) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary*=us-ascii'en'a%20b\n\n"
    "--a b\nContent-Type: text/plain\n\nt\n--a b\nContent-Type: application/x-g\n\ng\n--a b--\n"))
add("whole-mbox-from-line.eml", crlf("From alice@alice.test Thu Nov 26 12:00:00 2026\n" +
                                     STD.format(n=23) + "\nbody\n"))
add("whole-missing-close-delimiter.eml", crlf(STD.format(n=24) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=nc\n\n"
    "--nc\nContent-Type: text/plain\n\ntext\n--nc\nContent-Type: application/x-h\n\ntruncated"))
add("whole-multipart-without-boundary.eml", crlf(STD.format(n=25) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed\n\nno boundary at all\n"))
add("attachment-before-text.eml", crlf(STD.format(n=26) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=ab\n\n"
    "--ab\nContent-Type: application/x-first\nContent-Disposition: attachment\n\nfirst\n"
    "--ab\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n\nnotes\n"
    "--ab\nContent-Type: text/plain\n\nthe display text\n--ab--\n"))
add("cc-and-organization-case.eml", crlf(
    "DATE: Thu, 26 Nov 2026 12:00:00 +0000\nfrom: a@alice.test\nto: b@bob.test\n"
    "cc: c@carol.test\nORGANIZATION: Alice Org\nsubject: cases\n\nbody\n"))
add("multipart-related-html.eml", crlf(STD.format(n=27) +
    "MIME-Version: 1.0\nContent-Type: multipart/related; boundary=rel; type=\"text/html\"\n\n"
    "--rel\nContent-Type: text/html\n\n<img src=\"cid:i1\">\n"
    "--rel\nContent-Type: image/gif\nContent-ID: <i1>\nContent-Transfer-Encoding: base64\n\n"
    "R0lGODlhAQABAAAAACw=\n--rel--\n"))
add("empty-attachment-part.eml", crlf(STD.format(n=28) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=ea\n\n"
    "--ea\nContent-Type: text/plain\n\ntext\n--ea\n--ea--\n"))
add("whole-only-attachments.eml", crlf(STD.format(n=29) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=oa\n\n"
    "--oa\nContent-Type: image/png\n\npng\n--oa\nContent-Type: image/jpeg\n\njpg\n--oa--\n"))
add("single-part-mixed.eml", crlf(STD.format(n=30) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=one\n\n"
    "--one\nContent-Type: text/plain\n\nonly part\n--one--\n"))
add("close-delimiter-at-eof.eml", crlf(STD.format(n=31) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=eof\n\n"
    "--eof\nContent-Type: text/plain\n\nt\n--eof\nContent-Type: application/x-i\n\ni\n").rstrip(b"\r\n")
    + b"\r\n--eof--")
add("obsolete-space-before-colon.eml", crlf(
    "Date : Thu, 26 Nov 2026 12:00:00 +0000\nFrom\t: a@alice.test\nTo: b@bob.test\n"
    "Subject : spaced\nX-Empty:\nX-Spaces:   \n\nbody\n"))
add("parts-without-headers.eml", crlf(STD.format(n=32) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=nh\n\n"
    "--nh\n\nno header, default text/plain\n--nh\n\nsecond part also without header\n--nh--\n"))
add("whole-continuation-on-first-line.eml", crlf(" folded: nothing\nFrom: a@alice.test\n\nbody\n"))
add("body-starts-with-blank-lines.eml", crlf(STD.format(n=33) + "\n\n\nthree blank lines above\n"))
add("boundary-prefix-of-inner.eml", crlf(STD.format(n=34) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"pre\"\n\n"
    "--pre\nContent-Type: multipart/alternative; boundary=\"prefix\"\n\n"
    "--prefix\nContent-Type: text/plain\n\np\n--prefix\nContent-Type: text/html\n\nh\n--prefix--\n"
    "--pre\nContent-Type: application/x-j\n\nj\n--pre--\n"))
add("content-type-with-comments.eml", crlf(STD.format(n=35) +
    "MIME-Version: 1.0\nContent-Type: (comment) Multipart/Mixed (more);\n"
    "  BOUNDARY = \"cm\" (trailing)\n\n"
    "--cm\nContent-Type: TEXT/PLAIN\n\nt\n--cm\nContent-Type: application/x-k\n\nk\n--cm--\n"))
add("whole-nesting-too-deep.eml", crlf(STD.format(n=36) + "MIME-Version: 1.0\n" +
    "".join("Content-Type: multipart/mixed; boundary=d%d\n\n--d%d\n" % (i, i) for i in range(40)) +
    "Content-Type: text/plain\n\ndeep\n" +
    "".join("--d%d--\n" % i for i in reversed(range(40)))))
add("many-small-attachments.eml", crlf(STD.format(n=37) +
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=many\n\n"
    "--many\nContent-Type: text/plain\n\nlots follow\n" +
    "".join("--many\nContent-Type: application/x-n%d\n\npart %d\n" % (i, i) for i in range(50)) +
    "--many--\n"))
add("crlf-body-with-bare-cr-and-nul.eml",
    crlf(STD.format(n=38)) + b"\r\nbare\rcr and nul \x00 byte\r\n\r\r\n")

os.makedirs(OUT, exist_ok=True)
for name, data in files.items():
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(data)
print(len(files), "files")
