#!/usr/bin/env bash
# Soak with faults (issue 5): two mock upstreams injecting ~5% faults (429,
# 500, 503, resets, stalls, truncated streams) behind one model with two
# deployments; loadgen drives it for DURATION and reports every request's
# outcome by class; the gateway's RSS and open file descriptors are taken
# after warm-up and at the end.  Usage: scripts/soak.sh [DURATION_SECONDS] [WORKLOAD]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-120}
WORKLOAD=${2:-chat}
cargo build --release -q -p shardgate -p loadgen
DIR=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
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
target/release/shardgate --config "$DIR/shardgate.toml" --listen 127.0.0.1:18200 2>"$DIR/shardgate.log" &
SG=$!
PIDS+=($SG)
sleep 0.5
mem() { echo "rss $(awk '/VmRSS/ {print $2" "$3}' /proc/$SG/status), fds $(ls /proc/$SG/fd | wc -l)"; }
target/release/loadgen run --target http://127.0.0.1:18200 --workload "$WORKLOAD" --model soak \
  --connections 32 --duration 10s --cores =1 >/dev/null 2>&1 || true
echo "after 10 s warm-up: $(mem)"
target/release/loadgen run --target http://127.0.0.1:18200 --workload "$WORKLOAD" --model soak \
  --connections 32 --duration "${DUR}s" --cores =1 2>/dev/null | tee "$DIR/run.txt" || true
sleep 2 # idle pooled connections settle
echo "at the end:         $(mem)"
echo "gateway counters:"
curl -s http://127.0.0.1:18209/metrics | grep -E '^shardgate_(retries|fallbacks|ejections|errors)_total' || true
