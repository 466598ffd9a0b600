#!/usr/bin/env bash
# The performance comparison in one command: builds what is missing, runs every scenario against
# realtime-server and each peer (Bun, Node ws, Socket.IO, Go gorilla) side by side, and rewrites
# docs/PERFORMANCE.md with the table, the ratios and the plots (docs/perf/*.png).
#
#   bench/run.sh                 full comparison (< 15 min on 2 cores)
#   bench/run.sh --smoke         each scenario once, tiny, realtime-server only (< 60 s; for CI)
#
# Options: --peers "realtime bun node-ws socketio go-gorilla"  --scenarios "idle fanout ..."
#          --build-dir DIR (default build-release; REALTIME_BUILD_DIR too)  --out DIR  --no-docs
#          (scenarios: idle fanout saturation hotroom connect crosspod fanout-pods idle-pods)
#          --threads N (realtime-server I/O threads, default 2)
#          --server PATH (a realtime-server binary to use instead of building one)
# Every load step is bounded in time; every server started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
MODE=full
PEERS="realtime bun node-ws socketio go-gorilla"
SCENARIOS="idle fanout saturation hotroom connect crosspod fanout-pods idle-pods"
BUILD_DIR="${REALTIME_BUILD_DIR:-$ROOT/build-release}"
OUT=""
DOCS=1
RT_THREADS=2
SERVER_BIN_OVERRIDE=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --smoke) MODE=smoke ;;
    --peers) PEERS="$2"; shift ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    --build-dir) BUILD_DIR="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-docs) DOCS=0 ;;
    --threads) RT_THREADS="$2"; shift ;;
    --server) SERVER_BIN_OVERRIDE="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $MODE == smoke ]]; then
  PEERS="realtime"
  DOCS=0
fi
BUILD_DIR="$(mkdir -p "$BUILD_DIR" && cd "$BUILD_DIR" && pwd)"
OUT="${OUT:-$BUILD_DIR/bench-results/$MODE}"
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl" "$OUT/commands.txt" "$OUT/incidents.txt"
LOGS="$OUT/logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"
START_TIME=$(date +%s)

log() { printf '[run.sh %4ss] %s\n' "$(($(date +%s) - START_TIME))" "$*" >&2; }

