#!/usr/bin/env bash
# Soak with faults (issue 5): two mock upstreams injecting ~5% faults (429,
# 500, 503, resets, stalls, truncated bodies and streams) behind one model
# with two deployments; loadgen drives it for DURATION and reports every
# request's outcome by class. The gateway's RSS and open file descriptors
# are taken after warm-up and at the end (once idle pooled connections have
# timed out), and its retry/error counters over the measured run only.
#
# Passes (exit 0) when every request ended in a success or a well-formed
# error in its dialect (an error status with a JSON body, or a stream ending
# with its dialect's error event: classes "status" and "stream_error"), no
# descriptor leaked, and RSS did not grow over the second half of the run
# (at most 1 MiB; up to 8 MiB over the whole run while the buffer arenas fill).
#
# Usage: scripts/soak.sh [DURATION_SECONDS] [WORKLOAD]   (KEEP=1 keeps the logs)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-120}
WORKLOAD=${2:-chat}
cargo build --release -q -p shardgate -p loadgen
DIR=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$DIR"' EXIT

# Waits until something answers HTTP on 127.0.0.1:$1, or gives up.
wait_http() {
  for _ in $(seq 200); do
    curl -s -m 1 -o /dev/null "http://127.0.0.1:$1/${2:-}" && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2
  tail -n 5 "$DIR"/*.log >&2
  exit 1
}

FAULTS="--fail-429 0.01 --fail-500 0.01 --fail-503 0.01 --reset 0.01 --stall 0.005 --stall-for 3s --truncate 0.005"
for port in 18201 18202; do
  # Different seeds, or both mocks (fed alternately by round-robin) inject
  # the very same fault sequence.
  target/release/loadgen mock --listen 127.0.0.1:$port --cores =1 --seed $port $FAULTS >"$DIR/mock-$port.log" 2>&1 &
  PIDS+=($!)
done
cat > "$DIR/shardgate.toml" <<TOML
[admin]
listen = "127.0.0.1:18209"
[upstream]
first_byte_timeout_ms = 1000
idle_timeout_ms = 1000
pool_idle_timeout_ms = 1000
[providers.a]
kind = "openai"
base_url = "http://127.0.0.1:18201/v1"
api_key = "ka"
[providers.b]
kind = "openai"
base_url = "http://127.0.0.1:18202/v1"
api_key = "kb"
[[models]]
name = "soak"
deployments = [{ provider = "a" }, { provider = "b" }]
TOML
wait_http 18201 v1/models
wait_http 18202 v1/models
target/release/shardgate --config "$DIR/shardgate.toml" --listen 127.0.0.1:18200 2>"$DIR/shardgate.log" &
SG=$!
PIDS+=($SG)
wait_http 18200 health

rss_kib() { awk '/VmRSS/ {print $2}' /proc/$SG/status; }
fds() { ls /proc/$SG/fd | wc -l; }
counters() {
  curl -s http://127.0.0.1:18209/metrics |
    grep -E '^shardgate_(retries|fallbacks|ejections|errors)_total' | sort >"$1" || true
}
drive() {
  target/release/loadgen run --target http://127.0.0.1:18200 --workload "$WORKLOAD" --model soak \
    --connections 32 --duration "$1" --cores =1 "${@:2}"
}

drive 10s >/dev/null 2>&1 || true
sleep 2.5 # idle pooled connections time out (1 s) and are swept (every 0.5 s)
RSS0=$(rss_kib) FDS0=$(fds)
echo "after 10 s warm-up: rss $RSS0 KiB, fds $FDS0"
counters "$DIR/before"
# RSS each second through the run, to tell a plateau from a leak.
( while kill -0 "$SG" 2>/dev/null; do rss_kib; sleep 1; done ) >"$DIR/rss.txt" &
SAMPLER=$!
drive "${DUR}s" --json >"$DIR/run.json" 2>/dev/null || true
kill "$SAMPLER" 2>/dev/null || true
sleep 2.5
RSS1=$(rss_kib) FDS1=$(fds)
echo "at the end:         rss $RSS1 KiB, fds $FDS1"
counters "$DIR/after"
echo "gateway counters over the run:"
join -a2 "$DIR/before" "$DIR/after" | awk 'NF == 3 {print $1, $3 - $2} NF == 2 {print $1, $2}'

python3 - "$DIR/run.json" "$DIR/rss.txt" "$RSS0" "$RSS1" "$FDS0" "$FDS1" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
samples = [int(l) for l in open(sys.argv[2]) if l.strip()]
rss0, rss1, fds0, fds1 = map(int, sys.argv[3:])
mid = samples[len(samples) // 2] if samples else rss0
errors = run["errors"]
bad = {k: v for k, v in errors.items() if v and k not in ("status", "stream_error")}
total = run["ok"] + sum(errors.values())
lat = run["latency_ms"]
print(f"run: {run['seconds']:.1f} s, {run['throughput_rps']:.0f} req/s, "
      f"latency p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms")
print(f"verdict: {total} requests, {run['ok']} ok, "
      f"{errors['status']} error statuses, {errors['stream_error']} stream errors, "
      f"not well-formed: {sum(bad.values())} {bad or ''}; "
      f"RSS {rss0} -> {mid} (half-way) -> {rss1} KiB, peak {max(samples, default=rss1)} KiB, "
      f"fds {fds0} -> {fds1}")
# Growth is allowed while the per-shard buffer arenas fill (bounded at 4 MiB
# each), not in the second half of the run: that would be a leak.
ok = not bad and fds1 <= fds0 and rss1 - rss0 <= 8192 and rss1 - mid <= 1024 and total > 0
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
