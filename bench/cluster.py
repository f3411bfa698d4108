#!/usr/bin/env python3
"""Object storage, the shared render cache and several nodes, side by side
in one run on this machine (loopback only, bounded requests):

A. Cold thumbnails of a 10-minute 1080p MP4 read from an S3-compatible
   server (s3s-fs, SigV4-signed range GETs) against the same file from nginx
   (HTTP range GETs): latency, and the source requests and bytes per render
   from thumbd's own counters.
B. The shared cache: a render (memory miss, shared-cache miss) against a
   shared-cache hit on a second node (bucket, and a local folder) against a
   memory hit.
C. Renders/s of three nodes behind nginx (`hash $uri consistent`) against
   one node behind the same nginx, on the same cores: the figure is the
   cluster's overhead, not a speedup.

`make bench-cluster` installs nginx, curl, the ffmpeg CLI and s3s-fs, builds
the release binary and runs this.
"""

import concurrent.futures
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

# The storyboard bench's video (10 minutes of 1080p H.264, 2 s GOPs), made
# by its script if missing.
from storyboard import VIDEO, VIDEOS, free_port, make_video  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THUMBD = os.path.join(ROOT, "target", "release", "thumbd")
S3S_FS = shutil.which("s3s-fs") or os.path.join(
    os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "bin", "s3s-fs")
AK, SK = "AKIABENCHCLUSTER0001", "bench-cluster-secret-key-0123456789abcdef"
# Distinct moments of the video for cold renders (not keyframes only).
TIMES = [17.3, 71.9, 133.1, 197.7, 251.3, 319.9, 377.1, 433.7, 491.3, 557.9]


