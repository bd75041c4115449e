#!/usr/bin/env bash
# The one start command: installs what is missing, then runs the all-in-one `eva up`
# (every service, the gateway, and a local nats-server). Arguments go to `eva up`.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

bash scripts/ensure-tools.sh

export EVA_NATS_SERVER="$repo/.tools/bin/nats-server"
exec cargo run --release --locked -p eva -- up "$@"
