#!/usr/bin/env bash
# Runs the benchmarks against a real nats-server (and PostgreSQL with `--db postgres`):
# outbox relay vs raw JetStream, event latency, tokens, consent checks, withdrawal lag,
# diagnostic reads, referrals to a partner, community search, statistics (ingestion of
# diagnostic events, dashboard queries, rebuild). `--only a,b` picks sections; every
# argument goes to `eva-bench` (`--help` lists them). Figures and how to read them:
# docs/PERFORMANCE.md.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

bash scripts/ensure-tools.sh

export EVA_NATS_SERVER="$repo/.tools/bin/nats-server"
exec cargo run --release --locked -p eva-tests --bin eva-bench -- "$@"
