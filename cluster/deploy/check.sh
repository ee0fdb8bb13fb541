#!/usr/bin/env bash
# Checks what cluster/deploy ships, offline: the Prometheus configuration and alerting rules
# (`promtool check config`, `promtool check rules`), the rules' unit tests (`promtool test
# rules`, cluster/deploy/prometheus/alerts_test.yml) and that the Grafana dashboard is JSON.
# CI runs it (.ci/run); run it after changing anything here. Needs promtool (Debian:
# `apt-get install -y prometheus`) and python3.
#
# That the rules and the dashboard name only series the processes really export, and
# evaluate against them, is checked by a real Prometheus scraping a real cluster:
# `cargo test -p martelo-tests --test prometheus`.
set -euo pipefail
cd "$(dirname "$0")"

command -v promtool >/dev/null ||
    { echo "promtool is missing: apt-get install -y prometheus" >&2; exit 1; }

promtool check config prometheus/prometheus.yml
promtool check rules prometheus/alerts.yml
# The test file names alerts.yml relative to its own directory.
promtool test rules prometheus/alerts_test.yml
python3 -c 'import json, sys; json.load(open(sys.argv[1])); print("grafana/martelo.json: valid JSON")' \
    grafana/martelo.json

# The multi-machine deployment: Kubernetes manifests (schemas and lint), systemd units,
# the Dockerfile. Needs `pip install -r cluster/deploy/requirements.txt` and systemd-analyze.
bash k8s/check.sh
bash systemd/check.sh
bash container/check.sh
