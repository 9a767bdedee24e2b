#!/usr/bin/env bash
# The main job: rehearse five releases end to end on the local CodeDeploy and watch the hooks
# gate them. Builds the seven hooks, the sample checkout apps and codedeploy-local, then runs
# `codedeploy-local drill`: a live timeline per scenario, an SVG picture of each in target/drill,
# and a summary table. Exits non-zero if any scenario ends differently from what it rehearses.
# Extra arguments go to the drill (e.g. --scenario ecs-contract-break, --time-scale 30).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building the hooks, the sample checkout apps and codedeploy-local"
cargo build --quiet -p codedeploy-local -p checkout-examples \
  -p before-install -p after-install -p after-allow-test-traffic -p before-allow-traffic \
  -p after-allow-traffic -p pre-traffic -p post-traffic
bin="${CARGO_TARGET_DIR:-target}/debug"
exec "$bin/codedeploy-local" drill --bin-dir "$bin" --out target/drill "$@"
