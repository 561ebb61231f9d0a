#!/usr/bin/env bash
# End-to-end benchmark: the mock upstream direct, nginx as a plain reverse
# proxy, and shardgate, measured by loadgen in the same run, with ratios.
#
#   scripts/bench.sh            full run (under 10 minutes)
#   scripts/bench.sh --quick    chat + chat-stream, short runs (under 2 minutes)
#   scripts/bench.sh --trust    the instrument against wrk, and the mock against
#                               nginx serving a static file (about 2 minutes;
#                               TRUST_CONNS="10 64" TRUST_RUNS=5)
#
# Placement (stated in the output): the system under test (nginx with one
# worker, or shardgate with one shard) runs alone on CPU $SUT_CPU; loadgen and
# the mock share CPU $GEN_CPU. Direct runs therefore measure loadgen+mock on
# one core, and proxied runs add one hop on its own core. Results and raw
# JSON (and a latency plot per open-loop run, NAME.WORKLOAD.rateR.svg) go to
# $OUT (default target/bench/<timestamp>).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/bench.sh [--quick | --trust | -h | --help]
  (no flag)  full run (under 10 minutes)
  --quick    chat + chat-stream, short runs (under 2 minutes)
  --trust    the instrument against wrk, and the mock against nginx
  -h, --help this text
Environment: OUT, SUT_CPU, GEN_CPU, TRUST_CONNS, TRUST_RUNS, CARGO_TARGET_DIR.
USAGE
}
MODE="${1:-full}"
# Answer --help and refuse an unknown flag before anything is built or started.
case "$MODE" in
  -h | --help) usage; exit 0 ;;
  full | --quick | --trust) ;;
  *) printf 'bench.sh: unknown argument %s\n' "$MODE" >&2; usage >&2; exit 2 ;;
esac
QUICK=0
[[ "$MODE" == "--quick" ]] && QUICK=1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/nginx-proxy.sh
. "$ROOT/scripts/nginx-proxy.sh"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$TARGET_DIR/bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
NCPU=$(nproc)
SUT_CPU="${SUT_CPU:-0}"
GEN_CPU="${GEN_CPU:-$((NCPU - 1))}"
MOCK_PORT=18100 NGINX_PORT=18101 GATE_PORT=18102
CONNS=64
if ((QUICK)); then
  WORKLOADS=(chat chat-stream) WARMUP=300ms DUR=1500ms RATES=(1000 5000)
else
  WORKLOADS=(chat chat-stream responses responses-stream messages messages-stream embeddings)
  WARMUP=1s DUR=4s RATES=(1000 5000)
fi

log() { printf '%s\n' "$*" >&2; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # shardgate is launched by the cold-start probe, so it is not ours to wait
  # for: poll until it has drained and exited (its port is then free).
  if [[ -n "${GATE_PID:-}" ]]; then
    for _ in $(seq 100); do kill -0 "$GATE_PID" 2>/dev/null || break; sleep 0.05; done
  fi
}
trap cleanup EXIT

log "== building release binaries"
cargo build --release -q -p loadgen
GATE_BIN="$TARGET_DIR/release/shardgate"
[[ "$MODE" == "--trust" ]] || cargo build --release -q -p shardgate 2>"$OUT/shardgate-build.log" || { log "shardgate does not build; skipping it"; GATE_BIN=""; }
LOADGEN="$TARGET_DIR/release/loadgen"

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done; return 1; }

if [[ "$MODE" == "--trust" ]]; then
  # Same target, same core, same connections, alternated $TRUST_RUNS times at
  # each of $TRUST_CONNS connections: wrk and loadgen against nginx serving a
  # 318-byte JSON file (one worker, CPU $SUT_CPU); then wrk against that file
  # vs the mock's GET /v1/models. CPU per request is user + system time of
  # the whole generator process over the requests it completed.
  TRUST_CONNS=(${TRUST_CONNS:-10 64}) TRUST_RUNS=${TRUST_RUNS:-5}
  mkdir -p "$OUT/static/www"
  echo '{"id":"chatcmpl-x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"tok tok tok tok tok tok tok tok tok tok tok tok tok tok tok tok "},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":16,"total_tokens":136}}' >"$OUT/static/www/chat.json"
  cat >"$OUT/static/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $OUT/static/nginx.pid;
error_log $OUT/static/error.log warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; default_type application/json;
  server { listen 127.0.0.1:$NGINX_PORT reuseport; root $OUT/static/www; } }
