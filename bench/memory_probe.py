#!/usr/bin/env python3
"""Memory probe for shardgate (issue 13, items 4 and 8): RSS under a load
and after it, against a release binary with one shard.

  memory_probe.py translate BODY [COUNT] [PARALLEL]
      POST one translated body (PARALLEL copies at once), probing /health on
      the same shard meanwhile; BODY is one of
        a2o         /v1/messages, one user turn of COUNT one-byte text blocks
        a2o-text    the same with blocks of $TEXT bytes (default 800)
        a2o-image   /v1/messages, one base64 image filling a 32 MiB body
        o2a         /v1/chat/completions (to Anthropic), COUNT one-word turns
        o2a-image   /v1/chat/completions, one data-URL image filling 32 MiB
  memory_probe.py idle CONNS
      open CONNS connections that each send half a request head (so the
      gateway holds a read buffer for each), then close them all

Prints VmRSS/VmHWM (MiB, /proc/PID/status) at the baseline, under the load
and at intervals after it. The mock upstream is in this process (threads);
the gateway is $SHARDGATE (default target/release/shardgate), zero-config,
or with [limits] from $LIMITS (TOML lines, e.g.
LIMITS='max_translated_blocks = 2000000') to measure past the defaults.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI_REPLY = json.dumps({
    "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
ANTHROPIC_REPLY = json.dumps({
    "id": "msg_x", "type": "message", "role": "assistant", "model": "m",
    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
MAX_BODY = 32 * 1024 * 1024


class Mock(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        left = int(self.headers.get("content-length", 0))
        while left:
            left -= len(self.rfile.read(min(left, 1 << 20)))
        body = ANTHROPIC_REPLY if self.path.endswith("/messages") else OPENAI_REPLY
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_gateway(mock_port):
    port = free_port()
    env = dict(os.environ, OPENAI_API_KEY="k", OPENAI_BASE_URL=f"http://127.0.0.1:{mock_port}/v1",
               ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=f"http://127.0.0.1:{mock_port}")
    args = [os.environ.get("SHARDGATE", "target/release/shardgate"),
            "--listen", f"127.0.0.1:{port}", "--shards", "1"]
    if os.environ.get("LIMITS"):
        path = f"/tmp/memory_probe_{port}.toml"
        with open(path, "w") as f:
            f.write(f"[server]\npin_cores = false\n[limits]\n{os.environ['LIMITS']}\n"
                    f"[providers.openai]\nbase_url = \"http://127.0.0.1:{mock_port}/v1\"\napi_key = \"k\"\n"
                    f"[providers.anthropic]\nkind = \"anthropic\"\n"
                    f"base_url = \"http://127.0.0.1:{mock_port}\"\napi_key = \"k\"\n")
        args += ["--config", path]
    gateway = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.02)
    return gateway, port


def post(port, path, body, timeout=120):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
              f"x-api-key: k\r\nanthropic-version: 2023-06-01\r\ncontent-length: {len(body)}\r\n"
              f"connection: close\r\n\r\n".encode() + body)
    answer = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    s.close()
    return answer


def health_ms(port):
    started = time.time()
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(30)
    s.sendall(b"GET /health HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
    while s.recv(4096):
        pass
    s.close()
    return (time.time() - started) * 1e3


def make_body(kind, count):
    data = b"QUJD" * ((MAX_BODY - 400) // 4)
    if kind == "a2o-image":
        return (b'{"model":"openai/gpt-4o","max_tokens":16,"messages":[{"role":"user","content":'
                b'[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"'
                + data + b'"}}]}]}')
    if kind == "o2a-image":
        return (b'{"model":"anthropic/claude-x","messages":[{"role":"user","content":'
                b'[{"type":"image_url","image_url":{"url":"data:image/png;base64,' + data + b'"}}]}]}')
    if kind in ("a2o", "a2o-text"):
        text = b"x" * (int(os.environ.get("TEXT", "800")) if kind == "a2o-text" else 1)
        parts = b",".join([b'{"type":"text","text":"' + text + b'"}'] * count)
        return (b'{"model":"openai/gpt-4o","max_tokens":16,"messages":[{"role":"user","content":['
                + parts + b']}]}')
    if kind == "o2a":
        turns = b",".join([b'{"role":"user","content":"a"}'] * count)
        return b'{"model":"anthropic/claude-x","messages":[' + turns + b']}'
    sys.exit(f"unknown body {kind!r}")


def sample_after(pid, what, times):
    started = time.time()
    for t in times:
        while time.time() - started < t:
            time.sleep(0.05)
        print(f"{what} +{t}s", status(pid))


def translate(pid, port, kind, count, parallel):
    body = make_body(kind, count)
    path = "/v1/messages" if kind.startswith("a2o") else "/v1/chat/completions"
    print(f"body {len(body)} bytes ({kind}, {count}), {parallel} at once")
    answers, worst, stop = [], [0.0], [False]

    def one():
        started = time.time()
        answer = post(port, path, body)
        answers.append((answer.split(b"\r\n", 1)[0].decode(), round(time.time() - started, 2)))

    def probe():
        while not stop[0]:
            worst[0] = max(worst[0], health_ms(port))
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    senders = [threading.Thread(target=one) for _ in range(parallel)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    stop[0] = True
    prober.join()
    for a in answers:
        print("answer", a)
    print(f"worst /health latency meanwhile: {worst[0]:.1f} ms")
    print("after", status(pid))
    sample_after(pid, "idle", (0.5, 1, 2, 5, 10))


def idle(pid, port, conns):
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    for c in clients:
        c.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(1.0)
    print(f"{conns} idle connections", status(pid))
    for c in clients:
        c.close()
    sample_after(pid, "closed", (0.5, 1, 1.5, 2, 3, 5, 10))


def main():
    mock = ThreadingHTTPServer(("127.0.0.1", 0), Mock)
    threading.Thread(target=mock.serve_forever, daemon=True).start()
    gateway, port = start_gateway(mock.server_address[1])
    try:
        time.sleep(0.5)
        print("baseline", status(gateway.pid))
        if sys.argv[1] == "translate":
            count = int(sys.argv[3]) if len(sys.argv) > 3 else 0
            parallel = int(sys.argv[4]) if len(sys.argv) > 4 else 1
            translate(gateway.pid, port, sys.argv[2], count, parallel)
        elif sys.argv[1] == "idle":
            idle(gateway.pid, port, int(sys.argv[2]))
        else:
            sys.exit(__doc__)
    finally:
        gateway.kill()
        gateway.wait()


if __name__ == "__main__":
    main()
