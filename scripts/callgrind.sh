#!/usr/bin/env bash
# Per-request cost of shardgate and of nginx (plain reverse proxy, upstream
# keep-alive) in numbers that do not depend on a quiet machine:
#
#  1. user-space instructions per request (valgrind --tool=callgrind, Ir),
#     warm-up excluded with `callgrind_control --zero`, one dump per workload;
#  2. without valgrind: syscalls, io_uring submissions, context switches and
#     CPU time per request (perf stat tracepoints on the proxy's PID, and
#     /proc/PID counters), for the scenarios scripts/bench.sh measures;
#  3. what a wake-up across CPUs costs on this machine (pipe ping-pong between
#     two processes), and latency at one connection with the proxy on its own
#     CPU (as scripts/bench.sh places it) vs on the generator's CPU.
#     Wall-clock, so noisy on a shared machine; the gaps it shows are large;
#  4. scripts/bench-wrk.sh's conditions (wrk -t2 -c10, nginx static mock,
#     everything on all CPUs): CPU and context switches per request of the
#     proxy, the mock and wrk, for nginx (a proxy process of its own),
#     shardgate with one shard per CPU (the default) and with one shard.
#
# valgrind counts only user-space instructions: kernel work (syscalls, the TCP
# stack, wake-ups) is not in the Ir column; part 2 is there for that.
#
#   scripts/callgrind.sh [REQUESTS] [WARMUP]     defaults 20000 and 2000
#
# Environment: GATE_BIN (the shardgate binary, default the release build),
# WORKLOADS (default "chat chat-stream messages"),
# GOVERNED (1: virtual keys on, see below), TRACED (1: tracing on, see
# below), CACHED (miss: the response cache on and every prompt unique, see
# below), SYSTEMS (part 1's proxies,
# default "shardgate nginx"),
# CG_CONNS (client connections for the callgrind runs, default
# "1 64"), PARTS (default "1 2 3 4": which parts to run), WRK_ROUNDS (default
# 3), SUT_CPU / GEN_CPU (default 0 and the last CPU), OUT (default
# $CARGO_TARGET_DIR/callgrind/<timestamp>; summary.txt there).
# Ports 18300-18309, or the next free set of ten in 183xx. Needs valgrind
# (apt-get install valgrind), nginx, wrk for part 4, and perf for part 2's
# counts (without it part 2 reports only context switches and CPU).
set -euo pipefail

REQUESTS=${1:-20000}
WARMUP=${2:-2000}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/nginx-proxy.sh
. "$ROOT/scripts/nginx-proxy.sh"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$TARGET_DIR/callgrind/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/cg"
NCPU=$(nproc)
SUT_CPU="${SUT_CPU:-0}"
GEN_CPU="${GEN_CPU:-$((NCPU - 1))}"
read -r -a CG_CONNS <<<"${CG_CONNS:-1 64}"
PARTS=" ${PARTS:-1 2 3 4} "
WRK_ROUNDS=${WRK_ROUNDS:-3}
# Ten ports from 18300, or the next free set of ten up to 18399 (a listener
# that does not set SO_REUSEADDR, like the mock, cannot bind a port with
# connections still in TIME-WAIT).
port_busy() { [[ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]]; }
for base in 18300 18310 18320 18330 18340 18350 18360 18370 18380 18390; do
  MOCK_PORT=$((base + 1)) GATE_PORT=$((base + 2)) ADMIN_PORT=$((base + 3)) NGINX_PORT=$((base + 4))
  busy=0
  for ((p = base; p < base + 10; p++)); do port_busy $p && busy=1; done
  ((busy)) || break
done
read -r -a WORKLOADS <<<"${WORKLOADS:-chat chat-stream messages}"
RUN_LIMIT=600 # seconds for any one loadgen run

log() { printf '%s\n' "$*" >&2; }
die() { # keeps shardgate's counters (status codes, retries) for the diagnosis
  log "error: $*"
  curl -s -m 2 "http://127.0.0.1:${ADMIN_PORT:-0}/metrics" >"$OUT/metrics-at-failure.txt" 2>/dev/null || true
  exit 1
}
PIDS=()
cleanup() { # newest first: proxies close their upstream connections before the mock goes
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[i]}" 2>/dev/null && sleep 0.2
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in valgrind callgrind_control nginx taskset; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
    die "$tool not found (apt-get install -y valgrind nginx util-linux)"
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAVE_PERF=0
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -x, -o /dev/null -- true 2>/dev/null; then
  HAVE_PERF=1
fi