CONF
  taskset -c "$SUT_CPU" "$(command -v nginx || echo /usr/sbin/nginx)" -p "$OUT/static" -c "$OUT/static/nginx.conf" &
  PIDS+=($!)
  "$LOADGEN" mock --listen "127.0.0.1:$MOCK_PORT" --cores "=$SUT_CPU" 2>/dev/null &
  PIDS+=($!)
  wait_port $NGINX_PORT && wait_port $MOCK_PORT
  for c in "${TRUST_CONNS[@]}"; do
    for i in $(seq "$TRUST_RUNS"); do
      taskset -c "$GEN_CPU" /usr/bin/time -f "cpu %U %S" -o "$OUT/wrk.$c.$i.time" \
        wrk -t1 -c"$c" -d4s "http://127.0.0.1:$NGINX_PORT/chat.json" >"$OUT/wrk.$c.$i.txt"
      /usr/bin/time -f "cpu %U %S" -o "$OUT/loadgen.$c.$i.time" "$LOADGEN" run --target "127.0.0.1:$NGINX_PORT" \
        --workload models --path /chat.json --connections "$c" --duration 4s --cores "=$GEN_CPU" --json >"$OUT/loadgen.$c.$i.json"
      taskset -c "$GEN_CPU" wrk -t1 -c"$c" -d4s "http://127.0.0.1:$MOCK_PORT/v1/models" >"$OUT/wrk-mock.$c.$i.txt"
    done
  done
  python3 - "$OUT" "$TRUST_RUNS" "${TRUST_CONNS[@]}" <<'PY' | tee "$OUT/trust.txt"
import json, re, statistics, sys
out, runs, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def wrk(f):
    t = open(f).read()
    return float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)), int(re.search(r"(\d+) requests in", t).group(1))
def cpu(f):
    u, s = open(f).read().split("cpu ")[1].split()[:2]
    return float(u) + float(s)
print(f"trust: wrk and loadgen alternated {runs} times per row, 4 s each, generator pinned to CPU, target nginx (static JSON) on the other")
print("conns | wrk req/s | loadgen req/s | loadgen/wrk | wrk us CPU/req | loadgen us CPU/req | loadgen/wrk CPU | mock/nginx (wrk)")
for c in conns:
    rows = []
    for i in range(1, runs + 1):
        w_rps, w_n = wrk(f"{out}/wrk.{c}.{i}.txt")
        l = json.load(open(f"{out}/loadgen.{c}.{i}.json"))
        l_n = l["ok"] + sum(l["errors"].values())
        rows.append((w_rps, l["throughput_rps"], 1e6 * cpu(f"{out}/wrk.{c}.{i}.time") / w_n,
                     1e6 * cpu(f"{out}/loadgen.{c}.{i}.time") / l_n, wrk(f"{out}/wrk-mock.{c}.{i}.txt")[0]))
    for r in rows:
        print(f"  run: wrk {r[0]:.0f} ({r[2]:.1f} us) | loadgen {r[1]:.0f} ({r[3]:.1f} us) | mock {r[4]:.0f}", file=sys.stderr)
    m = [statistics.median(col) for col in zip(*rows)]
    print(f"{c:>5} | {m[0]:9.0f} | {m[1]:13.0f} | {m[1] / m[0]:11.2f} | {m[2]:14.1f} | {m[3]:18.1f} | {m[3] / m[2]:15.2f} | {m[4] / m[0]:.2f}")
PY
  exit 0
fi

if ! command -v nginx >/dev/null && ! [ -x /usr/sbin/nginx ]; then
  log "== installing nginx from Debian packages"
  apt-get install -y -q nginx-light >/dev/null || apt-get install -y -q nginx >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "== mock on CPU $GEN_CPU"
"$LOADGEN" mock --listen "127.0.0.1:$MOCK_PORT" --cores "=$GEN_CPU" 2>"$OUT/mock.log" &
PIDS+=($!)
wait_port $MOCK_PORT

log "== nginx (1 worker, CPU $SUT_CPU, upstream keepalive pool)"
mkdir -p "$OUT/nginx"
nginx_proxy_conf "$OUT/nginx" "$MOCK_PORT" "$NGINX_PORT" "worker_processes 1; worker_cpu_affinity auto; daemon off;" >"$OUT/nginx/nginx.conf"
taskset -c "$SUT_CPU" "$NGINX" -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" &
PIDS+=($!)
NGINX_PID=$!
wait_port $NGINX_PORT