apt_ready=0
apt_install() {  # packages...
  if [[ $apt_ready == 0 ]]; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt_ready=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Build

SERVER_BIN="${SERVER_BIN_OVERRIDE:-$BUILD_DIR/server/realtime-server}"
BENCH_BIN="$BUILD_DIR/bench/realtime-bench"
if [[ -f "$BUILD_DIR/build.ninja" || ! -x "$SERVER_BIN" || ! -x "$BENCH_BIN" ]]; then
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    log "configuring a release build in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DREALTIME_BUILD_TESTS=OFF -DREALTIME_BUILD_EXAMPLES=OFF >"$LOGS/cmake.log"
  fi
  targets="realtime-bench"
  [[ -z $SERVER_BIN_OVERRIDE ]] && targets+=" realtime-server"
  [[ $MODE == full ]] && grep -q 'realtime-micro' "$BUILD_DIR/build.ninja" && targets+=" realtime-micro"
  log "building $targets"
  ninja -C "$BUILD_DIR" -j2 $targets >"$LOGS/build.log" || { tail -40 "$LOGS/build.log"; exit 1; }
fi

want_peer() { [[ " $PEERS " == *" $1 "* ]]; }
want_scenario() { [[ " $SCENARIOS " == *" $1 "* ]]; }

if want_peer bun && [[ ! -x "$BENCH/peers/bun/node_modules/bun/bin/bun.exe" ]]; then
  log "npm install (bun)"
  (cd "$BENCH/peers/bun" && npm ci --no-audit --no-fund >"$LOGS/npm-bun.log" 2>&1)
fi
for p in node-ws socketio; do
  if want_peer $p && [[ ! -d "$BENCH/peers/$p/node_modules" ]]; then
    log "npm install ($p)"
    (cd "$BENCH/peers/$p" && npm ci --no-audit --no-fund >"$LOGS/npm-$p.log" 2>&1)
  fi
done
GO_PEER="$BUILD_DIR/peers/realtime-peer-go"
if want_peer go-gorilla; then
  if ! command -v go >/dev/null || [[ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]]; then
    log "installing Go and gorilla/websocket from Debian"
    apt_install golang-go golang-github-gorilla-websocket-dev
  fi
  if [[ ! -x "$GO_PEER" || "$BENCH/peers/go-gorilla/main.go" -nt "$GO_PEER" ]]; then
    log "go build (gorilla peer, offline GOPATH mode)"
    gopath="$(mktemp -d)"
    mkdir -p "$gopath/src" "$BUILD_DIR/peers"
    cp -r "$BENCH/peers/go-gorilla" "$gopath/src/realtime-peer-go"
    (cd "$gopath/src/realtime-peer-go" && GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" \
      GOCACHE="$BUILD_DIR/peers/gocache" go build -o "$GO_PEER" .) \
      >"$LOGS/go-build.log" 2>&1 || { cat "$LOGS/go-build.log"; rm -rf "$gopath"; exit 1; }
    rm -rf "$gopath"
  fi
fi
if { want_scenario crosspod || want_scenario fanout-pods || want_scenario idle-pods; } &&
  ! command -v redis-server >/dev/null; then
  log "installing redis-server from Debian"
  apt_install redis-server
fi
if [[ $DOCS == 1 ]] && ! command -v gnuplot >/dev/null; then
  log "installing gnuplot-nox from Debian"
  apt_install gnuplot-nox
fi

# ---------------------------------------------------------------------------------------------
# Servers

SERVER_PID=""
SERVER_PORT=""
declare -a STARTED=()

cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME LOGFILE CMD... : runs CMD in the background (the server itself, no wrapper),
# waits for "listening on HOST:PORT", sets SERVER_PID and SERVER_PORT.
start_server() {
  local name=$1 logfile=$2
  shift 2
  # Empty it here, not only in the child: a log of an earlier run must not be read as this one's.
  : >"$logfile"
  "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  local i
  for i in $(seq 200); do
    if SERVER_PORT=$(grep -m1 -o 'listening on [0-9.]*:[0-9]*' "$logfile" 2>/dev/null | grep -o '[0-9]*$'); then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "$name did not start; its log:"
  cat "$logfile" >&2
  return 1
}

stop_servers() {
  cleanup
  sleep 0.3
}

# check_alive SCENARIO PEER PID,PID... : a server that died during a scenario is a failure of the
# run, and is written down for the report.
check_alive() {
  local scenario=$1 peer=$2 pid
  for pid in ${3//,/ }; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local status=0
      wait "$pid" 2>/dev/null || status=$?
      log "$scenario/$peer: server process $pid died during the scenario (exit status $status)"
      echo "$scenario/$peer: server process $pid died during the scenario (exit status $status$( ((status > 128)) && echo ", signal $((status - 128))"))" >>"$OUT/incidents.txt"
      FAILURES=$((FAILURES + 1))
    fi
  done
}

# peer_cmd PEER [REDIS_URL] [POD]: prints the command line of a peer server, one word a line.
peer_cmd() {
  local peer=$1 redis=${2:-} pod=${3:-}
  case $peer in
    realtime)
      printf '%s\n' "$SERVER_BIN" --listen 127.0.0.1:0 --threads "$RT_THREADS" \
        --rate-limit 1000000000 --rate-burst 1000000000 --max-connections 1000000 --log-level warn
      [[ -n $redis ]] && printf '%s\n' --redis "$redis" --pod-id "pod$pod"
      ;;
    bun) printf '%s\n' "$BENCH/peers/bun/node_modules/bun/bin/bun.exe" "$BENCH/peers/bun/server.js" --listen 127.0.0.1:0 ;;
    node-ws) printf '%s\n' node "$BENCH/peers/node-ws/server.mjs" --listen 127.0.0.1:0 ;;
    socketio)
      printf '%s\n' node "$BENCH/peers/socketio/server.mjs" --listen 127.0.0.1:0
      [[ -n $redis ]] && printf '%s\n' --redis "$redis"
      ;;
    go-gorilla)
      printf '%s\n' "$GO_PEER" --listen 127.0.0.1:0
      # The hot room keeps 320 messages in flight; with the example's 256 the hub drops every member.
      [[ ${SCENARIO:-} == hotroom ]] && printf '%s\n' --send-buffer 1024
      ;;
  esac
  return 0
}

