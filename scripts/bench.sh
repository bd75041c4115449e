#!/usr/bin/env bash
# Runs the benchmark (outbox relay vs raw JetStream publish, end-to-end event latency)
# against a real nats-server. Arguments go to `eva-bench`.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

bash scripts/ensure-tools.sh

export EVA_NATS_SERVER="$repo/.tools/bin/nats-server"
exec cargo run --release --locked -p eva-tests --bin eva-bench -- "$@"
