#!/usr/bin/env bash
# Throughput at saturation with wrk, as the public gateway benchmarks run it:
# everything on this machine's cores, wrk -c 10, a ~540-byte chat body, one
# nginx as the mock upstream (a static JSON answer) and one nginx as the
# reference proxy (proxy_pass with an upstream keepalive pool). Runs direct,
# nginx and shardgate in alternation ROUNDS times and prints medians and
# ratios, with each proxy's CPU per request (its utime+stime over the round,
# from /proc, divided by the requests wrk counted).
# Usage: scripts/bench-wrk.sh [ROUNDS] [SECONDS]
# BASELINE=path/to/another/shardgate adds that binary (an earlier build, or
# the same build with a feature off) as a fourth target in the same
# alternation, so a change's cost is a ratio measured side by side (the
# first runs with --admin-listen off, so the baseline, which may predate
# that flag, gets the default admin port). GOVERNED=1 runs the first with
# virtual keys on: one key (the `sk-client` wrk sends) with rpm, tpm, a
# concurrency cap and a budget far above what the run uses, so every
# request is checked, reserved and settled and none refused; compare with
# BASELINE=target/release/shardgate (the same build, keys off).
# CACHED=1 runs the first with the exact response cache on: wrk sends one
# body, so every request after the first is a hit (answered in memory).
# CACHED=miss runs it with the cache on and every request's prompt unique
# (the round, the target, the wrk thread and a counter, for every target
# alike), so every request is a
# miss that is stored (and, once the cache is full, evicts); compare with
# BASELINE=target/release/shardgate (the same build, cache off). With any
# CACHED its admin port (19107) is read after the rounds for the cache's
# lookups and evictions; a miss run that counted a hit fails.
# CACHED=stream: the cache on, and the mock answers an SSE chat stream (role,
# two deltas, finish, usage chunk, [DONE]) to a body that asks to stream, so
# every request after the first is a streamed hit replayed from the record.
# GOVERNED=redis runs the first with the same key on the Redis backend (a
# redis-server of its own on 127.0.0.1:19105, no persistence, stopped
# after) and a BASELINE with that key on the local backend, so
# `shardgate / baseline` is Redis against local; Redis's INFO commandstats,
# read before and after the rounds, gives its commands per request served.
# TRACED=1 runs the first with OpenTelemetry tracing on at a sample ratio of
# 1 (every request a server span and a client span), exported over OTLP/HTTP
# to a sink that reads and discards (a server of the same nginx on 19106);
# compare with BASELINE=target/release/shardgate (the same build, tracing
# off). Its admin port (19107) is read after the rounds for the spans
# exported and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
SECS=${2:-5}
command -v nginx >/dev/null && command -v wrk >/dev/null || {
  echo "needs nginx and wrk (apt-get install nginx wrk)"; exit 1; }
cargo build --release -p shardgate -q
DIR=$(mktemp -d)
BL=
REDIS=
trap 'kill $(cat $DIR/nginx.pid) $SG $BL $REDIS 2>/dev/null || true; rm -rf $DIR' EXIT
RESP='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Packets flow like streams"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":8,"total_tokens":58}}'
CTYPE=application/json
if [[ "${CACHED:-}" == stream ]]; then
  CTYPE=text/event-stream
  C='"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini"'
  RESP=$(printf 'data: {%s,"choices":[{"index":0,"delta":{"role":"assistant","content":"Packets"},"finish_reason":null}]}\n\ndata: {%s,"choices":[{"index":0,"delta":{"content":" flow like streams"},"finish_reason":null}]}\n\ndata: {%s,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: {%s,"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":8,"total_tokens":58}}\n\ndata: [DONE]\n\n' "$C" "$C" "$C" "$C")$'\n\n' # ($(…) drops the last blank line)
