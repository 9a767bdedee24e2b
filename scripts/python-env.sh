#!/usr/bin/env bash
# Creates or refreshes .venv at the repository root with the tools pinned in requirements-dev.txt
# (cfn-lint, the SAM CLI, cargo-lambda with zig, boto3, awslambdaric, junitparser). pip runs only
# when requirements-dev.txt changed since the last successful install, so a second call returns at
# once. Prints the virtualenv's path on stdout; progress goes to stderr.
#
#   source "$(bash scripts/python-env.sh)/bin/activate"
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
requirements="$root/requirements-dev.txt"
stamp="$venv/.requirements.sha256"

# One installer at a time: concurrent test processes may call this together.
exec 9<"$requirements"
if command -v flock >/dev/null; then
  flock 9
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "python-env: creating $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  echo "python-env: installing requirements-dev.txt into $venv (a few minutes the first time)" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
  echo "$want" >"$stamp"
fi
echo "$venv"
