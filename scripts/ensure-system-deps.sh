#!/usr/bin/env bash
# Installs the system packages the tests and the demo run for real, when they are missing:
# redis-server; the monitoring chain (Prometheus with promtool, Alertmanager with amtool,
# redis_exporter) for tests/deploy/test_alerting_chain.py and tests/deploy/test_deploy_monitoring.py;
# docker-compose, whose `config` validates docker-compose.yml without a Docker engine; and
# chromium, the browser tests/approvals/test_ui_approval.py drives through the Temporal Web UI with
# Playwright (Playwright's own browser download is never used; elsewhere that test skips); nginx,
# the TLS-terminating gRPC proxy tests/worker/test_temporal_tls.py puts in front of Temporal.
# Quiet and idempotent: it does nothing when every binary is there.
set -euo pipefail

missing=()
need() { # need BINARY PACKAGE
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ] || missing+=("$2")
}
need redis-server redis-server
need prometheus prometheus
need promtool prometheus
need prometheus-alertmanager prometheus-alertmanager
need amtool prometheus-alertmanager
need prometheus-redis-exporter prometheus-redis-exporter
need docker-compose docker-compose
need chromium chromium
need nginx nginx

[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

# The Debian packages start their services on install where an init system runs them; the
# tests start their own processes on free loopback ports, so keep the services from starting
# (policy-rc.d 101 = "action forbidden"), only when no policy is in place already.
install_quietly() { # install_quietly [sudo]
    local sudo="${1:-}" policy=/usr/sbin/policy-rc.d placed=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 0755 "$policy"
        placed=yes
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || status=$?
    [ "$placed" = yes ] && $sudo rm -f "$policy"
    return "${status:-0}"
}

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} with apt-get"
    install_quietly
elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1; then
    echo "installing ${missing[*]} with sudo apt-get"
    install_quietly sudo
else
    echo "missing: ${missing[*]}. Install them and run again:" >&2
    echo "  Debian/Ubuntu: apt-get install -y ${missing[*]}" >&2
    echo "  macOS:         brew install redis prometheus alertmanager redis_exporter docker-compose" >&2
    exit 1
fi
