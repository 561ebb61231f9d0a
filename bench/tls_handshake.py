#!/usr/bin/env python3
"""Does a TLS handshake cost other connections anything? A steady, paced
keep-alive load (GET /health, answered by the gateway itself, so nothing
but the gateway is measured) on TLS connections opened before the round,
with and without a storm of new full TLS handshakes from another process,
in alternated rounds; medians of the rounds' p50/p99 and their ratio.

A third condition separates what the handshakes cost the shard from what
they cost the machine: the same storm against a second gateway process
pinned to the same CPU ("storm-other"). The gap between "storm" and
"storm-other" is what sharing the shard adds (a connection waiting behind
another's handshake on the event loop); "storm-other" over "quiet" is the
CPU the handshakes take, which no placement on this core can avoid.

The gateway runs one shard (the worst case: every handshake lands on the
shard that serves the steady connections) on --sut-cpu; the steady client
and the storm share --gen-cpu, the storm at nice 19 so that it takes only
what the steady client leaves. Certificates: a fresh self-signed EC P-256
(the common choice; --rsa for RSA-2048) made with the openssl CLI.

Usage: python3 bench/tls_handshake.py [--bin target/release/shardgate]
       [--rounds 5] [--secs 4] [--conns 8] [--rate 2000] [--rsa]
"""

import argparse
import multiprocessing as mp
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

REQ = b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n"


def read_response(sock, buf):
    """Reads one Content-Length response off `sock`; returns what follows."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].lower()
            i = head.find(b"content-length:")
            n = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
            total = end + 4 + n
            if len(buf) >= total:
                return buf[total:]
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("gateway closed a steady connection")
        buf += chunk


def percentile(sorted_xs, p):
    return sorted_xs[min(len(sorted_xs) - 1, int(p / 100 * len(sorted_xs)))]


def steady(port, ca, cpu, conns, rate, warmup, secs, out):
    os.sched_setaffinity(0, {cpu})
    ctx = ssl.create_default_context(cafile=ca)
    socks = []
    for _ in range(conns):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    bufs = [b""] * conns
    interval = 1.0 / rate
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + secs
    lat, i = [], 0
    while True:
        sched = start + i * interval
        if sched >= end:
            break
        now = time.perf_counter()
        if sched > now:
            time.sleep(sched - now)
        k = i % conns
        t = time.perf_counter()
        socks[k].sendall(REQ)
        bufs[k] = read_response(socks[k], bufs[k])
        if t >= measure_from:
            lat.append(time.perf_counter() - t)
        i += 1
    achieved = len(lat) / secs
    lat.sort()
    out.put((percentile(lat, 50) * 1e6, percentile(lat, 99) * 1e6, achieved))


def storm(port, ca, cpu, secs, out):
    os.sched_setaffinity(0, {cpu})
    os.nice(19)
    # A new context per process, no session passed: every handshake is full.
    ctx = ssl.create_default_context(cafile=ca)
    end = time.perf_counter() + secs
    n = 0
    while time.perf_counter() < end:
        raw = socket.create_connection(("127.0.0.1", port))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.close()
        n += 1
    out.put(n / secs)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_cert(d, rsa):
    key, crt = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    alg = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    subprocess.run(
        ["openssl", "req", "-x509", *alg, "-nodes", "-keyout", key, "-out", crt, "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return crt, key


def start_gateway(binary, d, crt, key, cpu):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = os.path.join(d, "g.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\npin_cores = false\n[server.tls]\ncert_file = "{crt}"\nkey_file = "{key}"\n')
    log = open(os.path.join(d, "gw.log"), "w")
    p = subprocess.Popen(
        ["taskset", "-c", str(cpu), binary, "--config", cfg, "--listen", f"127.0.0.1:{port}",
         "--shards", "1", "--admin-listen", "off"],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    ctx = ssl.create_default_context(cafile=crt)
    deadline = time.time() + 15
    while True:
        try:
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
            s.sendall(REQ)
            read_response(s, b"")
            s.close()
            return p, port
        except OSError:
            if time.time() > deadline or p.poll() is not None:
                sys.exit(f"gateway did not start: {open(log.name).read()}")
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/shardgate")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=float, default=4.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--sut-cpu", type=int, default=0)
    ap.add_argument("--gen-cpu", type=int, default=1)
    ap.add_argument("--rsa", action="store_true")
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        crt, key = make_cert(d, a.rsa)
        gw, port = start_gateway(a.bin, d, crt, key, a.sut_cpu)
        other_dir = os.path.join(d, "other")
        os.mkdir(other_dir)
        other, other_port = start_gateway(a.bin, other_dir, crt, key, a.sut_cpu)
        conds = ["quiet", "storm", "storm-other"]
        try:
            results = {c: [] for c in conds}
            for r in range(a.rounds):
                for cond in conds[r % 3 :] + conds[: r % 3]:
                    q = mp.Queue()
                    procs = [mp.Process(target=steady, args=(port, crt, a.gen_cpu, a.conns, a.rate, a.warmup, a.secs, q))]
                    if cond != "quiet":
                        target = port if cond == "storm" else other_port
                        procs.append(mp.Process(target=storm, args=(target, crt, a.gen_cpu, a.warmup + a.secs, q)))
                    cpu0 = cpu_seconds(gw.pid)
                    for p in procs:
                        p.start()
                    got = [q.get() for _ in procs]
                    for p in procs:
                        p.join()
                    cpu = (cpu_seconds(gw.pid) - cpu0) / (a.warmup + a.secs)
                    p50, p99, achieved = next(g for g in got if isinstance(g, tuple))
                    hs = next((g for g in got if not isinstance(g, tuple)), 0.0)
                    results[cond].append((p50, p99, achieved, hs, cpu))
                    print(f"round {r} {cond:11}: p50 {p50:7.1f} us  p99 {p99:7.1f} us  "
                          f"{achieved:6.0f} req/s  {hs:6.0f} handshakes/s  gateway CPU {cpu * 100:4.0f}%",
                          flush=True)
        finally:
            for g in (gw, other):
                g.terminate()
                g.wait()

    med = lambda cond, i: statistics.median(x[i] for x in results[cond])  # noqa: E731
    q50, q99 = med("quiet", 0), med("quiet", 1)
    print(f"\nmedians of {a.rounds} alternated rounds ({a.conns} steady TLS connections, {a.rate:.0f} req/s, "
          f"{'RSA-2048' if a.rsa else 'EC P-256'}):")
    print(f"  quiet:       p50 {q50:.1f} us  p99 {q99:.1f} us  (gateway CPU {med('quiet', 4) * 100:.0f}%)")
    for c in ("storm", "storm-other"):
        p50, p99 = med(c, 0), med(c, 1)
        print(f"  {c:11}: p50 {p50:.1f} us  p99 {p99:.1f} us  ({med(c, 3):.0f} handshakes/s, "
              f"measured gateway CPU {med(c, 4) * 100:.0f}%)  vs quiet: p50 {p50 / q50:.2f}x  p99 {p99 / q99:.2f}x")


if __name__ == "__main__":
    main()
