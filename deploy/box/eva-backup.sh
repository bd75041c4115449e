#!/usr/bin/env bash
# Nightly backup of an EVA box (run by eva-backup.service):
#   eva backup "$EVA_BACKUP_ROOT/<UTC date>", then keep only the newest $EVA_BACKUP_KEEP.
# A backup is written under "<date>.partial" and renamed when complete, so neither the
# retention below nor a restore ever picks up a half-written one.
set -euo pipefail

root=${EVA_BACKUP_ROOT:-/var/backups/eva}
keep=${EVA_BACKUP_KEEP:-14}
eva=${EVA_BIN:-/usr/local/bin/eva}

case "$keep" in
'' | *[!0-9]* | 0)
    echo "eva-backup: EVA_BACKUP_KEEP must be a whole number >= 1, got '$keep'" >&2
    exit 2
    ;;
esac

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
target="$root/$stamp"
partial="$target.partial"

if [ -e "$target" ]; then
    echo "eva-backup: $target already exists (two runs within one second?); nothing done" >&2
    exit 1
fi
# Leftovers of an interrupted run are never restorable: remove them first.
find "$root" -mindepth 1 -maxdepth 1 -type d -name '*.partial' -exec rm -rf -- {} +

"$eva" backup "$partial"
mv -T -- "$partial" "$target"
echo "eva-backup: wrote $target"

# Complete backups are named by UTC date, so name order is age order.
mapfile -t old < <(find "$root" -mindepth 1 -maxdepth 1 -type d \
    -regextype posix-extended -regex '.*/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z' -printf '%f\n' |
    sort -r | tail -n +"$((keep + 1))")
for name in "${old[@]}"; do
    rm -rf -- "${root:?}/$name"
    echo "eva-backup: removed $root/$name (keeping the newest $keep)"
done