protocol_of() { [[ $1 == socketio ]] && echo socketio || echo realtime; }

# bench LABEL SCENARIO ARGS... : runs realtime-bench with a time bound, appends its JSON line.
bench() {  # bench LABEL SCENARIO ARGS... (BENCH_TAG names the logs when a scenario runs twice)
  local label=$1 scenario=$2
  shift 2
  local cmd=("$BENCH_BIN" "$scenario" --label "$label" --json "$OUT/results.jsonl" "$@")
  local name="${BENCH_TAG:-$scenario}-$label"
  echo "${cmd[*]}" | sed "s|$ROOT/||g" >>"$OUT/commands.txt"
  if ! timeout 240 "${cmd[@]}" >"$LOGS/$name.json" 2>"$LOGS/$name.err"; then
    log "$name: realtime-bench failed:"
    tail -5 "$LOGS/$name.err" >&2
    FAILURES=$((FAILURES + 1))
  fi
  grep '^\[' "$LOGS/$name.err" | tail -3 >&2 || true
}

# run_single SCENARIO PEER ARGS... : a fresh single-pod server, one scenario.
run_single() {
  local scenario=$1 peer=$2
  shift 2
  local cmd
  mapfile -t cmd < <(SCENARIO=$scenario peer_cmd "$peer")
  start_server "$peer" "$LOGS/server-$scenario-$peer.log" "${cmd[@]}" || { FAILURES=$((FAILURES + 1)); return 0; }
  sleep 0.3
  bench "$peer" "$scenario" --target "127.0.0.1:$SERVER_PORT" --server-pid "$SERVER_PID" \
    --protocol "$(protocol_of "$peer")" "$@"
  check_alive "$scenario" "$peer" "$SERVER_PID"
  stop_servers
}

# start_redis LOGFILE : a redis-server on a free loopback port below the ephemeral range (the
# generator's own sockets take ports from 32768 up); sets REDIS_PORT and REDIS_PID. Retries with
# another port when the one picked was taken meanwhile.
start_redis() {
  local log=$1 attempt i
  for attempt in 1 2 3 4 5; do
    REDIS_PORT=$((20000 + RANDOM % 12000))
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$log" 2>&1 &
    REDIS_PID=$!
    for i in $(seq 50); do
      if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        STARTED+=("$REDIS_PID")
        return 0
      fi
      kill -0 "$REDIS_PID" 2>/dev/null || break  # it could not bind: try another port
      sleep 0.1
    done
    kill "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
  done
  log "redis-server did not start (see $log)"
  return 1
}

# run_crosspod PEER ARGS... : redis-server and two pods of the peer, rooms spread over both.
run_crosspod() {
  local peer=$1
  shift
  local tag=${BENCH_TAG:-crosspod}
  start_redis "$LOGS/redis-$tag-$peer.log" || { FAILURES=$((FAILURES + 1)); return 0; }
  local redis_port=$REDIS_PORT redis_pid=$REDIS_PID
  local targets="" pids="" pod cmd
  for pod in 1 2; do
    mapfile -t cmd < <(peer_cmd "$peer" "redis://127.0.0.1:$redis_port" "$pod")
    start_server "$peer" "$LOGS/server-$tag-$peer-$pod.log" "${cmd[@]}" || { FAILURES=$((FAILURES + 1)); stop_servers; return 0; }
    targets+="${targets:+,}127.0.0.1:$SERVER_PORT"
    pids+="${pids:+,}$SERVER_PID"
  done
  sleep 0.5
  bench "$peer" crosspod --target "$targets" --server-pid "$pids" --redis-pid "$redis_pid" \
    --redis-port "$redis_port" --protocol "$(protocol_of "$peer")" "$@"
  check_alive "$tag" "$peer" "$pids,$redis_pid"
  stop_servers
}