# The release profile already carries line tables (debug = "line-tables-only"
# in Cargo.toml): function names and source lines for callgrind, and the
# binary profiled is the one the benchmarks run.
log "== building release binaries"
cargo build --release -q -p shardgate -p loadgen
# GATE_BIN=path profiles another shardgate build (an earlier commit's, to
# put a change's cost in instructions beside the current one's).
GATE_BIN="${GATE_BIN:-$TARGET_DIR/release/shardgate}"
LOADGEN="$TARGET_DIR/release/loadgen"

wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
# One keep-alive HTTP check per workload before measuring: a failing setup
# must not be reported as a cost.
check_target() { # port
  local w
  for w in "${WORKLOADS[@]}"; do
    lg "$1" "$w" 1 20 "$OUT/check.json" || die "$w through port $1 fails (see $OUT)"
  done
}
lg() { # port workload connections requests json-file [more loadgen flags]
  local port=$1 w=$2 c=$3 n=$4 file=$5
  shift 5
  timeout "$RUN_LIMIT" "$LOADGEN" run --target "http://127.0.0.1:$port" --workload "$w" \
    --connections "$c" --requests "$n" --cores "=$GEN_CPU" --json "${LG_EXTRA[@]}" "$@" >"$file" 2>/dev/null || return 1
  python3 - "$file" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
errs = sum(r["errors"].values())
sys.exit(0 if errs == 0 and r["ok"] == int(sys.argv[2]) else 1)
PY
}
# A run with errors is not a cost: record what failed (loadgen's error
# classes, one probe request's status, shardgate's status counters), and
# let the caller repeat the run.
noted() { # label loadgen-json
  {
    echo "$1: $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("ok", r["ok"], "errors", r["errors"])' "$2" 2>/dev/null || echo "no result")"
    echo "  probe: HTTP $(curl -s -m 30 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H 'authorization: Bearer loadgen' \
      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' \
      "http://127.0.0.1:$SUT_PORT/v1/chat/completions" 2>/dev/null)"
    curl -s -m 10 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null |
      grep -E '^shardgate_(requests|retries|upstream_errors)' | sed 's/^/  /' || true
  } >>"$OUT/failures.txt"
  log "warning: $1 had errors (see $OUT/failures.txt); repeating it"
}

log "== mock upstream on CPU $GEN_CPU (port $MOCK_PORT)"
"$LOADGEN" mock --listen "127.0.0.1:$MOCK_PORT" --cores "=$GEN_CPU" 2>"$OUT/mock.log" &
PIDS+=($!)
wait_port "$MOCK_PORT" 10 || die "mock did not start"

cat >"$OUT/shardgate.toml" <<CONF
default_provider = "openai"
[server]
listen = "127.0.0.1:$GATE_PORT"
shards = 1
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[providers.openai]
kind = "openai"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
api_key_env = "OPENAI_API_KEY"
CONF
# GOVERNED=1: virtual keys on, one key (the `loadgen` the generator sends)
# with limits and a budget far above the run, so every request is checked,
# reserved and settled (bench/README.md, governance).
if [[ -n "${GOVERNED:-}" ]]; then
  cat >>"$OUT/shardgate.toml" <<CONF
[state]
dir = "$OUT/state"
[[keys]]
name = "bench"
key_sha256 = "bd5d5d0eeff97bacc45aa57dbac9689a25a2eedb52ec991f3a46a2a00ad41908" # loadgen
rpm = 1000000000
tpm = 1000000000000
max_concurrent = 100000
budget_usd = 1000000000.0
CONF
fi
# TRACED=1: OpenTelemetry tracing on at a sample ratio of 1, exported over
# OTLP/HTTP to the mock (which answers the POSTs like any other), so the
# counts include the spans' encoding and the otel-export thread's exports
# (bench/README.md, tracing).
if [[ -n "${TRACED:-}" ]]; then
  cat >>"$OUT/shardgate.toml" <<CONF
[tracing]
otlp_endpoint = "http://127.0.0.1:$MOCK_PORT"
sample_ratio = 1.0
CONF
fi
# CACHED=miss: the exact response cache on (its defaults), and loadgen's
# --unique, so every request is a miss whose answer is stored (and, once
# the cache is full, evicts): compare with the same build without it
# (bench/README.md, response cache). Every system gets the unique prompts.
LG_EXTRA=()
if [[ "${CACHED:-}" == miss ]]; then
  LG_EXTRA=(--unique)
  cat >>"$OUT/shardgate.toml" <<CONF
[cache]
enabled = true
CONF
fi
# nginx as scripts/bench.sh runs it (one worker, upstream keep-alive pool,
# no buffering), in one process so valgrind and perf see all of it.
mkdir -p "$OUT/nginx"
nginx_proxy_conf "$OUT/nginx" "$MOCK_PORT" "$NGINX_PORT" "master_process off; daemon off; worker_processes 1;" >"$OUT/nginx/nginx.conf"

