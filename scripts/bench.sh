#!/usr/bin/env bash
# Benchmarks the hooks against the Python reference hook in bench/reference: cold start, init,
# peak memory, first HTTPS vs HTTP, 50 concurrent checks, a CPU-throttled cold start, and the
# release bootstrap and zip size of every hook for x86_64 and arm64; then the fleet run, 40
# deployments through one set of hooks at once against one deployment alone.
#
#   bash scripts/bench.sh              # release build, 20 runs per subject, sizes; writes bench/results/
#   bash scripts/bench.sh --no-sizes   # the same without the two cross builds (they take the longest)
#   bash scripts/bench.sh --fleet      # only the fleet run: bench/results/fleet.{md,json}
#   bash scripts/bench.sh --tiny       # 3 runs and a fleet of 6, debug builds, into target/bench-tiny
#
# Extra arguments after `--` go to greenlight-bench (see `greenlight-bench --help`), for example
# `-- --runs 50` or `-- --cpu-quota 0`. The throttled runs need a writable cgroup CPU controller
# (root, or a delegated cgroup); without one they are skipped and the report says so.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode=full
sizes=1
only=()
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tiny) mode=tiny ;;
    --no-sizes) sizes=0 ;;
    --fleet) only=(--fleet-only); sizes=0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "bench.sh: unknown argument $1 (try --tiny, --no-sizes, --fleet, or -- ARGS for greenlight-bench)" >&2; exit 2 ;;
  esac
  shift
done

# The Python reference hook runs from .venv (boto3, urllib3, awslambdaric); cargo-lambda and zig too.
venv="$(bash scripts/python-env.sh)"
export PATH="$venv/bin:$PATH"

hooks=(before-install after-install after-allow-test-traffic before-allow-traffic after-allow-traffic pre-traffic post-traffic)
packages=()
for hook in "${hooks[@]}"; do packages+=(-p "$hook"); done

if [[ "$mode" == tiny ]]; then
  cargo build --quiet "${packages[@]}" -p checkout-examples -p greenlight-bench
  exec target/debug/greenlight-bench --runs 3 --hook-dir target/debug --out target/bench-tiny \
    --fleet-ecs 3 --fleet-lambda 3 --fleet-broken-ecs 1 --fleet-broken-lambda 1 \
    --build "debug (tiny mode, figures not representative)" "${only[@]}" "${extra[@]}"
fi

echo "bench.sh: building the harness, the sample apps and the hooks in release" >&2
cargo build --release -p checkout-examples -p greenlight-bench
# The hooks on their own, so they get the features a hook's release build has: built together with
# the harness, cargo would unify in the test-only TLS dependencies.
cargo build --release "${packages[@]}"
size_args=()
if [[ "$sizes" == 1 ]]; then
  for arch in x86_64 arm64; do
    echo "bench.sh: cargo lambda build --release for $arch (the slowest step: LTO, one codegen unit)" >&2
    flag="--x86-64"
    [[ "$arch" == arm64 ]] && flag="--arm64"
    cargo lambda build --release "$flag" --output-format zip --lambda-dir "target/lambda-$arch" "${packages[@]}"
    size_args+=(--lambda-dir "$arch=target/lambda-$arch")
  done
fi
target/release/greenlight-bench --runs 20 --hook-dir target/release --out bench/results --build release \
  "${size_args[@]}" "${only[@]}" "${extra[@]}"