# run_pods PEER PODS SCENARIO ARGS... : redis-server and PODS pods of the peer; the scenario
# (idle, or fanout past one generator process) over all of them.
run_pods() {
  local peer=$1 pods=$2 scenario=$3
  local tag=${BENCH_TAG:-$scenario-pods}
  shift 3
  start_redis "$LOGS/redis-$tag-$peer.log" || { FAILURES=$((FAILURES + 1)); return 0; }
  local redis_port=$REDIS_PORT redis_pid=$REDIS_PID
  local targets="" pids="" pod cmd
  for pod in $(seq "$pods"); do
    mapfile -t cmd < <(peer_cmd "$peer" "redis://127.0.0.1:$redis_port" "$pod")
    start_server "$peer" "$LOGS/server-$tag-$peer-$pod.log" "${cmd[@]}" || { FAILURES=$((FAILURES + 1)); stop_servers; return 0; }
    targets+="${targets:+,}127.0.0.1:$SERVER_PORT"
    pids+="${pids:+,}$SERVER_PID"
  done
  sleep 0.5
  BENCH_TAG=$tag bench "$peer" "$scenario" --room-prefix pods --target "$targets" --server-pid "$pids" \
    --redis-pid "$redis_pid" --redis-port "$redis_port" --protocol "$(protocol_of "$peer")" "$@"
  check_alive "$tag" "$peer" "$pids,$redis_pid"
  stop_servers
}

# ---------------------------------------------------------------------------------------------
# Scenarios. Sizes: one server process holds at most ~19,990 sockets here (20,000 fds), one
# generator process at most 18,000; idle spreads its sockets over several generator processes.

FAILURES=0
GEN=(--threads 1 --sources 4)
if [[ $MODE == smoke ]]; then
  IDLE=(--connections 300 --steps 100 --members 10 --hold 1)
  FANOUT=(--rooms 20 --members 5 --rate 200 --duration 1 --warmup 0.2)
  SATURATION=(--rooms 20 --members 5 --rate 100 --rate-factor 2 --max-steps 2 --duration 0.5 --warmup 0.1 --p99-bound-ms 50)
  HOTROOM=(--members 50 --publishers 2 --window 4 --duration 1 --warmup 0.2)
  CONNECT=(--connections 300 --concurrency 64)
  CROSSPOD=(--rooms 20 --members 4 --rate 200 --duration 1 --warmup 0.2)
  CROSSPOD_HIGH=(--rooms 20 --members 4 --rate 1000 --duration 1 --warmup 0.2)
  CROSSPOD_PEERS="realtime"
  FANOUT_PODS=(--rooms 40 --members 5 --rate 200 --duration 1 --warmup 0.2 --procs 2)
  PODS=2
  IDLE_PODS=(--connections 400 --members 10 --hold 1)
else
  IDLE=(--connections 19000 --steps 1000,5000,10000 --members 10 --hold 10)
  FANOUT=(--rooms 1800 --members 10 --rate 10000 --duration 5 --warmup 1)
  SATURATION=(--rooms 1000 --members 10 --rate 2000 --rate-factor 1.6 --max-steps 8 --duration 3 --warmup 0.5 --p99-bound-ms 5)
  HOTROOM=(--members 1000 --publishers 10 --window 32 --duration 5 --warmup 1)
  CONNECT=(--connections 10000 --concurrency 256)
  CROSSPOD=(--rooms 1000 --members 4 --rate 5000 --duration 5 --warmup 1)
  CROSSPOD_HIGH=(--rooms 1000 --members 4 --rate 50000 --duration 5 --warmup 1)
  CROSSPOD_PEERS="realtime socketio"
  FANOUT_PODS=(--rooms 10000 --members 10 --rate 10000 --duration 5 --warmup 1)
  PODS=6
  IDLE_PODS=(--connections 100000 --steps 50000 --members 10 --hold 120 --concurrency 512)
fi

