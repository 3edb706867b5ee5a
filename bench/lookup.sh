#!/usr/bin/env bash
# bench/lookup.sh BUILD-DIR [seconds]: runs bench/lookup inside the environment that
# tests/integration/test_relay.sh sets up (nsd with DNSSEC-signed zones, keyvaults, relays;
# bob's relay without a signet cache), then tears it down. See BENCHMARKS.md.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
b=$(cd "${1:?usage: bench/lookup.sh BUILD-DIR [seconds]}" && pwd)
secs=${2:-1.0}
RELAY_BOB_CACHE_TTL=0 RELAY_ENV_HOOK="$b/bench/lookup" RELAY_ENV_HOOK_ARG="$secs" \
    bash "$top/tests/integration/test_relay.sh" "$b/keyvault/dime-keyvaultd" \
    "$b/tools/dimectl" "$b/dmtp-relay/dime-relayd" "$b/tools/dime-relayctl"
