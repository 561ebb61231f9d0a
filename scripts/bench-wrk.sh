#!/usr/bin/env bash
# Throughput at saturation with wrk, as the public gateway benchmarks run it:
# everything on this machine's cores, wrk -c 10, a ~540-byte chat body, one
# nginx as the mock upstream (a static JSON answer) and one nginx as the
# reference proxy (proxy_pass with an upstream keepalive pool). Runs direct,
# nginx and shardgate in alternation ROUNDS times and prints medians and
# ratios. Usage: scripts/bench-wrk.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-5}
command -v nginx >/dev/null && command -v wrk >/dev/null || {
  echo "needs nginx and wrk (apt-get install nginx wrk)"; exit 1; }
cargo build --release -p shardgate -q
DIR=$(mktemp -d)
trap 'kill $(cat $DIR/nginx.pid) $SG 2>/dev/null || true; rm -rf $DIR' EXIT
RESP='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Packets flow like streams"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":8,"total_tokens":58}}'
cat > "$DIR/nginx.conf" <<NGX
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:19101; keepalive 64; }
  server { listen 127.0.0.1:19101; location / { default_type application/json; return 200 '$RESP'; } }
  server { listen 127.0.0.1:19102; location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGX
BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about a gateway that forwards requests quickly and never gets in the way of the traffic it carries. '"$(printf 'x%.0s' $(seq 250))"'"}],"temperature":0.7,"max_tokens":64}'
printf '%s' "$BODY" > "$DIR/body.json"
cat > "$DIR/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$DIR/body.json"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-client"
LUA
nginx -c "$DIR/nginx.conf" -p "$DIR" -g 'daemon on;'
OPENAI_API_KEY=sk-up OPENAI_BASE_URL=http://127.0.0.1:19101/v1 target/release/shardgate \
  --listen 127.0.0.1:19103 2>"$DIR/shardgate.log" &
SG=$!
sleep 0.5
curl -sf -o /dev/null http://127.0.0.1:19103/v1/chat/completions -d @"$DIR/body.json" || { echo "shardgate not answering"; cat "$DIR/shardgate.log"; exit 1; }
declare -A R
for round in $(seq "$ROUNDS"); do
  for t in direct:19101 nginx:19102 shardgate:19103; do
    name=${t%%:*}; port=${t##*:}
    rps=$(wrk -t2 -c10 -d"${SECS}s" -s "$DIR/post.lua" "http://127.0.0.1:$port/v1/chat/completions" | awk '/Requests\/sec/ {print $2}')
    R[$name]="${R[$name]:-} $rps"
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "wrk -t2 -c10 -d${SECS}s, ${ROUNDS} alternating rounds, $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "shardgate: $(grep -o '[a-z_]* driver' "$DIR/shardgate.log" | sort | uniq -c | tr -s ' ' | paste -sd,)"
for name in direct nginx shardgate; do echo "$name: ${R[$name]}"; done
D=$(echo "${R[direct]}" | median); N=$(echo "${R[nginx]}" | median); S=$(echo "${R[shardgate]}" | median)
printf 'median req/s: direct %.0f, nginx %.0f, shardgate %.0f\n' "$D" "$N" "$S"
awk -v d="$D" -v n="$N" -v s="$S" 'BEGIN { printf "shardgate / nginx = %.2fx; shardgate / direct = %.2fx; nginx / direct = %.2fx\n", s/n, s/d, n/d }'
