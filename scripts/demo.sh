#!/usr/bin/env bash
# The main job on the local stack: collector, the three consumers and the read
# API run as background processes; loadgen sends DEMO_DURATION of traffic
# through the collector (plus a few malformed records straight to Kinesis, to
# show the dead-letter path); then everything stops gracefully and a summary
# shows what reached each store. `make demo` runs it after `make up build`.
#
#   DEMO_DURATION=20s DEMO_RATE=300   how much traffic
#   DEMO_KEEP=1                       keep the API and dashboard running at the end
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/clickstream}
DURATION=${DEMO_DURATION:-20s}
RATE=${DEMO_RATE:-300}
COLLECTOR_ADDR=${DEMO_ADDR:-127.0.0.1:8080}
API_ADDR=${DEMO_API_ADDR:-127.0.0.1:8081}
# The read API wants a key; the demo makes one up (or takes DEMO_API_KEY).
API_KEY=${DEMO_API_KEY:-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
METRICS_ADDR=${DEMO_METRICS_ADDR:-127.0.0.1:9464}
LOGS=.local/demo
mkdir -p "$LOGS"

[ -f .local/env ] || { echo "demo: .local/env missing; run make up" >&2; exit 1; }
# shellcheck disable=SC1091
source .local/env

pids=()
stop_all() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_all EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

wait_http() { # URL NAME LOG
	local i
	for i in $(seq 1 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	echo "demo: $2 did not come up at $1; see $3" >&2
	tail -20 "$3" >&2
	exit 1
}

step "setup: stream, tables, bucket"
"$BIN" setup

step "start collector ($COLLECTOR_ADDR), consumers (archive vectors metrics), api ($API_ADDR)"
"$BIN" collector --addr "$COLLECTOR_ADDR" --insecure-no-auth >"$LOGS/collector.log" 2>&1 &
pids+=($!)
"$BIN" consume archive vectors metrics --archive-max-age 5s --metrics-addr "$METRICS_ADDR" \
	>"$LOGS/consume.log" 2>&1 &
consume_pid=$!
pids+=($consume_pid)
"$BIN" api --addr "$API_ADDR" --api-key "$API_KEY" >"$LOGS/api.log" 2>&1 &
api_pid=$!
pids+=($api_pid)
wait_http "http://$COLLECTOR_ADDR/healthz" collector "$LOGS/collector.log"
wait_http "http://$METRICS_ADDR/healthz" consumers "$LOGS/consume.log"
wait_http "http://$API_ADDR/healthz" api "$LOGS/api.log"
echo "logs in $LOGS/; dashboard: http://$API_ADDR/#key=$API_KEY"

step "loadgen: $RATE events/s for $DURATION through the collector (0.2% malformed: rejected by the collector)"
"$BIN" loadgen --url "http://$COLLECTOR_ADDR" --rate "$RATE" --duration "$DURATION" --bad-rate 0.002 --late-share 0.01

EXAMPLE_URL="http://$COLLECTOR_ADDR/v1/sdk/example.html?key=demo-web-key-0123456789&user=u-web-demo&flush=500"
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$CHROMIUM" ]; then
	step "a real page: headless Chromium opens the web SDK's example (impressions of the items on screen, through /v1/events)"
	timeout 30 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --virtual-time-budget=6000 \
		--user-data-dir="$(mktemp -d)" --dump-dom "$EXAMPLE_URL" >/dev/null 2>"$LOGS/chromium.log" \
		&& echo "page loaded; its events are among the stream's (user u-web-demo)" \
		|| echo "chromium could not load the page (see $LOGS/chromium.log); the page is at $EXAMPLE_URL"
else
	echo "web SDK example (open it in a browser): $EXAMPLE_URL"
fi

step "loadgen: 200 events straight to Kinesis, 5% malformed (they go to the dead-letter prefix)"
"$BIN" loadgen --via kinesis --events 200 --bad-rate 0.05 --seed 7 --quiet

step "let the consumers catch up, then stop them gracefully (final flush and checkpoint)"
sleep 12
kill -TERM "$consume_pid"
wait "$consume_pid" || { echo "demo: consumers exited with an error; see $LOGS/consume.log" >&2; exit 1; }

step "stream: what is on it"
"$BIN" stream stats

step "archive: partitions, files, rows (Parquet footers), dead letters"
"$BIN" archive stats

step "vectors: a few users' top features (decayed clicks/impressions)"
"$BIN" vectors sample --n 5 --k 4
if [ -n "$CHROMIUM" ]; then
	echo "the example page's user (impressions from a real browser):"
	"$BIN" vectors get --k 3 u-web-demo || echo "(no vector for u-web-demo: see $LOGS/chromium.log)"
fi

step "read API: GET /v1/metrics with its key (401 without one)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$API_ADDR/v1/metrics")
echo "without a key: HTTP $code"
curl -fsS -H "Authorization: Bearer $API_KEY" "http://$API_ADDR/v1/metrics" | head -c 300; echo

step "metrics: cache hit rate per route, last 5 minutes (incl. the live minute)"
"$BIN" metrics query access --from -5m --open --values requests,hit_rate,miss_rate,expired_rate,latency_p95_ms
step "metrics: click-through rate per placement"
"$BIN" metrics query engagement --from -5m --open

if [ "${DEMO_KEEP:-}" = 1 ]; then
	step "API and dashboard still running at http://$API_ADDR/#key=$API_KEY — Ctrl-C to stop"
	wait "$api_pid" || true
fi
echo
echo "demo done. Dashboard (with DEMO_KEEP=1): http://$API_ADDR/#key=$API_KEY   Stop the stack: make down"