log "mode $MODE; peers: $PEERS; scenarios: $SCENARIOS; results in $OUT"
for scenario in $SCENARIOS; do
  for peer in $PEERS; do
    case $scenario in
      idle) run_single idle "$peer" "${GEN[@]}" "${IDLE[@]}" ;;
      fanout) run_single fanout "$peer" "${GEN[@]}" "${FANOUT[@]}" ;;
      saturation) run_single saturation "$peer" "${GEN[@]}" "${SATURATION[@]}" ;;
      hotroom) run_single hotroom "$peer" "${GEN[@]}" "${HOTROOM[@]}" ;;
      connect) run_single connect "$peer" "${GEN[@]}" "${CONNECT[@]}" ;;
      crosspod)
        if [[ " $CROSSPOD_PEERS " == *" $peer "* ]]; then
          run_crosspod "$peer" "${GEN[@]}" "${CROSSPOD[@]}"
        fi
        # Redis CPU at the target's rate of 50,000 publishes/s, measured (ours only).
        if [[ $peer == realtime ]]; then
          BENCH_TAG=crosspod-high run_crosspod realtime "${GEN[@]}" "${CROSSPOD_HIGH[@]}"
        fi
        ;;
      fanout-pods)  # small rooms at 10,000 x 10: 100,000 sockets over 6 pods on one Redis (ours)
        if [[ $peer == realtime ]]; then
          BENCH_TAG=fanout-pods run_pods realtime "$PODS" fanout "${GEN[@]}" "${FANOUT_PODS[@]}"
          BENCH_TAG=fanout-pods-room run_pods realtime "$PODS" fanout "${GEN[@]}" "${FANOUT_PODS[@]}" \
            --pod-placement room
        fi
        ;;
      idle-pods)  # 100,000 sockets over 6 pods on one Redis, held 2 minutes (ours only)
        [[ $peer == realtime ]] && run_pods realtime "$PODS" idle "${GEN[@]}" "${IDLE_PODS[@]}"
        ;;
      *) log "unknown scenario $scenario"; exit 2 ;;
    esac
  done
done

if [[ $MODE == full && -x "$BUILD_DIR/bench/realtime-micro" ]]; then
  log "micro-benchmarks"
  timeout 120 "$BUILD_DIR/bench/realtime-micro" --benchmark_min_time=0.2 \
    --benchmark_format=json --benchmark_out="$OUT/micro.json" --benchmark_out_format=json \
    >"$LOGS/micro.txt" 2>&1 || log "realtime-micro failed"
fi

# Machine and versions, for the report.
{
  echo "{"
  echo "  \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//;s/"/\\"/g')\","
  echo "  \"cores\": $(nproc),"
  echo "  \"memory_gb\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
  echo "  \"kernel\": \"$(uname -r)\","
  echo "  \"os\": \"$(. /etc/os-release && echo "$PRETTY_NAME")\","
  echo "  \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)\","
  # (What this script itself rewrote under docs/ does not count as a change to what was measured.)
  echo "  \"dirty\": $( [[ -n "$(git -C "$ROOT" status --porcelain -- . ':!docs/PERFORMANCE.md' ':!docs/perf' 2>/dev/null | head -1)" ]] && echo true || echo false),"
  echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"compiler\": \"$(grep -m1 CMAKE_CXX_COMPILER: "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | cut -d= -f2) $(grep -m1 CMAKE_BUILD_TYPE: "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | cut -d= -f2)\","
  echo "  \"server_threads\": $RT_THREADS,"
  echo "  \"node\": \"$(node --version 2>/dev/null || echo none)\","
  echo "  \"bun\": \"$("$BENCH/peers/bun/node_modules/bun/bin/bun.exe" --version 2>/dev/null || echo none)\","
  echo "  \"go\": \"$(go version 2>/dev/null | awk '{print $3}' || echo none)\","
  echo "  \"redis\": \"$(redis-server --version 2>/dev/null | awk '{print $3}' | sed 's/v=//' || echo none)\","
  echo "  \"load_before\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
  echo "  \"elapsed_seconds\": $(($(date +%s) - START_TIME))"
  echo "}"
} >"$OUT/machine.json"

if [[ $MODE == smoke ]]; then
  node "$BENCH/plot.mjs" --check "$OUT" || FAILURES=$((FAILURES + 1))
elif [[ $DOCS == 1 ]]; then
  log "writing docs/PERFORMANCE.md and docs/perf/"
  mkdir -p "$ROOT/docs/perf"
  cp "$OUT/results.jsonl" "$OUT/machine.json" "$OUT/commands.txt" "$ROOT/docs/perf/"
  rm -f "$ROOT/docs/perf/incidents.txt"
  [[ -f "$OUT/incidents.txt" ]] && cp "$OUT/incidents.txt" "$ROOT/docs/perf/"
  [[ -f "$OUT/micro.json" ]] && cp "$OUT/micro.json" "$ROOT/docs/perf/"
  node "$BENCH/plot.mjs" --docs "$ROOT/docs" "$OUT"
fi
log "done in $(($(date +%s) - START_TIME)) s, $FAILURES failure(s)"
[[ $FAILURES == 0 ]]
