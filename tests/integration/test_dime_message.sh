#!/usr/bin/env bash
# Integration test of the dime-message tool: encrypt / origin-sign / show / decrypt for all
# four actors with the libdime vector signets and keys, a few corpus messages, and the
# vector message.dmsg (expected results: tests/vectors/libdime/README.md section 4.3).
# Output is TAP.
#
# usage: test_dime_message.sh /path/to/dime-message /path/to/tests/vectors/libdime
set -euo pipefail
TAPLIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/tap.sh"

DM=$1
VEC=$2
case "$DM" in /*) ;; *) DM="$PWD/$DM" ;; esac
case "$VEC" in /*) ;; *) VEC="$PWD/$VEC" ;; esac
CORPUS="$VEC/../../corpus/mime"

T=$(mktemp -d "${TMPDIR:-/tmp}/dime-message-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"

. "$TAPLIB"
# run ARGS...: stdout in out.txt, stderr in err.txt, status in $rc; sanitizer reports recorded
run() {
    set +e
    "$DM" "$@" >out.txt 2>err.txt
    rc=$?
    set -e
    if grep -q "Sanitizer" err.txt; then
        { echo "dime-message $*"; cat err.txt; } >>"$T/sanitizer-reports"
    fi
}
expect() {
    if [ "$rc" -eq "$1" ]; then ok "$2"; else notok "$2 (exit $rc, expected $1)"; fi
}
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else notok "$desc"; fi
}
lacks() { ! grep -qF -- "$1" "${2:-out.txt}"; }
one_line_error() { [ "$(wc -l <err.txt)" -eq 1 ] && grep -qE "^dime-message: $1: " err.txt; }

AS="$VEC/alice-alice.test.signet"
AK="$VEC/alice-alice.test.key"
OS="$VEC/alice.test.signet"
OK="$VEC/alice.test.key"
DS="$VEC/bob.test.signet"
DK="$VEC/bob.test.key"
RS="$VEC/bob-bob.test.signet"
RK="$VEC/bob-bob.test.key"
FP_ALICE=gfJecOjBZ1fJzVWOERJXTMO+A1f+Gprgt1+OPn29+Inz/CXaANv3dmNw+BwImaIEUUc3qQouw+scUdbspOIBgA
FP_BOB=s6DnYR8ZD5/8dr0nbpaUEe2ElXsAX15SlEeLU2lcYdjU7qhJlqjKtsdREMdcyeX5HeWW0ia9RPfCBiDRk9rnLg
FP_ALICE_ORG=7u40WL4YG718ietKdtTiJuzTMx/aeQbatxob5bg1bMQWSRju63MroX78XI9Sp7u/Qp4SqGe5yO8fpKIpztp5HA
FP_BOB_ORG=E2NEfJ83r7WPizmY/huCz7+LutOWoQE8Ec+zJpAT6PTnNH0VZdqdRNTivtEXDLtuWye3jZE5ic7ysMUMkw5ABQ

# ---- help and usage ----
for c in encrypt origin-sign decrypt show; do
    run "$c" --help
    if [ "$rc" -eq 0 ] && has "Usage: dime-message $c"; then ok "$c --help"; else notok "$c --help"; fi
done
run --help
expect 0 "--help"
run
expect 2 "no command is a usage error"
run frob
expect 2 "unknown command is a usage error"
run decrypt --as nobody --key "$RK" -i x
expect 2 "unknown actor is a usage error"
check "usage error is one line plus a hint" grep -q "^dime-message: decrypt: --as must be" err.txt
run decrypt --as recipient --key "$RK" -i x --author-signet "$AS"
expect 2 "recipient without --origin-signet is a usage error"

# ---- the vector message as all four actors (README 4.3) ----
M="$VEC/message.dmsg"
run show -i "$M"
expect 0 "show message.dmsg"
check "show: 12 chunks, 4871 bytes" has "message: 4871 bytes, 12 chunks"
check "show: display chunk row" grep -qE "^ +2363 +67 +display-content +400 +author,recipient" out.txt
check "show: origin signature held by all four" grep -qE "^ +4547 +255 .* author,origin,destination,recipient" out.txt

run decrypt --as origin --key "$OK" --author-signet "$AS" -i "$M"
expect 0 "vector: origin decrypts"
check "vector origin: author and destination" has "author: alice@alice.test"
check "vector origin: destination" has "destination: bob.test"
check "vector origin: author fingerprint" has "author-signet: $FP_ALICE"
check "vector origin: destination fingerprint" has "destination-signet: $FP_BOB_ORG"
check "vector origin: no recipient" lacks "recipient:"
check "vector origin: chunks 4, 225, 226, 248, 249, 255" has "chunks opened: 6 of 12"
check "vector origin: author signature verified" has "signature 226 author-signature: ok"
check "vector origin: no headers" lacks "common headers"

run decrypt --as destination --key "$DK" --origin-signet "$OS" -i "$M"
expect 0 "vector: destination decrypts"
check "vector destination: recipient" has "recipient: bob@bob.test"
check "vector destination: recipient fingerprint" has "recipient-signet: $FP_BOB"
check "vector destination: origin" has "origin: alice.test"
check "vector destination: origin fingerprint" has "origin-signet: $FP_ALICE_ORG"
check "vector destination: no author" lacks "author:"
check "vector destination: chunks 5, 248, 249, 255" has "chunks opened: 4 of 12"
check "vector destination: origin full signature ok" has "signature 255 Organizational-Signature: ok"

for actor in recipient author; do
    key=$RK
    [ "$actor" = author ] && key=$AK
    run decrypt --as "$actor" --key "$key" --author-signet "$AS" --origin-signet "$OS" -i "$M" -o "vec-$actor.eml"
    expect 0 "vector: $actor decrypts"
    check "vector $actor: every chunk opened" has "chunks opened: 11 of 12"
    check "vector $actor: verified" has "result: verified"
    check "vector $actor: rebuilt from unframed data" has "rebuilt from an unframed message"
    check "vector $actor: subject" has "Subject: DIME interop test message" "vec-$actor.eml"
    check "vector $actor: other headers" has "X-Interop-Test: libdime-vector-1" "vec-$actor.eml"
    check "vector $actor: body" has "this is a DIME interop test message from Alice." "vec-$actor.eml"
done

run decrypt --as recipient --key "$DK" --author-signet "$AS" --origin-signet "$OS" -i "$M"
expect 3 "recipient with an org key file is refused (not a user key)"
run decrypt --as recipient --key "$AK" --author-signet "$AS" --origin-signet "$OS" -i "$M"
expect 3 "recipient with the author's key cannot open it"
check "wrong key: one-line error naming the envelope chunk" one_line_error decrypt
check "wrong key: says the key does not open it" has "recipient's key does not open this message" err.txt
run decrypt --as recipient --key "$RK" --author-signet "$RS" --origin-signet "$OS" -i "$M"
expect 1 "wrong author signet: verification failure"
check "wrong author signet: fingerprint named" has "author signet's crypto fingerprint" err.txt

# ---- corpus messages through encrypt / show / decrypt ----
for f in multipart-alternative.eml nested-mixed-alternative-attachment.eml plain-text-lf.eml whole-mbox-from-line.eml empty-message.eml; do
    run encrypt --author-signet "$AS" --author-key "$AK" --origin-signet "$OS" --origin-key "$OK" \
        --dest-signet "$DS" --recipient-signet "$RS" -i "$CORPUS/$f" -o "$f.dmsg"
    expect 0 "$f: encrypt"
    for actor in recipient author; do
        key=$RK
        [ "$actor" = author ] && key=$AK
        run decrypt --as "$actor" --key "$key" --author-signet "$AS" --origin-signet "$OS" -i "$f.dmsg" -o "$f.$actor"
        expect 0 "$f: decrypt as $actor"
        check "$f: $actor gets the message back byte for byte" cmp -s "$f.$actor" "$CORPUS/$f"
    done
    run decrypt --as origin --key "$OK" --author-signet "$AS" -i "$f.dmsg"
    expect 0 "$f: decrypt as origin"
    check "$f: origin sees no common headers" lacks "common headers"
    run decrypt --as destination --key "$DK" --origin-signet "$OS" -i "$f.dmsg"
    expect 0 "$f: decrypt as destination"
    check "$f: destination learns the recipient" has "recipient: bob@bob.test"
done

# Standard output when -o is absent.
run decrypt --as recipient --key "$RK" --author-signet "$AS" --origin-signet "$OS" -i plain-text-lf.eml.dmsg
check "decrypt to standard output" cmp -s out.txt "$CORPUS/plain-text-lf.eml"

# Author form, then the separate origin step.
F=multipart-related-html.eml
run encrypt --author-signet "$AS" --author-key "$AK" --origin-signet "$OS" --dest-signet "$DS" \
    --recipient-signet "$RS" --from alice@alice.test --to bob@bob.test -i "$CORPUS/$F" -o author.dmsg
expect 0 "encrypt author form"
run decrypt --as recipient --key "$RK" --author-signet "$AS" --origin-signet "$OS" -i author.dmsg -o no.eml
expect 1 "author form fails at the recipient"
check "author form: error names chunk 248" has "chunk 248" err.txt
check "author form: nothing written" test ! -e no.eml
run show -i author.dmsg --as destination --key "$DK" --origin-signet "$OS"
expect 1 "show as destination on the author form: exit 1"
check "show lists the failed origin signature" grep -qE "^ +[0-9]+ +248 .* yes +failed" out.txt
run origin-sign --origin-key "$OK" --author-signet "$AS" --origin-signet "$OS" -i author.dmsg -o final.dmsg
expect 0 "origin-sign"
run decrypt --as recipient --key "$RK" --author-signet "$AS" --origin-signet "$OS" -i final.dmsg -o final.eml
expect 0 "origin-signed message decrypts"
check "origin-signed message: byte-identical MIME" cmp -s final.eml "$CORPUS/$F"
run origin-sign --origin-key "$DK" --author-signet "$AS" -i author.dmsg -o x.dmsg
expect 3 "origin-sign with another org's key cannot open the message"
run origin-sign --origin-key "$OK" --author-signet "$AS" --origin-signet "$DS" -i author.dmsg -o x.dmsg
expect 1 "origin-sign refuses a key that is not the origin signet's"

# Tampering: flip a byte in the display chunk of a final message (one whose display data
# reaches past payload byte 120: the whole message, in whole-message mode).
F=whole-mbox-from-line.eml
off=$("$DM" show -i "$F.dmsg" | awk '$2 == 67 { print $1; exit }')
cp "$F.dmsg" tampered.dmsg
pos=$((off + 4 + 100))
orig=$(od -An -tu1 -j "$pos" -N1 tampered.dmsg | tr -d ' ')
printf "$(printf '\\%03o' $(( (orig ^ 1) & 255 )))" | dd of=tampered.dmsg bs=1 seek="$pos" conv=notrunc status=none
run decrypt --as recipient --key "$RK" --author-signet "$AS" --origin-signet "$OS" -i tampered.dmsg -o t.eml
expect 1 "tampered display chunk: verification fails"
check "tampered: one-line error naming chunk 67" one_line_error decrypt
check "tampered: chunk 67 named" has "chunk 67 (display-content)" err.txt
run show -i tampered.dmsg --as recipient --key "$RK" --author-signet "$AS" --origin-signet "$OS"
expect 1 "show on the tampered message: exit 1"
check "show marks chunk 67 failed" grep -qE "^ +$off +67 .* yes +failed" out.txt

# Malformed input.
head -c 100 "$F.dmsg" >trunc.dmsg
run show -i trunc.dmsg
expect 3 "truncated message: malformed input"
check "truncated: one-line error" one_line_error show

# Never any key material in what the tool prints.
leak=0
for k in "$AK" "$OK" "$DK" "$RK"; do
    body=$(grep -v -- "-----" "$k" | tr -d '\n' | cut -c1-40)
    if grep -rqF -- "$body" "$T"/*.txt; then leak=1; fi
done
check "no key file text in any output" test "$leak" -eq 0

if [ -s "$T/sanitizer-reports" ]; then
    notok "sanitizer reports"
    sed 's/^/#   /' "$T/sanitizer-reports" | head -40
else
    ok "no sanitizer reports"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
