#!/usr/bin/env python3
"""Cache hits only (bench row 3), side by side in one run.

Every server answers the same WebP bytes: thumbd from its cache, nginx as a
static file. Measured in rounds; each round runs wrk (32 connections) once
against every side, in turn, so a neighbour's burst hits all sides alike:

  - thumbd, with its access log (the default; lines go to a file),
  - thumbd, access log filtered out (THUMBD_LOG=thumbd=info,thumbd::access=off),
  - with --baseline BIN, another thumbd binary (an earlier build, e.g. the
    one before /metrics), serving the same thumbnail,
  - nginx with an access log, and nginx with `access_log off`.

Prints, per side, the medians of requests/s, p99 and the server's CPU per
request (its own processes, user + system), and ratios against nginx and
against the baseline.

Usage: bench/hits.py [--rounds 5] [--secs 5] [--baseline BIN]
(needs target/release/thumbd, nginx, wrk: `make bench-hits ARGS="..."`)

A baseline binary of an earlier commit, built beside this checkout's own:
  git worktree add /tmp/base REV
  t=$PWD/target; (cd /tmp/base && CARGO_TARGET_DIR=$t cargo build --release)
  cp target/release/thumbd target/thumbd-REV && cargo build --release
"""

import argparse
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import THUMBD, WORK, cpu_secs, free_port, median, wait_http, wrk  # noqa: E402

QUERY = "width=320&timeStamp=4.5"


def start_nginx(root, log):
    name = "log" if log else "nolog"
    prefix = os.path.join(WORK, f"nginx-hits-{name}")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    access = f"access_log {prefix}/logs/access.log combined;" if log else "access_log off;"
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 2;
error_log {prefix}/logs/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  {access}
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  types {{ image/webp webp; }}
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    proc = subprocess.Popen(["nginx", "-p", prefix, "-c", conf, "-g", "daemon off;"])
    wait_http(f"http://127.0.0.1:{port}/thumb.webp")

    def pids():
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
        return [proc.pid] + [int(p) for p in out.split()]

    return proc, f"http://127.0.0.1:{port}/thumb.webp", pids


def start_thumbd(binary, name, log_filter):
    """The embedded default config (demo/local: the samples); the thumbnail
    fetched once so every later request is a hit."""
    port = free_port()
    env = dict(os.environ, THUMBD_LOG=log_filter)
    log = open(os.path.join(WORK, f"thumbd-hits-{name}.log"), "w")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stderr=log)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/v1/thumbnail/demo/local/demo.mp4.webp?{QUERY}"
    body = urllib.request.urlopen(url).read()
    return proc, url, (lambda: [proc.pid]), body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--baseline", help="another thumbd binary to measure beside this one")
    args = ap.parse_args()
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first: cargo build --release")
    root = os.path.join(WORK, "hits")
    os.makedirs(root, exist_ok=True)
    sides = {}
    procs = []
    try:
        thumbds = [("thumbd", THUMBD, "thumbd=info"),
                   ("thumbd, access log off", THUMBD, "thumbd=info,thumbd::access=off")]
        if args.baseline:
            thumbds.append(("baseline thumbd", args.baseline, "thumbd=info"))
        body = None
        for name, binary, log_filter in thumbds:
            proc, url, pids, got = start_thumbd(binary, name.split(",")[0].replace(" ", "-") + str(len(procs)),
                                                log_filter)
            procs.append(proc)
            if body is not None and got != body:
                sys.exit(f"{name} answered other bytes than the first thumbd")
            body = got
            sides[name] = (url, pids)
        with open(os.path.join(root, "thumb.webp"), "wb") as f:
            f.write(body)
        for name, log in (("nginx, access log", True), ("nginx, access log off", False)):
            proc, url, pids = start_nginx(root, log)
            procs.append(proc)
            sides[name] = (url, pids)

        runs = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, (url, pids) in sides.items():
                cpu0 = cpu_secs(pids())
                rps, p99 = wrk(url, args.secs)
                runs[name].append((rps, p99, (cpu_secs(pids()) - cpu0) / (rps * args.secs) * 1e6))
        med = {n: [median(x[i] for x in r) for i in range(3)] for n, r in runs.items()}

        print(f"\n{args.rounds} rounds of {args.secs} s per side; medians.\n")
        print("| side | requests/s | p99 ms | CPU us/request |")
        print("|---|---:|---:|---:|")
        for name, (rps, p99, cpu) in med.items():
            print(f"| {name} | {rps:.0f} | {p99:.2f} | {cpu:.1f} |")
        print()
        pairs = [("thumbd", "nginx, access log"), ("thumbd, access log off", "nginx, access log off")]
        if args.baseline:
            pairs += [("thumbd, access log off", "baseline thumbd"), ("thumbd", "baseline thumbd")]
        print("| ratio | requests/s | p99 | CPU per request |")
        print("|---|---:|---:|---:|")
        for a, b in pairs:
            (ar, ap_, ac), (br, bp, bc) = med[a], med[b]
            print(f"| {a} / {b} | {ar / br:.2f} | {ap_ / bp:.2f} | {ac / bc:.2f} |")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
