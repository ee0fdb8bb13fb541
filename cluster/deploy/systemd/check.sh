#!/usr/bin/env bash
# Checks cluster/deploy/systemd offline: `systemd-analyze verify` (syntax, directives,
# dependencies) and `systemd-analyze security --offline` (the hardening stays at an
# exposure of 2.0 or less; both units score 1.5 today) on each unit. verify wants the
# ExecStart binary to exist: it checks copies that point at a stand-in. Not checked: that
# the units start and the node runs under their sandbox (no systemd as PID 1 here).
# Needs systemd-analyze (Debian: systemd).
set -euo pipefail
cd "$(dirname "$0")"

command -v systemd-analyze >/dev/null ||
    { echo "systemd-analyze is missing: apt-get install -y systemd" >&2; exit 1; }
copies="$(mktemp -d)"
trap 'rm -rf "$copies"' EXIT
for unit in ./*.service; do
    sed 's#/usr/local/bin/martelo#/bin/true#' "$unit" >"$copies/$(basename "$unit")"
done
# verify exits 0 on warnings such as an unknown directive: any output is a failure here.
warnings="$(systemd-analyze verify "$copies"/*.service 2>&1)"
[[ -z "$warnings" ]] || { echo "$warnings" >&2; exit 1; }
for unit in "$copies"/*.service; do
    systemd-analyze security --offline=true --threshold=20 --no-pager "$unit" >/dev/null ||
        { echo "systemd: $(basename "$unit") is less hardened than 2.0 allows" >&2; exit 1; }
done
echo "systemd: units verify, and their exposure is at most 2.0"

# Planted bugs: a misspelt directive, and a unit stripped of its hardening.
sed 's/^TimeoutStopSec=/TimeoutStopSecs=/' "$copies/martelo-node.service" >"$copies/bad.service"
if systemd-analyze verify "$copies/bad.service" 2>&1 | grep -q "Unknown key"; then :; else
    echo "systemd: verify missed a misspelt directive" >&2; exit 1
fi
grep -v -E '^(Protect|Private|Restrict|SystemCall|Capability|NoNewPriv|MemoryDeny)' \
    "$copies/martelo-node.service" >"$copies/bare.service"
if systemd-analyze security --offline=true --threshold=20 "$copies/bare.service" \
    >/dev/null 2>&1; then
    echo "systemd: the hardening check passed an unhardened unit" >&2; exit 1
fi
echo "systemd: both checks fail on a planted bug"
