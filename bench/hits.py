#!/usr/bin/env python3
"""Cache hits only (bench row 3), with and without access logs, side by side.

thumbd writes one access-log line per request by default (target
`thumbd::access`); nginx writes one too unless told not to. This runs, in
alternating short pairs so a neighbour's burst hits both sides alike:

  - thumbd with its access log  vs  nginx with an access log, and
  - thumbd with the access log filtered out  vs  nginx with `access_log off`,

each serving the same WebP bytes (thumbd from its cache, nginx as a static
file), with wrk at 32 connections. Prints requests/s, p99 and each server's
CPU per request, and the ratios.

Usage: bench/hits.py [--pairs 5] [--secs 5]   (needs target/release/thumbd, nginx, wrk)
"""

import argparse
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import THUMBD, WORK, cpu_secs, free_port, median, wait_http, wrk  # noqa: E402

SAMPLE = os.path.join(os.path.dirname(THUMBD), "..", "..", "samples")


def start_nginx(root, log):
    prefix = os.path.join(WORK, f"nginx-hits-{'log' if log else 'nolog'}")
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
    return proc, port


def nginx_pids(proc):
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    return [proc.pid] + [int(p) for p in out.split()]


def start_thumbd(log):
    port = free_port()
    env = dict(os.environ)
    env["THUMBD_LOG"] = "thumbd=info" if log else "thumbd=info,thumbd::access=off"
    log_path = os.path.join(WORK, f"thumbd-hits-{'log' if log else 'nolog'}.log")
    # Like nginx's access log: lines go to a file.
    proc = subprocess.Popen([THUMBD, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stderr=open(log_path, "w"))
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--secs", type=int, default=5)
    args = ap.parse_args()
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first: cargo build --release")
    root = os.path.join(WORK, "hits")
    os.makedirs(root, exist_ok=True)
    procs = []
    try:
        results = {}
        for log in (True, False):
            t, tport = start_thumbd(log)
            procs.append(t)
            url = f"http://127.0.0.1:{tport}/v1/thumbnail/demo/local/demo.mp4.webp?width=320&timeStamp=4.5"
            body = urllib.request.urlopen(url).read()
            with open(os.path.join(root, "thumb.webp"), "wb") as f:
                f.write(body)
            n, nport = start_nginx(root, log)
            procs.append(n)
            sides = {"thumbd": (url, lambda: [t.pid]),
                     "nginx": (f"http://127.0.0.1:{nport}/thumb.webp", lambda: nginx_pids(n))}
            runs = {"thumbd": [], "nginx": []}
            for _ in range(args.pairs):
                for name, (u, pids) in sides.items():
                    cpu0 = cpu_secs(pids())
                    rps, p99 = wrk(u, args.secs)
                    runs[name].append((rps, p99, (cpu_secs(pids()) - cpu0) / (rps * args.secs) * 1e6))
            results[log] = {k: [median(x[i] for x in v) for i in range(3)] for k, v in runs.items()}
            t.terminate()
            n.terminate()
        for log, r in results.items():
            label = "access logs on" if log else "access logs off"
            (tr, tp, tc), (nr, np_, nc) = r["thumbd"], r["nginx"]
            print(f"| 3. cache hits, {label}: requests/s | {tr:.0f} | {nr:.0f} | req/s | {tr / nr:.2f} |")
            print(f"| 3. cache hits, {label}: p99 | {tp:.2f} | {np_:.2f} | ms | {tp / np_:.2f} |")
            print(f"| 3. cache hits, {label}: server CPU per request | {tc:.1f} | {nc:.1f} | us | {tc / nc:.2f} |")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