fi
cat > "$DIR/nginx.conf" <<NGX
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:19101; keepalive 64; }
  server { listen 127.0.0.1:19101; location / { default_type $CTYPE; return 200 '$RESP'; } }
  server { listen 127.0.0.1:19102; location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:19106; client_max_body_size 64m; location / { return 200; } }
}
NGX
BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about a gateway that forwards requests quickly and never gets in the way of the traffic it carries. '"$(printf 'x%.0s' $(seq 250))"'"}],"temperature":0.7,"max_tokens":64}'
[[ "${CACHED:-}" == stream ]] && BODY=${BODY/\"max_tokens\":64/\"max_tokens\":64,\"stream\":true,\"stream_options\":{\"include_usage\":true\}}
printf '%s' "$BODY" > "$DIR/body.json"
cat > "$DIR/post.lua" <<LUA
wrk.method = "POST"
local f = io.open("$DIR/body.json"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-client"
LUA
if [[ "${CACHED:-}" == miss ]]; then
  # Each request's prompt made unique: thread number and a counter.
  cat >> "$DIR/post.lua" <<'LUA'
-- `id` is global: thread:set() gives each thread's state its own.
id = 0
local threads, n, nonce = 0, 0, os.getenv("NONCE") or ""
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, (wrk.body:gsub("Write a haiku", "Write haiku " .. nonce .. id .. "-" .. n, 1)))
end
LUA
fi
nginx -c "$DIR/nginx.conf" -p "$DIR" -g 'daemon on;'
SG_ARGS=()
if [[ -n "${GOVERNED:-}" ]]; then
  cat > "$DIR/governed.toml" <<TOML
[providers.openai]
base_url = "http://127.0.0.1:19101/v1"
api_key = "sk-up"
[state]
dir = "$DIR/state"
[[keys]]
name = "bench"
key_sha256 = "9317152c7ce9662afd2deb4078472692a4d84040d09f9c3d2b2d3688f057c7de" # sk-client
rpm = 1000000000
tpm = 1000000000000
max_concurrent = 100000
budget_usd = 1000000000.0
TOML
  SG_ARGS=(--config "$DIR/governed.toml")
fi
if [[ -n "${CACHED:-}" ]]; then
  cat > "$DIR/cached.toml" <<TOML
[providers.openai]
base_url = "http://127.0.0.1:19101/v1"
api_key = "sk-up"
[cache]
enabled = true
TOML
  SG_ARGS=(--config "$DIR/cached.toml")
fi
if [[ -n "${TRACED:-}" ]]; then
  cat > "$DIR/traced.toml" <<TOML
[providers.openai]
base_url = "http://127.0.0.1:19101/v1"
api_key = "sk-up"
[tracing]
otlp_endpoint = "http://127.0.0.1:19106"
sample_ratio = 1.0
TOML
  SG_ARGS=(--config "$DIR/traced.toml")
fi
SG_ADMIN=off
[[ -n "${TRACED:-}" || -n "${CACHED:-}" ]] && SG_ADMIN=127.0.0.1:19107
BL_ARGS=()
if [[ "${GOVERNED:-}" == redis ]]; then
  command -v redis-server >/dev/null || { echo "GOVERNED=redis needs redis-server"; exit 1; }
  redis-server --port 19105 --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    >"$DIR/redis.log" 2>&1 &
  REDIS=$!
  for _ in $(seq 50); do redis-cli -p 19105 ping >/dev/null 2>&1 && break; sleep 0.1; done
  sed "s|^\[state\]|[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:19105\"|" \
    "$DIR/governed.toml" > "$DIR/redis.toml"
  sed -i "s|^dir = .*|dir = \"$DIR/state-redis\"|" "$DIR/redis.toml"
  SG_ARGS=(--config "$DIR/redis.toml")
  BL_ARGS=(--config "$DIR/governed.toml")
fi
# Every command Redis has run so far, from its own count.
redis_calls() { redis-cli -p 19105 info commandstats | awk -F'[=,:]' '/^cmdstat_/ {n += $3} END {print n + 0}'; }
OPENAI_API_KEY=sk-up OPENAI_BASE_URL=http://127.0.0.1:19101/v1 target/release/shardgate \
  --listen 127.0.0.1:19103 --admin-listen "$SG_ADMIN" "${SG_ARGS[@]}" 2>"$DIR/shardgate.log" &
SG=$!
TARGETS="direct:19101 nginx:19102 shardgate:19103"
if [[ -n "${BASELINE:-}" ]]; then
  OPENAI_API_KEY=sk-up OPENAI_BASE_URL=http://127.0.0.1:19101/v1 "$BASELINE" \
    --listen 127.0.0.1:19104 "${BL_ARGS[@]}" 2>"$DIR/baseline.log" &
  BL=$!
  TARGETS="$TARGETS baseline:19104"
fi
sleep 0.5
for port in 19103 ${BL:+19104}; do
  curl -sf -o /dev/null -H 'authorization: Bearer sk-client' http://127.0.0.1:$port/v1/chat/completions -d @"$DIR/body.json" || { echo "shardgate on $port not answering"; cat "$DIR"/*.log; exit 1; }
done
NGINX_WORKER=$(pgrep -P "$(cat "$DIR/nginx.pid")" | head -1)
declare -A PID=([nginx]=$NGINX_WORKER [shardgate]=$SG [baseline]=$BL)
# utime+stime of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A R C
SERVED=0
[[ -n "$REDIS" ]] && CALLS0=$(redis_calls)
for round in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    name=${t%%:*}; port=${t##*:}
    pid=${PID[$name]:-}
    [[ -n "$pid" ]] && t0=$(ticks "$pid")
    out=$(NONCE="$round-$name-" wrk -t2 -c10 -d"${SECS}s" -s "$DIR/post.lua" "http://127.0.0.1:$port/v1/chat/completions")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    # A refusal is cheaper than a proxied answer: a round with any is no measure.
    if grep -q 'Non-2xx' <<<"$out"; then echo "$name: $(grep 'Non-2xx' <<<"$out")" >&2; exit 1; fi
    [[ $name == shardgate ]] && SERVED=$(( SERVED + $(awk '/requests in/ {print $1}' <<<"$out") ))
    R[$name]="${R[$name]:-} $rps"
    if [[ -n "$pid" ]]; then
      # microseconds of CPU per request over the round
      C[$name]="${C[$name]:-} $(awk -v t="$(( $(ticks "$pid") - t0 ))" -v hz="$(getconf CLK_TCK)" -v r="$rps" -v s="$SECS" 'BEGIN { printf "%.2f", t / hz * 1e6 / (r * s) }')"
    fi
  done
done
[[ -n "$REDIS" ]] && CALLS1=$(redis_calls)
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "wrk -t2 -c10 -d${SECS}s, ${ROUNDS} alternating rounds, $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "shardgate: $(grep -o '[a-z_]* driver' "$DIR/shardgate.log" | sort | uniq -c | tr -s ' ' | paste -sd,)"
for t in $TARGETS; do name=${t%%:*}; echo "$name: req/s${R[$name]}${C[$name]:+; CPU us/request${C[$name]}}"; done
D=$(echo "${R[direct]}" | median); N=$(echo "${R[nginx]}" | median); S=$(echo "${R[shardgate]}" | median)
printf 'median req/s: direct %.0f, nginx %.0f, shardgate %.0f\n' "$D" "$N" "$S"
awk -v d="$D" -v n="$N" -v s="$S" 'BEGIN { printf "shardgate / nginx = %.2fx; shardgate / direct = %.2fx; nginx / direct = %.2fx\n", s/n, s/d, n/d }'
NC=$(echo "${C[nginx]}" | median); SC=$(echo "${C[shardgate]}" | median)
awk -v n="$NC" -v s="$SC" 'BEGIN { printf "median CPU per request: nginx %.2f us, shardgate %.2f us (%.2fx nginx)\n", n, s, s/n }'
if [[ -n "$BL" ]]; then
  B=$(echo "${R[baseline]}" | median); BC=$(echo "${C[baseline]}" | median)
  awk -v b="$B" -v s="$S" -v bc="$BC" -v sc="$SC" 'BEGIN { printf "baseline: median %.0f req/s, %.2f us CPU/request; shardgate / baseline = %.2fx throughput, %.2fx CPU per request\n", b, bc, s/b, sc/bc }'
fi
if [[ -n "${TRACED:-}" ]]; then
  sleep 1.5 # the last batches exported
  curl -s http://127.0.0.1:19107/metrics | grep '^shardgate_trace_' | tr '\n' ' '
  echo "(shardgate served $SERVED requests over the rounds, +1 probe)"
fi
if [[ -n "${CACHED:-}" ]]; then
  # The cache's own count of what it answered: a miss run that hit is no measure.
  counts=$(curl -s http://127.0.0.1:19107/metrics | grep -E '^shardgate_cache_(lookups|evictions)_total')
  echo "$(tr '\n' ' ' <<<"$counts")(shardgate served $SERVED requests over the rounds, +1 probe)"
  if [[ "${CACHED}" == miss ]]; then
    hits=$(awk '/^shardgate_cache_lookups_total\{result="hit"\}/ {print $2}' <<<"$counts")
    (( ${hits%.*} == 0 )) || { echo "error: $hits hits in a miss run"; exit 1; }
  fi
fi
if [[ -n "$REDIS" ]]; then
  awk -v c="$(( CALLS1 - CALLS0 ))" -v n="$SERVED" 'BEGIN { printf "redis: %d commands over the rounds for %d requests served by shardgate = %.4f per request\n", c, n, c/n }'
  redis-cli -p 19105 info commandstats | grep '^cmdstat_'
fi