start_sut() { # name wrapper... ; sets SUT_PID and SUT_PORT; runs on CPU ${SUT_ON:-$SUT_CPU}
  local name=$1 cpu=${SUT_ON:-$SUT_CPU}
  shift
  case $name in
    shardgate)
      OPENAI_API_KEY=x taskset -c "$cpu" "$@" "$GATE_BIN" --config "$OUT/shardgate.toml" \
        2>>"$OUT/shardgate.log" &
      SUT_PID=$!
      SUT_PORT=$GATE_PORT
      ;;
    nginx)
      taskset -c "$cpu" "$@" "$NGINX" -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" 2>>"$OUT/nginx/stderr.log" &
      SUT_PID=$!
      SUT_PORT=$NGINX_PORT
      ;;
  esac
  PIDS+=("$SUT_PID")
  wait_port "$SUT_PORT" 120 || die "$name did not start (see $OUT)"
}
stop_sut() {
  kill -TERM "$SUT_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 200; i++)); do kill -0 "$SUT_PID" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$SUT_PID" 2>/dev/null || true
  wait "$SUT_PID" 2>/dev/null || true
}

# ---- part 1: callgrind ------------------------------------------------------
[[ $PARTS == *" 1 "* ]] || CG_CONNS=()
((${#CG_CONNS[@]})) && for name in ${SYSTEMS:-shardgate nginx}; do
  log "== $name under callgrind (CPU $SUT_CPU)"
  start_sut "$name" valgrind --tool=callgrind --callgrind-out-file="$OUT/cg/$name.%p"
  check_target "$SUT_PORT"
  for c in "${CG_CONNS[@]}"; do
    for w in "${WORKLOADS[@]}"; do
      log "-- $name $w, $c connection(s): $WARMUP warm-up, $REQUESTS measured"
      for attempt in 1 2 3; do
        lg "$SUT_PORT" "$w" "$c" "$WARMUP" "$OUT/cg/warmup.json" || noted "$name $w c$c warm-up" "$OUT/cg/warmup.json"
        callgrind_control --zero "$SUT_PID" >/dev/null 2>&1 || die "callgrind_control --zero failed"
        lg "$SUT_PORT" "$w" "$c" "$REQUESTS" "$OUT/cg/$name.$w.c$c.json" && break
        noted "$name $w c$c under callgrind, attempt $attempt" "$OUT/cg/$name.$w.c$c.json"
        ((attempt < 3)) || die "$name $w c$c failed three times"
      done
      callgrind_control --dump="$name/$w/c$c" "$SUT_PID" >/dev/null 2>&1 || die "callgrind_control --dump failed"
    done
  done
  if [[ -n "${TRACED:-}" && $name == shardgate ]]; then
    log "   traces: $(curl -s -m 30 "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^shardgate_trace_' | tr '\n' ' ')"
  fi
  stop_sut
done

# ---- part 2: syscalls, io_uring submissions, context switches (native) -----
EVENTS=raw_syscalls:sys_enter,context-switches,cpu-migrations,ipi:ipi_send_cpu
SYSCALLS=(io_uring_enter epoll_wait epoll_pwait epoll_ctl read readv recvfrom recvmsg write writev sendto sendmsg
  accept4 close futex setsockopt getsockopt)
for s in "${SYSCALLS[@]}"; do EVENTS+=",syscalls:sys_enter_$s"; done
for e in io_uring_submit_req io_uring_poll_arm io_uring_cqring_wait io_uring_local_work_run io_uring_task_add; do
  EVENTS+=",io_uring:$e"
done
if ((HAVE_PERF)); then # keep the events this kernel has
  IFS=, read -r -a all <<<"$EVENTS"
  EVENTS=""
  for e in "${all[@]}"; do
    perf stat -e "$e" -x, -o /dev/null -- true 2>/dev/null && EVENTS+="${EVENTS:+,}$e"
  done
fi
proc_snapshot() { # pid -> "utime stime voluntary nonvoluntary cpu-ns" (all threads)
  local pid=$1 f v=0 n=0 ns=0
  for f in /proc/"$pid"/task/*/status; do
    v=$((v + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$f")))
    n=$((n + $(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$f")))
  done
  for f in /proc/"$pid"/task/*/schedstat; do ns=$((ns + $(cut -d' ' -f1 "$f"))); done
  echo "$(awk '{print $14, $15}' "/proc/$pid/stat") $v $n $ns"
}
# Two measured runs: one bare (CPU time and context switches from /proc), one
# with perf's tracepoints attached (counts only: tracepoints cost CPU, more
# for the proxy that makes more traced calls).
measure() { # name scenario workload loadgen-flags...
  local name=$1 sc=$2 w=$3 base attempt perf_pid
  shift 3
  base="$OUT/native/$name.$w.$sc"
  for attempt in 1 2 3; do
    lg "$SUT_PORT" "$w" "$CONN" "$WARMUP" "$OUT/native/warmup.json" "$@" || noted "$name $w $sc warm-up" "$OUT/native/warmup.json"
    proc_snapshot "$SUT_PID" >"$base.proc"
    if lg "$SUT_PORT" "$w" "$CONN" "$REQUESTS" "$base.json" "$@"; then
      proc_snapshot "$SUT_PID" >>"$base.proc"
      break
    fi
    noted "$name $w $sc, attempt $attempt" "$base.json"
    ((attempt < 3)) || die "$name $w $sc failed three times"
  done
  ((HAVE_PERF)) || return 0
  for attempt in 1 2 3; do
    perf stat -x, -o "$base.perf" -e "$EVENTS" -p "$SUT_PID" &
    perf_pid=$!
    sleep 0.5
    if lg "$SUT_PORT" "$w" "$CONN" "$REQUESTS" "$base.perf.json" "$@"; then
      kill -INT "$perf_pid"
      wait "$perf_pid" || true
      return 0
    fi
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    noted "$name $w $sc with perf, attempt $attempt" "$base.perf.json"
  done
  die "$name $w $sc with perf failed three times"
}
if [[ $PARTS == *" 2 "* ]]; then
  mkdir -p "$OUT/native"
  for name in shardgate nginx; do
    log "== $name without valgrind (CPU $SUT_CPU): syscalls and context switches per request"
    start_sut "$name"
    check_target "$SUT_PORT"
    if ((HAVE_PERF)); then # idle baseline: what the process does with no traffic
      perf stat -x, -o "$OUT/native/$name.idle.perf" -e "$EVENTS" -p "$SUT_PID" -- sleep 2 2>/dev/null || true
    fi
    for w in "${WORKLOADS[@]}"; do
      log "-- $name $w"
      CONN=1 measure "$name" c1 "$w"
      CONN=64 measure "$name" c64 "$w"
      CONN=64 measure "$name" r5000 "$w" --rate 5000 --arrivals poisson
    done
    stop_sut
  done
fi

# ---- part 3: cross-CPU wake-ups, and latency by placement (wall-clock) -------
if [[ $PARTS == *" 3 "* ]]; then
  mkdir -p "$OUT/placement"
  log "== wake-up cost: pipe ping-pong between two processes"
  python3 - "$SUT_CPU" "$GEN_CPU" >"$OUT/placement/wake.txt" <<'PY'
import os, statistics, sys, time
a, b = int(sys.argv[1]), int(sys.argv[2])
def round_trip(cpu_a, cpu_b, n=20000):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {cpu_b})
        for _ in range(n):
            os.read(r1, 1)
            os.write(w2, b"x")
        os._exit(0)
    os.sched_setaffinity(0, {cpu_a})
    time.sleep(0.05)
    t = time.perf_counter()
    for _ in range(n):
        os.write(w1, b"x")
        os.read(r2, 1)
    dt = time.perf_counter() - t
    os.waitpid(pid, 0)
    for fd in (r1, w1, r2, w2):
        os.close(fd)
    return 1e6 * dt / n
same = statistics.median(round_trip(a, a) for _ in range(3))
cross = statistics.median(round_trip(a, b) for _ in range(3))
print(f"pipe round trip (2 wake-ups), median of 3 x 20000: same CPU {same:.1f} us, across CPUs {cross:.1f} us;"
      f" one cross-CPU wake-up costs ~{(cross - same) / 2:.0f} us more than a same-CPU switch")
PY
  for cpu in "$SUT_CPU" "$GEN_CPU"; do
    log "== latency at one connection, proxies on CPU $cpu"
    for w in chat chat-stream; do
      lg "$MOCK_PORT" "$w" 1 "$REQUESTS" "$OUT/placement/direct.$w.cpu$cpu.json" || die "direct $w failed"
      for name in nginx shardgate; do
        SUT_ON=$cpu start_sut "$name"
        for attempt in 1 2 3; do
          lg "$SUT_PORT" "$w" 1 "$WARMUP" "$OUT/placement/warmup.json" || noted "$name $w cpu$cpu warm-up" "$OUT/placement/warmup.json"
          lg "$SUT_PORT" "$w" 1 "$REQUESTS" "$OUT/placement/$name.$w.cpu$cpu.json" && break
          noted "$name $w cpu$cpu, attempt $attempt" "$OUT/placement/$name.$w.cpu$cpu.json"
          ((attempt < 3)) || die "$name $w cpu$cpu failed three times"
        done
        stop_sut
      done
    done
  done
fi

# ---- part 4: bench-wrk.sh's conditions: CPU and context switches per request --
if [[ $PARTS == *" 4 "* ]] && command -v wrk >/dev/null; then
  W="$OUT/wrk"
  mkdir -p "$W/mock" "$W/proxy"
  log "== wrk conditions: nginx mock, nginx proxy (own process), shardgate with $NCPU and 1 shard(s)"
  RESP='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Packets flow like streams"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":8,"total_tokens":58}}'
  WRK_MOCK=$((base + 5)) WRK_NGINX=$((base + 6)) WRK_SGN=$((base + 7)) WRK_SG1=$((base + 8))
  for role in mock proxy; do
    if [[ $role == mock ]]; then
      server="server { listen 127.0.0.1:$WRK_MOCK; location / { default_type application/json; return 200 '$RESP'; } }"
    else
      server="server { listen 127.0.0.1:$WRK_NGINX; location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
    fi
    cat >"$W/$role/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $W/$role/nginx.pid;
error_log $W/$role/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:$WRK_MOCK; keepalive 64; }
  $server
}
CONF
    "$NGINX" -p "$W/$role" -c "$W/$role/nginx.conf" 2>>"$W/$role/stderr.log" &
    PIDS+=($!)
    if [[ $role == mock ]]; then WRK_MOCK_PID=$!; else WRK_NGINX_PID=$!; fi
  done
  for shards in "$NCPU" 1; do
    port=$WRK_SG1 admin=$((base + 9))
    [[ $shards == 1 ]] || { port=$WRK_SGN admin=$base; }
    sed -e "s/^listen = .*:$GATE_PORT\"/listen = \"127.0.0.1:$port\"/" -e "s/^shards = 1/shards = $shards/" \
      -e "s/:$ADMIN_PORT\"/:$admin\"/" -e "s#http://127.0.0.1:$MOCK_PORT/v1#http://127.0.0.1:$WRK_MOCK/v1#" \
      "$OUT/shardgate.toml" >"$W/shardgate-$shards.toml"
    OPENAI_API_KEY=x "$GATE_BIN" --config "$W/shardgate-$shards.toml" 2>>"$W/shardgate-$shards.log" &
    PIDS+=($!)
    if [[ $shards == 1 ]]; then WRK_SG1_PID=$!; else WRK_SGN_PID=$!; fi
  done
  for p in "$WRK_MOCK" "$WRK_NGINX" "$WRK_SGN" "$WRK_SG1"; do wait_port "$p" 10 || die "port $p did not open (see $W)"; done
  BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about a gateway that forwards requests quickly and never gets in the way of the traffic it carries. '"$(printf 'x%.0s' $(seq 250))"'"}],"temperature":0.7,"max_tokens":64}'
  printf '%s' "$BODY" >"$W/body.json"
  cat >"$W/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$W/body.json"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-client"