def wait_http(url, tries=400):
    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def get(url):
    """(seconds, status, X-Thumbnail-Cache) of one GET on a new connection."""
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            r.read()
            return time.perf_counter() - start, r.status, r.headers.get("x-thumbnail-cache", "")
    except urllib.error.HTTPError as e:
        return time.perf_counter() - start, e.code, ""


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class Nginx:
    """nginx serving VIDEOS (Range), or proxying to thumbd nodes by hash."""

    def __init__(self, work, name, upstream=None):
        self.port = free_port()
        self.prefix = os.path.join(work, name)
        os.makedirs(os.path.join(self.prefix, "logs"))
        if upstream:
            servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n" for p in upstream)
            body = f"""
  upstream thumbd {{
    hash $uri consistent;
{servers}    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://thumbd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 120s;
    }}
  }}"""
        else:
            body = f"  server {{ listen 127.0.0.1:{self.port}; root {VIDEOS}; }}"
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
error_log {self.prefix}/logs/error.log;
pid {self.prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{body}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", self.prefix, "-c", conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class S3:
    """s3s-fs over a folder, checking signatures; the video PUT through the
    S3 API (so the server keeps its ETag instead of hashing per GET)."""

    def __init__(self, work, video):
        self.port = free_port()
        self.root = os.path.join(work, "s3")
        for bucket in ["videos", "thumbs"]:
            os.makedirs(os.path.join(self.root, bucket))
        self.proc = subprocess.Popen(
            [S3S_FS, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", AK, "--secret-key", SK,
             self.root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        subprocess.run(["curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{AK}:{SK}",
                        "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", video, f"http://127.0.0.1:{self.port}/videos/{VIDEO}"], check=True)

    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def s3_table(s3):
    return f'endpoint = "{s3.endpoint()}"\naccess_key_id = "{AK}"\nsecret_access_key = "{SK}"\n'


class Thumbd:
    def __init__(self, work, name, nginx, s3, shared=None, concurrency=0):
        self.port = free_port()
        shared_toml = ""
        if shared == "s3":
            shared_toml = f'[cache.shared]\nurl = "s3://thumbs/cache/"\n[cache.shared.s3]\n{s3_table(s3)}'
        elif shared == "file":
            shared_toml = f'[cache.shared]\nurl = "file:{work}/renders"\n'
        config = os.path.join(work, f"{name}.toml")
        with open(config, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{self.port}"
[render]
concurrency = {concurrency}
queue = 256
timeout_secs = 120
[jobs]
db_path = "{work}/{name}.db"
{shared_toml}
[orgs.bench.envs.http]
source = "http://127.0.0.1:{nginx.port}/{{key}}"
[orgs.bench.envs.s3]
source = "s3://videos/{{key}}"
[orgs.bench.envs.s3.s3]
{s3_table(s3)}
""")
        self.log = open(os.path.join(work, f"{name}.log"), "w")
        self.proc = subprocess.Popen([THUMBD, "serve", "--config", config], stdout=self.log, stderr=self.log,
                                     env={**os.environ, "THUMBD_LOG": "thumbd=warn"})
        wait_http(f"http://127.0.0.1:{self.port}/healthz")

    def url(self, env, key, t, width=320, fmt="webp"):
        return f"http://127.0.0.1:{self.port}/v1/thumbnail/bench/{env}/{key}.{fmt}?width={width}&timeStamp={t}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def ms(xs):
    return f"{statistics.median(xs) * 1000:.1f}"


def part_a(work, nginx, s3):
    rows = {}
    for env in ["http", "s3"]:
        node = Thumbd(work, f"a-{env}", nginx, s3)
        lat, req, byt = [], [], []
        for t in TIMES:
            r0 = metric(node.port, "thumbd_source_requests_total")
            b0 = metric(node.port, "thumbd_source_fetched_bytes_total")
            dt, status, _ = get(node.url(env, VIDEO, t))
            assert status == 200, (env, t, status)
            lat.append(dt)
            req.append(metric(node.port, "thumbd_source_requests_total") - r0)
            byt.append(metric(node.port, "thumbd_source_fetched_bytes_total") - b0)
        node.stop()
        rows[env] = (lat, req, byt)
    out = ["| source | cold render, median ms | source requests (all 10) | bytes fetched (all 10) |",
           "|---|---|---|---|"]
    for env, label in [("http", "nginx (HTTP range GETs)"), ("s3", "s3s-fs (SigV4 range GETs)")]:
        lat, req, byt = rows[env]
        out.append(f"| {label} | {ms(lat)} | {int(sum(req))} | {int(sum(byt)):,} |")
    lat_h, req_h, byt_h = rows["http"]
    lat_s, req_s, byt_s = rows["s3"]
    out.append(f"| **S3 / nginx** | **{statistics.median(lat_s) / statistics.median(lat_h):.2f}x** | "
               f"**{sum(req_s) / sum(req_h):.2f}x** | **{sum(byt_s) / sum(byt_h):.2f}x** |")
    return out


def part_b(work, nginx, s3):
    out = ["| tier | what a request costs | median ms (10 thumbnails) |", "|---|---|---|"]
    for shared in ["s3", "file"]:
        first = Thumbd(work, f"b-{shared}-1", nginx, s3, shared=shared)
        renders = []
        for t in TIMES:
            dt, status, cache = get(first.url("http", VIDEO, t))
            assert (status, cache) == (200, "miss"), (status, cache)
            renders.append(dt)
        # Writes happen after the answers: wait for them.
        for _ in range(400):
            if metric(first.port, 'thumbd_shared_cache_writes_total{outcome="written"}') >= len(TIMES):
                break
            time.sleep(0.05)
        hits = [get(first.url("http", VIDEO, t))[0] for t in TIMES]
        second = Thumbd(work, f"b-{shared}-2", nginx, s3, shared=shared)
        shared_hits = []
        for t in TIMES:
            dt, status, cache = get(second.url("http", VIDEO, t))
            assert (status, cache) == (200, "shared"), (status, cache)
            shared_hits.append(dt)
        assert metric(second.port, "thumbd_renders_total") == 0
        first.stop()
        second.stop()
        where = "bucket (s3s-fs)" if shared == "s3" else "local folder (file:)"
        if shared == "s3":
            out.append(f"| render (memory and shared cache miss) | fetch, decode, encode, then a background write | {ms(renders)} |")
        out.append(f"| shared-cache hit, {where} | version check of the source + one GET of the entry | {ms(shared_hits)} |")
        if shared == "s3":
            out.append(f"| memory hit | | {ms(hits)} |")
    return out


def part_c(work, nginx, s3, keys):
    asks = [(k, t) for k in keys for t in TIMES[:5]]
    out = ["| origin | nodes | renders | wall s | renders/s |", "|---|---|---|---|---|"]
    results = {}
    for n in [1, 3]:
        nodes = [Thumbd(work, f"c{n}-{i}", nginx, s3) for i in range(n)]
        proxy = Nginx(work, f"proxy{n}", upstream=[x.port for x in nodes])
        wait_http(f"http://127.0.0.1:{proxy.port}/healthz")
        urls = [f"http://127.0.0.1:{proxy.port}/v1/thumbnail/bench/http/{k}.webp?width=320&timeStamp={t}"
                for k, t in asks]
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = [s for _, s, _ in pool.map(get, urls)]
        wall = time.perf_counter() - start
        assert all(s == 200 for s in statuses), statuses
        renders = sum(metric(x.port, "thumbd_renders_total") for x in nodes)
        proxy.stop()
        for x in nodes:
            x.stop()
        results[n] = len(urls) / wall
        out.append(f"| nginx `hash $uri consistent` | {n} | {int(renders)} | {wall:.2f} | {len(urls) / wall:.1f} |")
    out.append(f"| **3 nodes / 1 node** | | | | **{results[3] / results[1]:.2f}x** |")
    return out


def main():
    for tool in ["nginx", "curl", "ffmpeg"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is missing: run `make bench-cluster`")
    if not os.path.exists(S3S_FS):
        sys.exit("s3s-fs is missing: run `make s3-server` (or `make bench-cluster`)")
    video = make_video()
    # Twelve keys naming the same video: twelve places on the hash ring.
    keys = []
    for i in range(12):
        name = f"copy{i:02}.mp4"
        link = os.path.join(VIDEOS, name)
        if not os.path.exists(link):
            os.symlink(VIDEO, link)
        keys.append(name)
    work = tempfile.mkdtemp(prefix="thumbd-bench-cluster-")
    nginx = Nginx(work, "source")
    s3 = None
    try:
        s3 = S3(work, video)
        cores = os.cpu_count()
        print(f"## Several nodes ({cores} cores, `make bench-cluster`)\n")
        print("A. Cold 320-px WebP thumbnails at 10 moments of a 10-minute 1080p H.264 MP4 (310 MB, 2 s GOPs), "
              "one fresh thumbd process per source, the moments in turn (so the index is fetched once per source):\n")
        print("\n".join(part_a(work, nginx, s3)))
        print("\nB. The shared cache: node 1 renders 10 thumbnails, node 2 (a fresh process) asks for the same "
              "ones; one GET each on a new loopback connection:\n")
        print("\n".join(part_b(work, nginx, s3)))
        print(f"\nC. {12 * 5} distinct thumbnails (12 keys x 5 moments), 8 clients at once, through nginx; every "
              f"node has render.concurrency = CPUs on the same {cores} cores, so three nodes have no more CPU "
              "than one: the ratio is the cluster's overhead, not a speedup:\n")
        print("\n".join(part_c(work, nginx, s3, keys)))
    finally:
        if s3:
            s3.stop()
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
