#!/usr/bin/env bash
# Does polling the dashboard's JSON endpoint change the gateway's numbers?
# One shardgate shard on CPU $SUT_CPU, the bundled mock and loadgen on CPU
# $GEN_CPU; loadgen sends chat completions open loop at $RATE req/s for
# $DUR per run, alternating runs without and with `GET /admin/stats` polled
# once a second ($POLL_S) by curl (on $GEN_CPU), $RUNS times each. Prints each run and the
# medians; raw JSON goes to $OUT (default target/bench/dashboard-<timestamp>).
#
#   scripts/bench-dashboard.sh          RATE=3000 DUR=5s RUNS=3 POLL_S=1
set -euo pipefail
case "${1:-}" in
  "") ;;
  -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) printf 'bench-dashboard.sh: unknown argument %s (settings are environment variables)\n' "$1" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${OUT:-$TARGET_DIR/bench/dashboard-$(date +%Y%m%d-%H%M%S)}"
RATE="${RATE:-3000}" DUR="${DUR:-5s}" RUNS="${RUNS:-3}" POLL_S="${POLL_S:-1}"
NCPU=$(nproc)
SUT_CPU="${SUT_CPU:-0}"
GEN_CPU="${GEN_CPU:-$((NCPU - 1))}"
MOCK_PORT=18200 GATE_PORT=18202 ADMIN_PORT=18203
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.025; done; return 1; }

[[ -n "${NO_BUILD:-}" ]] || cargo build --release -q -p loadgen -p shardgate
LOADGEN="$TARGET_DIR/release/loadgen" GATE_BIN="$TARGET_DIR/release/shardgate"

"$LOADGEN" mock --listen "127.0.0.1:$MOCK_PORT" --cores "=$GEN_CPU" 2>"$OUT/mock.log" &
PIDS+=($!)
wait_port $MOCK_PORT
OPENAI_API_KEY=x OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
  taskset -c "$SUT_CPU" "$GATE_BIN" --listen "127.0.0.1:$GATE_PORT" --shards 1 \
  --admin-listen "127.0.0.1:$ADMIN_PORT" 2>"$OUT/shardgate.log" &
PIDS+=($!)
wait_port $GATE_PORT && wait_port $ADMIN_PORT

run() { # name
  "$LOADGEN" run --target "127.0.0.1:$GATE_PORT" --workload chat \
    --cores "=$GEN_CPU" --connections 64 --rate "$RATE" --warmup 1s --duration "$DUR" --json >"$OUT/$1.json"
}
for i in $(seq "$RUNS"); do
  run "off.$i"
  ( while :; do taskset -c "$GEN_CPU" curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/admin/stats"; sleep "$POLL_S"; done ) &
  POLLER=$!
  run "on.$i"
  kill "$POLLER"; wait "$POLLER" 2>/dev/null || true
done
curl -s -o "$OUT/stats.json" -w "stats document: %{size_download} bytes in %{time_total} s\n" \
  "http://127.0.0.1:$ADMIN_PORT/admin/stats"

python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
print(f"{'run':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7}")
med = {}
for mode in ("off", "on"):
    rows = []
    for i in range(1, runs + 1):
        r = json.load(open(f"{out}/{mode}.{i}.json"))
        l = r["latency_ms"]
        rows.append((r["throughput_rps"], l["p50"], l["p99"], l["p99.9"], sum(r["errors"].values())))
        print(f"{mode + '.' + str(i):8} {rows[-1][0]:8.0f} {rows[-1][1]:8.3f} {rows[-1][2]:8.3f} {rows[-1][3]:9.3f} {rows[-1][4]:7}")
    med[mode] = [statistics.median(c) for c in zip(*rows)]
for mode in ("off", "on"):
    m = med[mode]
    print(f"median {mode:3} {m[0]:8.0f} {m[1]:8.3f} {m[2]:8.3f} {m[3]:9.3f}")
PY
echo "raw results: $OUT"