GATE_PID=""
COLD_MS=""
if [[ -n "$GATE_BIN" ]]; then
  log "== shardgate (CPU $SUT_CPU)"
  # Cold start = launch to the first 200 for a chat request (through the
  # mock), polled over a raw socket every 0.5 ms: a fresh curl per attempt
  # would add its own exec to the figure. Prints "PID MS" (MS empty if none).
  read -r GATE_PID COLD_MS < <(python3 - "$GATE_BIN" "$GATE_PORT" "$MOCK_PORT" "$SUT_CPU" "$OUT/shardgate.log" <<'PY'
import os, socket, subprocess, sys, time
binary, port, mock, cpu, log = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
env = dict(os.environ, OPENAI_API_KEY="x", OPENAI_BASE_URL=f"http://127.0.0.1:{mock}/v1",
           ANTHROPIC_API_KEY="x", ANTHROPIC_BASE_URL=f"http://127.0.0.1:{mock}")
start = time.monotonic()
gate = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--admin-listen", "off"], env=env, stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
cold = ""
while gate.poll() is None and time.monotonic() - start < 10:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(request)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        if answer.startswith(b"HTTP/1.1 200"):
            cold = f"{(time.monotonic() - start) * 1000:.1f}"
            break
    except OSError:
        pass
    time.sleep(0.0005)
print(gate.pid, cold)
PY
)
  PIDS+=($GATE_PID)
  if [[ -z "$COLD_MS" ]]; then
    log "shardgate never answered 200 (see $OUT/shardgate.log); skipping it"
    kill "$GATE_PID" 2>/dev/null || true
    GATE_PID=""
  fi
fi

TARGETS=("direct=$MOCK_PORT" "nginx=$NGINX_PORT")
[[ -n "$GATE_PID" ]] && TARGETS+=("shardgate=$GATE_PORT")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# nginx forks its worker; measure the whole process group's children too.
sut_pid() { case "$1" in nginx) pgrep -P "$NGINX_PID" | head -1 ;; shardgate) echo "$GATE_PID" ;; *) echo "" ;; esac; }

# Anthropic workloads name an `anthropic/` model, which shardgate routes to
# its Anthropic provider (the mock's /v1/messages) as is, the way nginx
# passes them through; a bare name would go to the OpenAI provider and be
# translated, which is more work than nginx does.
model_for() { case "$1" in messages*) echo anthropic/claude-3-5-haiku-latest ;; *) echo gpt-4o-mini ;; esac; }

