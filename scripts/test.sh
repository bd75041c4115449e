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

# When a step fails, say how much disk was left: a full disk fails builds mid-way.
trap 'status=$?; [ $status -ne 0 ] && { echo "test.sh: failed ($status); disk left:" >&2; df -h . "${CARGO_TARGET_DIR:-target}" >&2 || true; }' EXIT

# CI builds once from clean: incremental artefacts would only double the disk used.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

echo "==> one copy of each pinned crate in Cargo.lock"
for crate in tonic tonic-prost tonic-health tonic-reflection prost async-nats sqlx axum \
    opentelemetry opentelemetry_sdk tracing-opentelemetry config tokio; do
    n=$(grep -c "^name = \"$crate\"$" Cargo.lock || true)
    if [ "$n" != "1" ]; then
        echo "Cargo.lock holds $n copies of $crate (expected 1)" >&2
        exit 1
    fi
done

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
