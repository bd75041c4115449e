#!/usr/bin/env bash
# Installs (or upgrades) EVA on an association box, as root. Idempotent: run it again
# after building a new `eva` to upgrade; existing configuration and keys are kept.
#
#   sudo deploy/box/install.sh [--eva PATH] [--nats-server PATH] [--no-start]
#
#   --eva          the eva binary (default: target/release/eva, or $CARGO_TARGET_DIR/release/eva)
#   --nats-server  nats-server >= 2.10.23 (default: .tools/bin/nats-server, else the one in PATH)
#   --no-start     install and enable, but do not (re)start the services
#
# What it does, each step only if needed:
#   - a system user and group `eva` (no login, home /var/lib/eva);
#   - /var/lib/eva (data), /var/lib/eva/nats (JetStream store), /var/backups/eva, /etc/eva;
#   - /usr/local/bin/eva and /usr/local/bin/nats-server (replaced: that is the upgrade);
#   - /etc/eva/nats.conf from deploy/box/nats.conf, if absent;
#   - /etc/eva/kek.key: the key-encryption key, 32 random bytes in base64, if absent;
#   - /etc/eva/eva.toml from deploy/eva.example.toml, if absent, with data_dir, JSON logs,
#     bus.url and keys.kek_file set for the box; then `eva check-config` as user eva;
#   - the systemd units, enabled: eva-nats, eva, eva-backup.timer.
set -euo pipefail

cd "$(dirname "$0")/../.."
repo=$(pwd)

eva_src="${CARGO_TARGET_DIR:-$repo/target}/release/eva"
nats_src=""
start=1
while [ $# -gt 0 ]; do
    case "$1" in
    --eva) eva_src=$2; shift 2 ;;
    --nats-server) nats_src=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$nats_src" ]; then
    if [ -x "$repo/.tools/bin/nats-server" ]; then
        nats_src="$repo/.tools/bin/nats-server"
    else
        nats_src=$(command -v nats-server || true)
    fi
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo deploy/box/install.sh)" >&2
    exit 1
fi
[ -x "$eva_src" ] || {
    echo "install.sh: no eva binary at '$eva_src': build it (cargo build --release -p eva) or pass --eva" >&2
    exit 1
}
[ -n "$nats_src" ] && [ -x "$nats_src" ] || {
    echo "install.sh: nats-server not found: run scripts/ensure-tools.sh or pass --nats-server" >&2
    exit 1
}

say() { echo "install.sh: $*"; }

# User and directories.
if ! getent passwd eva >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/eva --no-create-home \
        --shell /usr/sbin/nologin --comment "EVA" eva
    say "created system user eva"
fi
install -d -o eva -g eva -m 0750 /var/lib/eva /var/lib/eva/nats /var/backups/eva
install -d -o root -g eva -m 0750 /etc/eva
install -d -o root -g root -m 0755 /usr/local/lib/eva /usr/local/share/doc/eva

# Binaries: replacing them is the upgrade; units restart below.
install -o root -g root -m 0755 "$eva_src" /usr/local/bin/eva
install -o root -g root -m 0755 "$nats_src" /usr/local/bin/nats-server
install -o root -g root -m 0755 deploy/box/eva-backup.sh /usr/local/lib/eva/eva-backup.sh
install -o root -g root -m 0644 deploy/README.md /usr/local/share/doc/eva/README.md

# nats-server configuration, kept if present (it may include partners' accounts).
if [ ! -e /etc/eva/nats.conf ]; then
    install -o root -g eva -m 0640 deploy/box/nats.conf /etc/eva/nats.conf
    say "wrote /etc/eva/nats.conf"
elif ! cmp -s deploy/box/nats.conf /etc/eva/nats.conf; then
    say "kept /etc/eva/nats.conf (differs from deploy/box/nats.conf: compare them after an upgrade)"
fi

# The key-encryption key: without it nothing personal can be read. Never overwritten.
if [ ! -e /etc/eva/kek.key ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 -w0 >/etc/eva/kek.key)
    chown root:eva /etc/eva/kek.key
    chmod 0640 /etc/eva/kek.key
    say "generated /etc/eva/kek.key: copy it somewhere safe, apart from the backups"
fi

# EVA's configuration: the example with the box's four settings.
if [ ! -e /etc/eva/eva.toml ]; then
    tmp=$(mktemp)
    sed -e 's|^data_dir = "data"$|data_dir = "/var/lib/eva"|' \
        -e 's|^log_format = "pretty"$|log_format = "json"|' \
        -e 's|^# url = "nats://127.0.0.1:4222"$|url = "nats://127.0.0.1:4222"|' \
        -e 's|^# kek_file = "/etc/eva/kek.key"$|kek_file = "/etc/eva/kek.key"|' \
        deploy/eva.example.toml >"$tmp"
    for line in 'data_dir = "/var/lib/eva"' 'log_format = "json"' \
        'url = "nats://127.0.0.1:4222"' 'kek_file = "/etc/eva/kek.key"'; do
        grep -qxF "$line" "$tmp" || {
            rm -f "$tmp"
            echo "install.sh: deploy/eva.example.toml changed: cannot set '$line'" >&2
            exit 1
        }
    done
    install -o root -g eva -m 0640 "$tmp" /etc/eva/eva.toml
    rm -f "$tmp"
    say "wrote /etc/eva/eva.toml"
fi
if ! out=$(runuser -u eva -- env EVA_CONFIG=/etc/eva/eva.toml /usr/local/bin/eva check-config 2>&1); then
    echo "install.sh: /etc/eva/eva.toml is refused: $out" >&2
    exit 1
fi

# Units.
for unit in eva-nats.service eva.service eva-backup.service eva-backup.timer; do
    install -o root -g root -m 0644 "deploy/box/$unit" "/etc/systemd/system/$unit"
done
if [ ! -d /run/systemd/system ]; then
    say "systemd is not running here: units installed, not enabled"
    exit 0
fi
systemctl daemon-reload
systemctl enable --quiet eva-nats.service eva.service eva-backup.timer
if [ "$start" -eq 1 ]; then
    # restart: picks up new binaries on an upgrade; migrations run as eva starts.
    systemctl restart eva-nats.service eva.service
    systemctl start eva-backup.timer
    say "started; check: systemctl status eva, curl http://127.0.0.1:8080/readyz"
else
    say "installed and enabled (not started)"
fi