LUA
  curl -sf -o /dev/null -d @"$W/body.json" "http://127.0.0.1:$WRK_SG1/v1/chat/completions" || die "shardgate (wrk part) not answering"
  cpu_ctx() { # pid... -> "cpu-ns voluntary involuntary" per pid, all threads
    local p f v n ns
    for p in "$@"; do
      v=0 n=0 ns=0
      for f in /proc/"$p"/task/*/status; do
        v=$((v + $(awk '/^voluntary_ctxt/ {print $2}' "$f")))
        n=$((n + $(awk '/^nonvoluntary_ctxt/ {print $2}' "$f")))
      done
      for f in /proc/"$p"/task/*/schedstat; do ns=$((ns + $(cut -d' ' -f1 "$f"))); done
      printf '%s %s %s ' "$ns" "$v" "$n"
    done
    echo
  }
  for ((round = 1; round <= WRK_ROUNDS; round++)); do
    for t in "nginx:$WRK_NGINX:$WRK_NGINX_PID" "shardgate-$NCPU:$WRK_SGN:$WRK_SGN_PID" "shardgate-1:$WRK_SG1:$WRK_SG1_PID"; do
      IFS=: read -r name port pid <<<"$t"
      log "-- wrk round $round: $name"
      f="$W/$name.$round"
      cpu_ctx "$WRK_MOCK_PID" "$pid" >"$f.before"
      /usr/bin/time -f "%U %S %w %c" -o "$f.time" \
        timeout 60 wrk -t2 -c10 -d5s -s "$W/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$f.txt"
      cpu_ctx "$WRK_MOCK_PID" "$pid" >"$f.after"
    done
  done
