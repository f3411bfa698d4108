#!/usr/bin/env python3
"""Cache hits only (bench row 3), side by side in one run.

Every server answers the same WebP bytes: thumbd from its cache, nginx as a
static file. Measured in rounds; each round runs wrk (32 connections) once
against every side, in turn, so a neighbour's burst hits all sides alike:

  - thumbd, with its access log (the default; text lines go to a file),
  - thumbd, with its access log as JSON (THUMBD_LOG_FORMAT=json, what
    deploy/thumbd.toml sets),
  - thumbd, access log filtered out (THUMBD_LOG=thumbd=info,thumbd::access=off),
  - with --baseline BIN, another thumbd binary (an earlier build, e.g. the
    one before /metrics), serving the same thumbnail, with its text and JSON
    access logs,
  - nginx with an access log, and nginx with `access_log off`.

Prints, per side, the medians of requests/s, p99 and the server's CPU per
request (its own processes, user + system; thumbd's logging thread
included), and ratios: against nginx, against the same thumbd without its
access log (what the line costs), against the baseline. Then, as a check
that no line was lost, the access lines each thumbd wrote against the
requests wrk counted (a few more lines than requests: wrk does not count
answers in flight when it stops).

Usage: bench/hits.py [--rounds 5] [--secs 5] [--baseline BIN] [--thumbd BIN]
(needs target/release/thumbd, nginx, wrk: `make bench-hits ARGS="..."`)

With --instructions, no wrk: instructions per hit of each thumbd side under
callgrind (valgrind), deterministic on a busy machine where requests/s are
not; the access line's cost is the difference from the side without it.

A baseline binary of an earlier commit, built beside this checkout's own:
  git worktree add /tmp/base REV
  t=$PWD/target; (cd /tmp/base && CARGO_TARGET_DIR=$t cargo build --release)
  cp target/release/thumbd target/thumbd-REV && cargo build --release
"""

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import THUMBD, WORK, cpu_secs, free_port, median, wait_http  # noqa: E402

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


def start_thumbd(binary, name, log_filter, log_format):
    """The embedded default config (demo/local: the samples); the thumbnail
    fetched once so every later request is a hit. Logs (stderr) go to a file,
    as under systemd or a container runtime's log driver. Returns the
    process, the URL, its pids, the thumbnail and the log file's path."""
    port = free_port()
    env = dict(os.environ, THUMBD_LOG=log_filter, THUMBD_LOG_FORMAT=log_format)
    path = os.path.join(WORK, f"thumbd-hits-{name}.log")
    log = open(path, "w")
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env, stderr=log)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/v1/thumbnail/demo/local/demo.mp4.webp?{QUERY}"
    body = urllib.request.urlopen(url).read()
    return proc, url, (lambda: [proc.pid]), body, path


def wrk(url, seconds):
    """bench.py's wrk run (2 threads, 32 connections), with the count of
    answers wrk received: requests/s, p99 ms, answers."""
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url], check=True,
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    answers = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, float(p99.group(1)) * scale, answers


def access_lines(path):
    """Access lines in a thumbd log file (text or JSON) for the hit URL."""
    with open(path, errors="replace") as f:
        return sum(1 for line in f if "thumbd::access" in line and QUERY in line)


def instructions_per_hit(binary, name, log_filter, log_format, few=200, many=1200):
    """Instructions per hit under callgrind: thumbd run twice, serving `few`
    then `many` hits on one keep-alive connection, start-up to exit, all
    threads (the logging thread's included); the difference divided by
    `many - few`. Deterministic where wall time on a shared machine is not."""
    totals = []
    for hits in (few, many):
        port = free_port()
        out = os.path.join(WORK, f"callgrind-{name}-{hits}.out")
        env = dict(os.environ, THUMBD_LOG=log_filter, THUMBD_LOG_FORMAT=log_format)
        log = open(os.path.join(WORK, f"callgrind-{name}-{hits}.log"), "w")
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                 binary, "serve", "--listen", f"127.0.0.1:{port}"],
                                env=env, stderr=log)
        try:
            path = f"/v1/thumbnail/demo/local/demo.mp4.webp?{QUERY}"
            deadline = time.time() + 300
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60).read()
                    break
                except Exception:
                    if time.time() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"thumbd under callgrind did not come up ({name})")
                    time.sleep(0.5)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for _ in range(hits):
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                assert r.status == 200
            conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        with open(out) as f:
            totals.append(next(int(line.split()[1]) for line in f
                               if line.startswith(("summary:", "totals:"))))
    return (totals[1] - totals[0]) / (many - few)


