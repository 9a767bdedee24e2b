#!/usr/bin/env bash
# The main job: rehearse eight scenarios end to end on the local CodeDeploy and watch the hooks
# gate them. Builds the seven hooks, the sample checkout apps and codedeploy-local, then runs
# `codedeploy-local drill`: a live timeline per scenario, an SVG picture of each in target/drill
# (or the folder --out names), and a summary table. Exits non-zero if any scenario ends
# differently from what it rehearses.
# Arguments go to the drill (e.g. --scenario ecs-contract-break, --time-scale 30, --out DIR).
set -euo pipefail
caller="$PWD"
cd "$(dirname "$0")/.."

# The drill runs from the workspace root, so a relative --out is made absolute here: it names a
# folder where the user stands, not inside the workspace. Without --out the drill's own default,
# target/drill in the workspace, applies.
absolute() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$caller/$1"; fi; }
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out=*) args+=(--out "$(absolute "${1#--out=}")") ;;
    --out)
      [[ $# -ge 2 ]] || { echo "drill.sh: --out needs a folder" >&2; exit 2; }
      args+=(--out "$(absolute "$2")")
      shift
      ;;
    *) args+=("$1") ;;
  esac
  shift
done

echo "==> building the hooks, the sample checkout apps and codedeploy-local"
cargo build --quiet -p codedeploy-local -p checkout-examples \
  -p before-install -p after-install -p after-allow-test-traffic -p before-allow-traffic \
  -p after-allow-traffic -p pre-traffic -p post-traffic
bin="${CARGO_TARGET_DIR:-target}/debug"
exec "$bin/codedeploy-local" drill --bin-dir "$bin" "${args[@]}"