fi

{
  echo "date: $(date -u +%FT%TZ), load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel: $(uname -r); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $NCPU online"
  echo "valgrind: $(valgrind --version); nginx: $("$NGINX" -v 2>&1 | cut -d/ -f2); perf: $( ((HAVE_PERF)) && perf --version || echo none)"
  echo "shardgate: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (+local changes)'), --shards 1, $(grep -om1 '[a-z_]* driver' "$OUT/shardgate.log" | head -1)"
  echo "placement: proxy on CPU $SUT_CPU; loadgen + mock (loadgen mock, default 16 tokens, stream in one write) on CPU $GEN_CPU"
  echo "requests: $WARMUP warm-up + $REQUESTS measured per workload and concurrency"
} >"$OUT/env.txt"

python3 - "$OUT" "$ROOT" "$REQUESTS" "${CG_CONNS[*]}" "${WORKLOADS[*]}" "$(getconf CLK_TCK)" <<'PY' | tee "$OUT/summary.txt"
import collections, glob, json, os, re, statistics, sys

out, root, n_req, cg_conns, workloads, clk = sys.argv[1:7]
n_req, cg_conns, workloads, clk = int(n_req), cg_conns.split(), workloads.split(), int(clk)

def parse_callgrind(path):
    """Self and inclusive Ir per function, self Ir per source file and object."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    kind = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn"}
    self_ir, calls_ir = collections.Counter(), collections.Counter()
    file_ir, ob_ir = collections.Counter(), collections.Counter()
    fn = fl = ob = cfn = None
    in_call = False
    trigger, total = None, 0
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        if line[0].isdigit() or line[0] in "+-*":
            parts = line.split()
            ir = int(parts[1]) if len(parts) > 1 else 0
            if in_call:
                if cfn != fn:
                    calls_ir[fn] += ir
                in_call = False
            else:
                self_ir[fn] += ir
                file_ir[(ob, fl)] += ir
                ob_ir[ob] += ir
            continue
        if line.startswith("desc: Trigger:"):
            trigger = line.split("dump", 1)[-1].strip()
        elif line.startswith(("totals:", "summary:")):
            total = max(total, int(line.split()[1]))
        key, eq, val = line.partition("=")
        if not eq or key not in kind and key not in ("calls", "jump", "jcnd"):
            continue
        if key == "calls":
            in_call = True
            continue
        if key in ("jump", "jcnd"):
            continue
        m = re.match(r"\((\d+)\)\s*(.*)", val)
        table = names[kind[key]]
        if m:
            if m.group(2):
                table[m.group(1)] = m.group(2)
            val = table.get(m.group(1), "?")
        if key == "ob":
            ob = val
        elif key in ("fl", "fi", "fe"):
            fl = val
        elif key == "fn":
            fn = val
        elif key == "cfn":
            cfn = val
    incl = collections.Counter({f: self_ir[f] + calls_ir[f] for f in set(self_ir) | set(calls_ir)})
    return dict(trigger=trigger, total=total, self=self_ir, incl=incl, files=file_ir, obs=ob_ir)

def component(path, ob):
    if not (path or "").startswith("/"):  # libc and other objects without our sources
        return os.path.basename(ob or "?")
    if path.startswith(root + "/src/"):
        rel = path[len(root) + 1:]
        return "shardgate " + (os.path.dirname(rel) if rel.count("/") > 1 else rel)
    m = re.search(r"registry/src/[^/]+/([^/]+?)-\d+\.\d+[^/]*/", path or "")
    if m:
        return m.group(1)
    if path and "/rustc/" in path:
        return "rust core/alloc/std"
    return os.path.basename(ob or "?")

profiles = {}
for f in sorted(glob.glob(f"{out}/cg/*.*")):
    if f.endswith(".json") or os.path.getsize(f) == 0:
        continue
    p = parse_callgrind(f)
    if p["trigger"]:
        profiles[p["trigger"]] = p

def short(name, width=78):
    name = re.sub(r"<impl [^>]*>", "<impl>", name)
    return name if len(name) <= width else name[: width - 1] + "~"

print(open(f"{out}/env.txt").read())
if os.path.exists(f"{out}/failures.txt"):
    print("Runs repeated after errors (the tables use the clean repeat):")
    print(open(f"{out}/failures.txt").read())
if profiles:
    print("User-space instructions per request (callgrind Ir / measured requests; kernel not included)")
    print(f"{'workload':<14}{'conns':>6}{'shardgate':>12}{'nginx':>12}{'ratio':>8}")
for c in cg_conns if profiles else []:
    for w in workloads:
        s, n = profiles.get(f"shardgate/{w}/c{c}"), profiles.get(f"nginx/{w}/c{c}")
        si = s["total"] / n_req if s else None
        ni = n["total"] / n_req if n else None
        ratio = f"{si / ni:7.2f}x" if si and ni else "      -"
        label = w + (" *" if w == "messages" else "")
        print(f"{label:<14}{c:>6}{si or 0:>12,.0f}{ni or 0:>12,.0f} {ratio}")
if profiles:
    print("  * messages: shardgate translates Anthropic -> OpenAI chat and back; nginx passes it through.")

for c in cg_conns:
    for w in workloads:
        p = profiles.get(f"shardgate/{w}/c{c}")
        if not p:
            continue
        tot = p["total"]
        print(f"\nshardgate {w}, {c} connection(s): {tot / n_req:,.0f} Ir/request")
        comp = collections.Counter()
        for (ob, fl), ir in p["files"].items():
            comp[component(fl, ob)] += ir
        by_ob = collections.Counter()
        for ob, ir in p["obs"].items():
            by_ob[os.path.basename(ob or "?")] += ir
        print("  self Ir by source (inlined code counted where it was written):")
        rows = comp.most_common(10)
        print("   " + "; ".join(f"{k} {100 * v / tot:.1f}%" for k, v in rows))
        print("  self Ir by object: " + "; ".join(f"{k} {100 * v / tot:.1f}%" for k, v in by_ob.most_common(5)))
        print(f"  {'inclusive':>9} {'%':>6}  function (top 14)")
        wrappers = ("clone", "start_thread", "std::sys::backtrace::__rust_begin_short_backtrace",
                    "<std::sys::thread::unix::Thread>::new::thread_start", "core::ops::function::FnOnce::call_once{{vtable.shim}}")
        for f, ir in [kv for kv in p["incl"].most_common(60) if kv[0] not in wrappers][:14]:
            print(f"  {ir / n_req:>9,.0f} {100 * ir / tot:>5.1f}%  {short(f)}")
        print(f"  {'self':>9} {'%':>6}  function (top 14)")
        for f, ir in p["self"].most_common(14):
            print(f"  {ir / n_req:>9,.0f} {100 * ir / tot:>5.1f}%  {short(f)}")
for c in cg_conns:
    p = profiles.get(f"nginx/chat/c{c}")
    if p:
        tot = p["total"]
        print(f"\nnginx chat, {c} connection(s): self Ir by object: "
              + "; ".join(f"{os.path.basename(k or '?')} {100 * v / tot:.1f}%" for k, v in p["obs"].most_common(5)))

def perf_counts(path):
    counts = {}
    try:
        for line in open(path):
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                counts[parts[2]] = float(parts[0])
    except OSError:
        pass
    return counts

if os.path.isdir(f"{out}/native"):
    print("\nKernel-side work per request, without valgrind: counts from perf stat tracepoints on the proxy's PID;")
    print("ctx and CPU from /proc in a separate run without perf (ctx = voluntary + involuntary, all threads)")
    print("  c1: closed loop, 1 connection; c64: closed loop, 64 connections; r5000: open loop 5000 req/s, 64 connections")
    hdr = f"{'workload':<12}{'scenario':>9}{'target':>10}{'syscalls':>9}{'ctx':>7}{'sqes':>6}{'poll':>6}{'wait':>6}{'ipi':>6}{'cpu us':>7}{'usr %':>6}  top syscalls per request"
    print(hdr)
    for w in workloads:
        for sc in ("c1", "c64", "r5000"):
            for name in ("shardgate", "nginx"):
                base = f"{out}/native/{name}.{w}.{sc}"
                try:
                    proc = [list(map(int, l.split())) for l in open(base + ".proc")]
                    r = json.load(open(base + ".json"))
                except OSError:
                    continue
                n = r["ok"]
                d = [b - a for a, b in zip(*proc)]
                pc = perf_counts(base + ".perf")
                try:
                    n_perf = json.load(open(base + ".perf.json"))["ok"]
                except OSError:
                    n_perf = n
                per = lambda k: pc[k] / n_perf if k in pc else float("nan")
                tops = sorted(((k.split("sys_enter_")[1], v / n_perf) for k, v in pc.items() if "sys_enter_" in k and v), key=lambda kv: -kv[1])
                top = ", ".join(f"{k} {v:.2f}" for k, v in tops[:5])
                print(f"{w:<12}{sc:>9}{name:>10}{per('raw_syscalls:sys_enter'):>9.2f}{(d[2] + d[3]) / n:>7.2f}"
                      f"{per('io_uring:io_uring_submit_req'):>6.2f}{per('io_uring:io_uring_poll_arm'):>6.2f}"
                      f"{per('io_uring:io_uring_cqring_wait'):>6.2f}{per('ipi:ipi_send_cpu'):>6.2f}"
                      f"{d[4] / 1e3 / n:>7.1f}{100 * d[0] / max(d[0] + d[1], 1):>6.0f}  {top}")
    print("  sqes = io_uring submissions, poll = submissions that found the socket not ready and armed a poll,")
    print("  wait = io_uring_enter calls that waited for completions (sleeps); ipi = inter-processor interrupts sent from the")
    print("  proxy's context (waking a task on another CPU); cpu us = on-CPU time per request (schedstat),")
    print("  usr % = its user-space share (10 ms tick samples: a rough split)")
    for name in ("shardgate", "nginx"):
        pc = perf_counts(f"{out}/native/{name}.idle.perf")
        if pc:
            print(f"  idle {name}, 2 s: {pc.get('raw_syscalls:sys_enter', 0):.0f} syscalls, {pc.get('context-switches', 0):.0f} context switches")

if os.path.isdir(f"{out}/placement"):
    print("\nLatency at 1 connection, closed loop (wall-clock; noisy on a shared machine): p50 / p99 ms, overhead = p50 - direct p50")
    try:
        print("  " + open(f"{out}/placement/wake.txt").read().strip())
    except OSError:
        pass
    cpus = sorted({re.search(r"cpu(\d+)\.json$", f).group(1) for f in glob.glob(f"{out}/placement/direct.*.json")})
    for cpu in cpus:
        for w in ("chat", "chat-stream"):
            cells = []
            base = None
            for name in ("direct", "nginx", "shardgate"):
                try:
                    r = json.load(open(f"{out}/placement/{name}.{w}.cpu{cpu}.json"))
                except OSError:
                    continue
                lat = r["latency_ms"]
                ttft = (r.get("ttft_ms") or {}).get("p50")
                if name == "direct":
                    base = (lat["p50"], ttft)
                    cells.append(f"direct {lat['p50']:.3f} / {lat['p99']:.3f}")
                else:
                    extra = f" (+{1000 * (lat['p50'] - base[0]):.0f} us" if base else " ("
                    if ttft is not None and base and base[1] is not None:
                        extra += f", TTFT +{1000 * (ttft - base[1]):.0f} us"
                    cells.append(f"{name} {lat['p50']:.3f} / {lat['p99']:.3f}{extra})")
            print(f"  proxy on CPU {cpu}, {w:<12} " + "; ".join(cells))
    print("  (loadgen and the mock share the generator CPU named under 'placement' above: direct never crosses CPUs;")
    print("   a proxy on the other CPU adds four cross-CPU wake-ups per request, one on the generator's CPU none)")

wrk_files = sorted(glob.glob(f"{out}/wrk/*.txt"))
if wrk_files:
    print("\nbench-wrk.sh conditions: wrk -t2 -c10 -d5s, nginx static mock, all processes on all CPUs (wall-clock: noisy);")
    print("CPU = on-CPU time per request (/proc schedstat; wrk: rusage); ctx = voluntary / involuntary context switches per request")
    rows = collections.defaultdict(list)
    for f in wrk_files:
        name, rnd = os.path.basename(f)[:-4].rsplit(".", 1)
        t = open(f).read()
        m = re.search(r"(\d+) requests in", t)
        if not m:
            continue
        n = int(m.group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
        base = f[:-4]
        a = list(map(int, open(base + ".before").read().split()))
        b = list(map(int, open(base + ".after").read().split()))
        d = [y - x for x, y in zip(a, b)]
        wu, ws, wv, wi = map(float, open(base + ".time").read().split()[:4])
        rows[name].append((rps, d[3] / 1e3 / n, d[4] / n, d[5] / n, d[0] / 1e3 / n, d[1] / n, d[2] / n,
                           1e6 * (wu + ws) / n, wv / n, wi / n))
        print(f"  round {rnd} {name:<13}{rps:>8.0f} req/s | proxy CPU {rows[name][-1][1]:5.1f} us ctx {rows[name][-1][2]:.2f} / {rows[name][-1][3]:.2f}"
              f" | mock CPU {rows[name][-1][4]:5.1f} us ctx {rows[name][-1][5]:.2f} / {rows[name][-1][6]:.2f}"
              f" | wrk CPU {rows[name][-1][7]:5.1f} us ctx {rows[name][-1][8]:.2f} / {rows[name][-1][9]:.2f}")
    med = {k: [statistics.median(c) for c in zip(*v)] for k, v in rows.items()}
    for k, m in med.items():
        print(f"  median {k:<13}{m[0]:>8.0f} req/s ({m[0] / med['nginx'][0]:.2f}x nginx) | proxy CPU {m[1]:5.1f} us/request,"
              f" ctx {m[2]:.2f} / {m[3]:.2f} | CPU of proxy + mock + wrk {m[1] + m[4] + m[7]:5.1f} us/request")
PY
log "raw results: $OUT"
