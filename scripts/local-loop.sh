#!/usr/bin/env bash
# The local loop: codedeploy-local serve holding the deployments the sample events in events/
# belong to, and cargo lambda watch serving every hook against it, until Ctrl-C. In a second
# terminal, invoke the hooks in lifecycle order (each deployment moves on as its hooks report):
#
#   cargo lambda invoke before-install --invoke-address 127.0.0.1 --data-file events/before-install.json
#
# The checks are examples/local-loop/plan.json (GREENLIGHT_PLAN_FILE overrides it). Ports:
# CODEDEPLOY_LOCAL_PORT (4566) for CodeDeploy and Lambda, INVOKE_PORT (9000) for cargo lambda
# invoke, 8080 and 8081 for the checkout service's production and test listeners.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
port="${CODEDEPLOY_LOCAL_PORT:-4566}"
invoke_port="${INVOKE_PORT:-9000}"
plan="$(realpath "${GREENLIGHT_PLAN_FILE:-examples/local-loop/plan.json}")"
loop=examples/local-loop
work=target/local-loop
endpoint="http://127.0.0.1:$port"

venv="$(bash scripts/python-env.sh)"
# `cargo run --bin <hook>`, which watch runs, resolves features across the whole workspace: build
# the same way so that watch finds every hook built and starts it at once.
bins=(codedeploy-local checkout-service checkout-function)
for hook in hooks/*/; do bins+=("$(basename "$hook")"); done
cargo build "${bins[@]/#/--bin=}"

mkdir -p "$work"
target/debug/codedeploy-local serve --config "$loop/local.json" --port "$port" --log-dir "$work/logs" >/dev/null &
serve_pid=$!
# SIGINT, on which serve stops the task processes it started (SIGTERM would leave them behind).
trap 'kill -INT "$serve_pid" 2>/dev/null && wait "$serve_pid" || true' EXIT
until curl --silent --fail "$endpoint/_local/health" >/dev/null; do
  kill -0 "$serve_pid" 2>/dev/null || { echo "local-loop: codedeploy-local serve did not start" >&2; exit 1; }
  sleep 0.2
done

post() { # URL path, content type, JSON file, extra curl arguments
  curl --silent --show-error --fail-with-body --output /dev/null -H "content-type: $2" --data "@$3" "${@:4}" "$endpoint$1"
}
codedeploy() { post / application/x-amz-json-1.1 "$2" -H "x-amz-target: CodeDeploy_20141006.$1"; }
for platform in ecs lambda; do
  codedeploy CreateApplication "$loop/$platform/application.json"
  codedeploy CreateDeploymentGroup "$loop/$platform/group.json"
  post /_local/deployments application/json "$loop/$platform/deployment.json"
done

cat >"$work/loop.env" <<EOF
AWS_ENDPOINT_URL=$endpoint
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=codedeploy-local
AWS_SECRET_ACCESS_KEY=codedeploy-local
AWS_EC2_METADATA_DISABLED=true
GREENLIGHT_PLAN_FILE=$plan
EOF
echo "local-loop: codedeploy-local on $endpoint holds d-ECS000001 and d-LAMBDA001 (see $endpoint/_local/deployments/d-ECS000001)"
echo "local-loop: now run, in another terminal: cargo lambda invoke <hook> --invoke-address 127.0.0.1 --invoke-port $invoke_port --data-file events/<hook>.json"
"$venv/bin/cargo-lambda" lambda watch --invoke-address 127.0.0.1 --invoke-port "$invoke_port" --env-file "$work/loop.env"