def instructions(args):
    """Prints instructions per hit for each thumbd side (--instructions)."""
    on, off = "thumbd=info", "thumbd=info,thumbd::access=off"
    sides = [("thumbd", args.thumbd, on, "text"), ("thumbd, JSON log", args.thumbd, on, "json"),
             ("thumbd, access log off", args.thumbd, off, "text")]
    if args.baseline:
        sides += [("baseline thumbd", args.baseline, on, "text"),
                  ("baseline thumbd, JSON log", args.baseline, on, "json"),
                  ("baseline thumbd, access log off", args.baseline, off, "text")]
    per_hit = {}
    for name, binary, log_filter, log_format in sides:
        per_hit[name] = instructions_per_hit(binary, name.replace(",", "").replace(" ", "-"),
                                             log_filter, log_format)
    print("\nInstructions per hit (callgrind; 1,200 hits less 200, one connection).\n")
    print("| side | instructions per hit | the access line's |")
    print("|---|---:|---:|")
    for name, n in per_hit.items():
        off_side = "baseline thumbd, access log off" if name.startswith("baseline") \
            else "thumbd, access log off"
        print(f"| {name} | {n:.0f} | {n - per_hit[off_side]:.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--baseline", help="another thumbd binary to measure beside this one")
    ap.add_argument("--thumbd", default=THUMBD, help="the thumbd binary (default: the release build)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per hit under callgrind instead of timing with wrk")
    args = ap.parse_args()
    if not os.path.exists(args.thumbd):
        sys.exit("build the release binary first: cargo build --release")
    if args.instructions:
        return instructions(args)
    root = os.path.join(WORK, "hits")
    os.makedirs(root, exist_ok=True)
    sides = {}
    procs = []
    logs = {}
    try:
        on, off = "thumbd=info", "thumbd=info,thumbd::access=off"
        thumbds = [("thumbd", args.thumbd, on, "text"),
                   ("thumbd, JSON log", args.thumbd, on, "json"),
                   ("thumbd, access log off", args.thumbd, off, "text")]
        if args.baseline:
            thumbds += [("baseline thumbd", args.baseline, on, "text"),
                        ("baseline thumbd, JSON log", args.baseline, on, "json")]
        body = None
        for name, binary, log_filter, log_format in thumbds:
            file_name = name.replace(",", "").replace(" ", "-")
            proc, url, pids, got, path = start_thumbd(binary, file_name, log_filter, log_format)
            procs.append(proc)
            if body is not None and got != body:
                sys.exit(f"{name} answered other bytes than the first thumbd")
            body = got
            sides[name] = (url, pids)
            if log_filter == on:
                logs[name] = path
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
                rps, p99, answers = wrk(url, args.secs)
                runs[name].append((rps, p99, (cpu_secs(pids()) - cpu0) / answers * 1e6, answers))
        med = {n: [median(x[i] for x in r) for i in range(3)] for n, r in runs.items()}
    finally:
        # SIGTERM: thumbd writes its queued lines before it exits.
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()

    print(f"\n{args.rounds} rounds of {args.secs} s per side; medians.\n")
    print("| side | requests/s | p99 ms | CPU us/request |")
    print("|---|---:|---:|---:|")
    for name, (rps, p99, cpu) in med.items():
        print(f"| {name} | {rps:.0f} | {p99:.2f} | {cpu:.1f} |")
    print()
    pairs = [("thumbd", "nginx, access log"),
             ("thumbd, JSON log", "nginx, access log"),
             ("thumbd, access log off", "nginx, access log off"),
             ("thumbd", "thumbd, access log off"),
             ("thumbd, JSON log", "thumbd, access log off"),
             ("nginx, access log", "nginx, access log off")]
    if args.baseline:
        pairs += [("baseline thumbd", "thumbd, access log off"),
                  ("baseline thumbd, JSON log", "thumbd, access log off"),
                  ("thumbd", "baseline thumbd"),
                  ("thumbd, JSON log", "baseline thumbd, JSON log")]
    print("| ratio | requests/s | p99 | CPU per request |")
    print("|---|---:|---:|---:|")
    for a, b in pairs:
        (ar, ap_, ac), (br, bp, bc) = med[a], med[b]
        print(f"| {a} / {b} | {ar / br:.2f} | {ap_ / bp:.2f} | {ac / bc:.2f} |")
    print()
    print("| side | access lines written | answers wrk counted | lines less answers |")
    print("|---|---:|---:|---:|")
    for name, path in logs.items():
        lines = access_lines(path) - 1  # the warm-up request
        counted = sum(r[3] for r in runs[name])
        print(f"| {name} | {lines} | {counted} | {lines - counted} |")
    print(f"\n(0 to {32 * args.rounds} lines more than answers: requests in flight when wrk stops.)")


if __name__ == "__main__":
    main()
