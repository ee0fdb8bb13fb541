#!/usr/bin/env bash
# Starts Prometheus next to a running `martelo dev`, with the shipped configuration and
# alerting rules (cluster/deploy/prometheus/), and prints where to look.
#
#   cluster/deploy/observability.sh                  # Prometheus on http://127.0.0.1:9090/
#   cluster/deploy/observability.sh --port 9191      # another port (or PROMETHEUS_PORT=9191)
#   cluster/deploy/observability.sh --nodes 127.0.0.1:9201,127.0.0.1:9202 \
#       --gateway 127.0.0.1:8181                     # a cluster started on other ports
#
# Options:
#   --port PORT             Prometheus' web port on 127.0.0.1 (default 9090, or $PROMETHEUS_PORT)
#   --nodes A,B,...         the nodes' metrics addresses (default: martelo dev's
#                           127.0.0.1:9101-9103)
#   --gateway ADDR          the gateway's address, scraped at /metrics (default 127.0.0.1:8080)
#   --scrape-interval DUR   how often to scrape and evaluate the rules (default 15s, as shipped)
#   --keep                  keep the data directory when Prometheus stops
#
# Prometheus runs in the foreground, with its data in a new temporary directory (deleted on
# exit unless --keep), and listens on 127.0.0.1 only; Ctrl-C stops it. It needs Debian's
# Prometheus (`apt-get install -y prometheus`, which gives /usr/bin/prometheus; stop the
# service the package starts, `service prometheus stop`, if it holds port 9090), or any
# `prometheus` 2.x on PATH ($PROMETHEUS names another binary).
#
# The disk alert needs node_exporter on 127.0.0.1:9100 (`apt-get install -y
# prometheus-node-exporter`); the script says when none answers there. Import the Grafana
# dashboard (cluster/deploy/grafana/martelo.json) as docs/OPERATIONS.md, "Metrics,
# dashboards and alerts", describes.
set -euo pipefail

deploy_dir="$(cd "$(dirname "$0")" && pwd)"
port="${PROMETHEUS_PORT:-9090}"
nodes=""
gateway=""
scrape_interval=""
keep=false

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
    case "$1" in
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --nodes) nodes="${2:?--nodes needs a value}"; shift 2 ;;
        --gateway) gateway="${2:?--gateway needs a value}"; shift 2 ;;
        --scrape-interval) scrape_interval="${2:?--scrape-interval needs a value}"; shift 2 ;;
        --keep) keep=true; shift ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) ||
    { echo "--port $port is not a port number" >&2; exit 2; }

prometheus="${PROMETHEUS:-$(command -v prometheus || true)}"
if [[ -z "$prometheus" || ! -x "$prometheus" ]]; then
    echo "Prometheus is not installed: apt-get install -y prometheus (then stop the service" \
        "it starts: service prometheus stop)" >&2
    exit 1
fi

# Answers when something serves HTTP at $1 (host:port/path); bash's /dev/tcp, so no curl.
http_ok() {
    local host="${1%%:*}" rest="${1#*:}"
    local port="${rest%%/*}" path="/${rest#*/}"
    [[ "$rest" == */* ]] || path="/"
    local status=""
    { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
    read -r -t 2 status <&3 || true
    exec 3>&-
    [[ "$status" == HTTP/*" 200"* ]]
}

# Whether something accepts connections on 127.0.0.1:$1.
port_taken() {
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    exec 3>&-
}

if port_taken "$port"; then
    echo "something already serves port $port (the Debian service? service prometheus stop);" \
        "choose another with --port" >&2
    exit 1
fi

data_dir="$(mktemp -d -t martelo-prometheus-XXXXXX)"
cleanup() {
    if [[ -n "${prometheus_pid:-}" ]]; then
        kill "$prometheus_pid" 2>/dev/null || true
        wait "$prometheus_pid" 2>/dev/null || true
    fi
    if $keep; then
        echo "Prometheus data kept in $data_dir"
    else
        rm -rf "$data_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The shipped configuration, with the targets and interval asked for. The rules file is
# copied beside it unchanged (the configuration names it relative to its own directory).
cp "$deploy_dir/prometheus/alerts.yml" "$data_dir/alerts.yml"
awk -v nodes="$nodes" -v gateway="$gateway" -v interval="$scrape_interval" '
    # Inside the targets list of job martelo-node (or martelo-gateway), replace the listed
    # targets with the ones given, once.
    /^  - job_name: / { job = $3; replaced = 0 }
    /^(  scrape_interval|  evaluation_interval): / && interval != "" {
        sub(/: .*/, ": " interval)
    }
    /^          - / && ((job == "martelo-node" && nodes != "") ||
                        (job == "martelo-gateway" && gateway != "")) {
        if (!replaced) {
            n = split(job == "martelo-node" ? nodes : gateway, list, ",")
            for (i = 1; i <= n; i++) print "          - " list[i]
            replaced = 1
        }
        next
    }
    { print }
' "$deploy_dir/prometheus/prometheus.yml" >"$data_dir/prometheus.yml"

"$prometheus" \
    --config.file="$data_dir/prometheus.yml" \
    --storage.tsdb.path="$data_dir/data" \
    --web.listen-address="127.0.0.1:$port" \
    >"$data_dir/prometheus.log" 2>&1 &
prometheus_pid=$!

for _ in $(seq 1 100); do
    http_ok "127.0.0.1:$port/-/ready" && break
    kill -0 "$prometheus_pid" 2>/dev/null || {
        echo "Prometheus exited; its log:" >&2
        cat "$data_dir/prometheus.log" >&2
        exit 1
    }
    sleep 0.1
done
http_ok "127.0.0.1:$port/-/ready" ||
    { echo "Prometheus did not get ready; log: $data_dir/prometheus.log" >&2; exit 1; }

echo "Prometheus  http://127.0.0.1:$port/  (targets: /targets, alerts: /alerts)"
echo "  config    $data_dir/prometheus.yml"
echo "  log       $data_dir/prometheus.log"
IFS=, read -r -a node_targets <<<"${nodes:-127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103}"
for target in "${node_targets[@]}" "${gateway:-127.0.0.1:8080}/metrics"; do
    http_ok "$target" || echo "  note: nothing answers at $target yet (is martelo dev running?)"
done
http_ok "127.0.0.1:9100/metrics" ||
    echo "  note: no node_exporter on 127.0.0.1:9100: the disk alert has no data" \
        "(apt-get install -y prometheus-node-exporter)"
# Spans go to any OTLP/gRPC backend; this script starts none (docs/OPERATIONS.md, "Traces",
# shows Arize Phoenix on 127.0.0.1:4317 and how to point martelo dev at it).
echo "Traces: start a backend (e.g. Arize Phoenix, docs/OPERATIONS.md \"Traces\") and run" \
    "martelo dev with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317"
echo "Ctrl-C stops Prometheus."
wait "$prometheus_pid"