run_lg() { # name workload mode-args...
  local name=$1 workload=$2 file=$3; shift 3
  local port=${name#*=}
  "$LOADGEN" run --target "http://127.0.0.1:$port" --workload "$workload" --model "$(model_for "$workload")" \
    --cores "=$GEN_CPU" --connections $CONNS --warmup $WARMUP --duration $DUR --json "$@" >"$OUT/$file.json"
}

for t in "${TARGETS[@]}"; do
  name=${t%%=*}
  for w in "${WORKLOADS[@]}"; do
    log "-- $name $w: saturation"
    run_lg "$t" "$w" "$name.$w.sat"
    for r in "${RATES[@]}"; do
      log "-- $name $w: $r req/s"
      pid=$(sut_pid "$name")
      [[ -n "$pid" ]] && before=$(cpu_ticks "$pid")
      run_lg "$t" "$w" "$name.$w.rate$r" --rate "$r" --arrivals poisson --plot "$OUT/$name.$w.rate$r.svg"
      [[ -n "$pid" ]] && echo $(($(cpu_ticks "$pid") - before)) >"$OUT/$name.$w.rate$r.ticks"
    done
  done
done

for name in nginx shardgate; do
  pid=$(sut_pid "$name")
  [[ -n "$pid" ]] && grep VmHWM "/proc/$pid/status" | awk '{print $2}' >"$OUT/$name.rss_kb"
done
if [[ -n "$GATE_BIN" ]]; then
  strip -o "$OUT/shardgate.stripped" "$GATE_BIN" && stat -c %s "$OUT/shardgate.stripped" >"$OUT/shardgate.size"
fi
[[ -n "$COLD_MS" ]] && echo "$COLD_MS" >"$OUT/shardgate.cold_ms"

{
  echo "date: $(date -u +%FT%TZ), load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $NCPU online"
  echo "placement: system under test on CPU $SUT_CPU; loadgen + mock on CPU $GEN_CPU"
  # Idle CPUs' wake-up latency dominates the open-loop overheads: say how they idle.
  echo "cpuidle: $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo n/a)," \
    "guest_halt_poll_ns $(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)"
  echo "shardgate driver: $(grep -iom1 'io_uring\|legacy\|epoll' "$OUT/shardgate.log" 2>/dev/null || echo n/a)"
  echo "nginx: $("$NGINX" -v 2>&1 | cut -d/ -f2)"
  echo "runs: $CONNS connections, warmup $WARMUP, $DUR measured, open-loop poisson arrivals"
} >"$OUT/env.txt"

python3 - "$OUT" "$(getconf CLK_TCK)" "${WORKLOADS[*]}" "${RATES[*]}" <<'PY' | tee "$OUT/summary.txt"
import json, os, sys
out, clk, workloads, rates = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
targets = [t for t in ("direct", "nginx", "shardgate") if os.path.exists(f"{out}/{t}.{workloads[0]}.sat.json")]
def load(name):
    try:
        return json.load(open(f"{out}/{name}.json"))
    except OSError:
        return None
def read(name):
    try:
        return open(f"{out}/{name}").read().strip()
    except OSError:
        return None
print(open(f"{out}/env.txt").read())
warnings = []
def note(run, r):
    if r is None:
        return
    errs = sum(r["errors"].values())
    if errs:
        warnings.append(f"{run}: {errs} errors {r['errors']}")
    if r["generator_late"] > 0.01 * max(r["ok"], 1):
        warnings.append(f"{run}: generator fell behind on {r['generator_late']} sends")

print("Saturation throughput (closed loop), req/s, and ratio to direct")
print(f"{'workload':<18}" + "".join(f"{t:>22}" for t in targets))
for w in workloads:
    base = load(f"direct.{w}.sat")["throughput_rps"]
    cells = []
    for t in targets:
        r = load(f"{t}.{w}.sat"); note(f"{t} {w} sat", r)
        cells.append(f"{r['throughput_rps']:>12.0f} ({r['throughput_rps'] / base:4.2f}x)" if r["ok"] else "all failed")
    print(f"{w:<18}" + "".join(f"{c:>22}" for c in cells))
for rate in rates:
    print(f"\nOpen loop {rate} req/s (poisson): latency p50 / p99 ms; overhead = target - direct")
    print(f"{'workload':<18}" + "".join(f"{t:>22}" for t in targets) + "".join(f"{'+' + t:>22}" for t in targets[1:]))
    for w in workloads:
        rs = {t: load(f"{t}.{w}.rate{rate}") for t in targets}
        for t, r in rs.items(): note(f"{t} {w} {rate}/s", r)
        lat = {t: (r["latency_ms"]["p50"], r["latency_ms"]["p99"]) for t, r in rs.items() if r["ok"]}
        row = "".join(f"{lat[t][0]:>10.3f} /{lat[t][1]:>9.3f}" if t in lat else f"{'all failed':>21}" for t in targets)
        row += "".join(
            f"{lat[t][0] - lat['direct'][0]:>+10.3f} /{lat[t][1] - lat['direct'][1]:>+9.3f}"
            if t in lat and "direct" in lat else f"{'-':>21}" for t in targets[1:])
        print(f"{w:<18}{row}")
    streams = [w for w in workloads if w.endswith("-stream")]
    if streams:
        print(f"  stream TTFT p50 ms (overhead vs direct):")
        for w in streams:
            rs = {t: (load(f"{t}.{w}.rate{rate}")["ttft_ms"] or {}).get("p50") for t in targets}
            base = rs["direct"] or 0.0
            print(f"  {w:<16}" + "".join(f"  {t} {v:.3f} ({v - base:+.3f})" if v is not None else f"  {t} failed" for t, v in rs.items()))
print("\nProxy cost (chat workload at the highest rate)")
for t in targets[1:]:
    rate = rates[-1]
    ticks, r = read(f"{t}.chat.rate{rate}.ticks"), load(f"{t}.chat.rate{rate}")
    line = f"  {t:<10}"
    if ticks and r:
        cpu = int(ticks) / clk / r["seconds"]
        line += f" CPU {100 * cpu / (r['throughput_rps'] / 1000):.2f}% of a core per 1k req/s"
    rss = read(f"{t}.rss_kb")
    if rss:
        line += f", peak RSS {int(rss) / 1024:.1f} MiB"
    if t == "shardgate":
        cold, size = read("shardgate.cold_ms"), read("shardgate.size")
        line += f", cold start {cold} ms (launch to first 200), stripped binary {int(size) / 1e6:.2f} MB"
    print(line)
if "shardgate" not in targets:
    print("  shardgate: skipped (did not build or never answered 200)")
print("\n" + ("\n".join("WARNING " + w for w in warnings) if warnings else "all runs: 0 errors, generator on schedule"))
PY
log "raw results: $OUT"
