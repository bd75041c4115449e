#!/usr/bin/env bash
# The one test command: installs what is missing, then format check, clippy, and every test
# (against a real nats-server and real PostgreSQL, started by the test harness).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

bash scripts/ensure-tools.sh

export EVA_NATS_SERVER="$repo/.tools/bin/nats-server"
initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)
EVA_PG_BINDIR=$(dirname "$initdb")
export EVA_PG_BINDIR

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo nextest run"
profile=()
if [ -n "${CI:-}" ]; then
    profile=(--profile ci)
fi
cargo nextest run --workspace --locked "${profile[@]}"
