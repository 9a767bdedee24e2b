#!/usr/bin/env bash
# One hook in CLI mode, no CodeDeploy at all: the smoke hook (after-allow-test-traffic) judges a
# checkout that serves the old response shape (total_cents) against examples/plans, whose
# contract is the migrated one (total_minor_units only), then one that serves the new shape.
# The first must fail naming the broken field; the second must pass. Runs with --dry-run
# --skip-discovery, so it needs no AWS account. The drill (scripts/drill.sh) rehearses whole
# deployments instead.
set -euo pipefail
cd "$(dirname "$0")/.."

port=8081 # examples/plans/checkout-contract.json points at 127.0.0.1:8081
echo "==> building the hook and the sample checkout service"
cargo build --quiet -p after-allow-test-traffic -p checkout-examples --bin checkout-service
bin="${CARGO_TARGET_DIR:-target}/debug"

server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; }
trap cleanup EXIT

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "checkout-service did not start on port $port" >&2
  return 1
}

judge() { # shape expected-exit
  local shape=$1 expected=$2 status=0
  echo
  echo "==> green serves the $shape response shape"
  "$bin/checkout-service" --port "$port" --shape "$shape" &
  server=$!
  wait_for_port
  "$bin/after-allow-test-traffic" --event events/after-allow-test-traffic.json \
    --plan examples/plans/checkout-contract.json --dry-run --skip-discovery --timeout-ms 30000 || status=$?
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  if [ "$status" -ne "$expected" ]; then
    echo "demo: expected exit $expected for the $shape shape, got $status" >&2
    exit 1
  fi
}

judge cents 1
judge minor-units 0
echo
echo "demo: the stale green was stopped before production traffic; the v2 green got the green light."
