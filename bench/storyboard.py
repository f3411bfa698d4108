#!/usr/bin/env python3
"""Storyboard of a 10-minute 1080p H.264 MP4 with 2 s GOPs: thumbd against
the ffmpeg CLI doing the same job over the same URL, cold, side by side.

nginx (from the distribution) serves the generated video with Range
support and logs the bytes it sends; each thumbd run is a fresh process
(no cached bytes). The ffmpeg CLI reads the URL with
`-skip_frame nokey`, selects one frame per tile interval, scales and tiles
10x10: what a script around the CLI does. Reports the median of RUNS runs,
the bytes each fetched, and the bytes of the keyframe packets the tiles use
plus the index (what a storyboard needs at least).

`make bench-storyboard` installs nginx and the ffmpeg CLI, builds, runs this.

`make bench-storyboard ARGS=--scenes` instead measures what the kinds of
storyboard cost thumbd on the same video, each cold in a fresh process:
the default (100 tiles on one sprite), `tiles=scenes` (every keyframe
decoded small and compared, then a tile per scene) and `interval=2` (a
tile per keyframe, 301 over four sheets); for each, the description
(`.vtt`, which makes the first sheet) and then every sheet it names, with
the requests and bytes fetched.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEOS = os.path.join(ROOT, "target", "bench-videos")
VIDEO = "story_10min_1080p.mp4"
THUMBD = os.path.join(ROOT, "target", "release", "thumbd")
RUNS = 3


def ff(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_video():
    os.makedirs(VIDEOS, exist_ok=True)
    out = os.path.join(VIDEOS, VIDEO)
    if os.path.exists(out):
        return out
    seg = os.path.join(VIDEOS, ".seg_story.mp4")
    ff("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25:d=20", "-f", "lavfi", "-i", "sine=f=440:d=20",
       "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-g", "50", "-keyint_min", "50",
       "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", seg)
    ff("-stream_loop", "29", "-i", seg, "-c", "copy", "-movflags", "+faststart", out)
    os.remove(seg)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url):
    for _ in range(200):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=2)
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class Nginx:
    def __init__(self, work):
        self.port = free_port()
        self.prefix = os.path.join(work, "nginx")
        os.makedirs(os.path.join(self.prefix, "logs"))
        self.log = os.path.join(self.prefix, "logs", "access.log")
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
error_log {self.prefix}/logs/error.log;
pid {self.prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  log_format bench '$request_uri $status $bytes_sent';
  access_log {self.log} bench;
  server {{ listen 127.0.0.1:{self.port}; root {VIDEOS}; }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", self.prefix, "-c", conf, "-g", "daemon off;"])
        wait_http(f"http://127.0.0.1:{self.port}/{VIDEO}")

    def offset(self):
        time.sleep(0.1)
        return os.path.getsize(self.log)

    def traffic(self, since):
        time.sleep(0.1)
        with open(self.log) as f:
            f.seek(since)
            lines = [l.split() for l in f if l.strip()]
        return len(lines), sum(int(l[-1]) for l in lines)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def needed_bytes(path, interval_s, tiles):
    """Bytes of the keyframe packets the tiles show, plus everything before
    the first video packet (the header and index, faststart)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                          "packet=pts_time,pos,size,flags", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True).stdout
    keys, first = [], None
    for line in out.splitlines():
        t, size, pos, flags = line.split(",")[:4]
        first = int(pos) if first is None else min(first, int(pos))
        if flags.startswith("K"):
            keys.append((float(t), int(size)))
    used = set()
    for i in range(tiles):
        t = i * interval_s
        used.add(max(k for k in keys if k[0] <= t + 1e-6))
    return first + sum(size for _, size in used), len(used)


def start_thumbd(work, nginx_port, n):
    """A fresh thumbd over nginx; returns (process, base URL)."""
    port = free_port()
    cfg = os.path.join(work, f"thumbd{n}.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
public_base_url = "http://127.0.0.1:{port}"
demo_page = false
[jobs]
db_path = "{work}/jobs{n}.db"
[orgs.bench.envs.nginx]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
""")
    proc = subprocess.Popen([THUMBD, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
    except Exception:
        proc.terminate()
        raise
    return proc, base


def thumbd_run(work, nginx_port, n):
    proc, base = start_thumbd(work, nginx_port, n)
    try:
        url = f"{base}/v1/storyboard/bench/nginx/{VIDEO}.jpg"
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            body = r.read()
            assert r.status == 200
        return time.perf_counter() - start, len(body)
    finally:
        proc.terminate()
        proc.wait()


def cli_run(work, nginx_port, interval_s):
    out = os.path.join(work, "cli.jpg")
    url = f"http://127.0.0.1:{nginx_port}/{VIDEO}"
    vf = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{interval_s - 0.01})',scale=160:-2,tile=10x10"
    start = time.perf_counter()
    ff("-skip_frame", "nokey", "-i", url, "-vf", vf, "-frames:v", "1", "-q:v", "3", out)
    return time.perf_counter() - start, os.path.getsize(out)


def get(url):
    with urllib.request.urlopen(url, timeout=300) as r:
        assert r.status == 200, url
        return r.read()


def storyboard_run(work, nginx, n, query):
    """One cold storyboard: its VTT (which makes the first sheet), then every
    sheet it names in order. Returns (VTT seconds, total seconds, cues,
    sheets, (requests, bytes) the source served)."""
    proc, base = start_thumbd(work, nginx.port, n)
    try:
        since = nginx.offset()
        start = time.perf_counter()
        vtt = get(f"{base}/v1/storyboard/bench/nginx/{VIDEO}.vtt?{query}").decode()
        described = time.perf_counter() - start
        urls = []
        for line in vtt.splitlines():
            if "#xywh=" in line:
                url = line.split("#xywh=")[0]
                if url not in urls:
                    urls.append(url)
        for url in urls:
            get(url)
        total = time.perf_counter() - start
        return described, total, vtt.count(" --> "), len(urls), nginx.traffic(since)
    finally:
        proc.terminate()
        proc.wait()


def kinds(work, nginx, path):
    """The default storyboard, tiles=scenes and interval=2, side by side."""
    keyframes = sum(1 for l in subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=flags",
         "-of", "csv=p=0", path], check=True, capture_output=True, text=True).stdout.splitlines()
        if l.startswith("K"))
    size_mb = os.path.getsize(path) / 1e6
    print(f"video: {VIDEO}, {size_mb:.0f} MB, {keyframes} keyframes; cold, median of {RUNS}")
    print("| storyboard | tiles (sheets) | VTT (first sheet made) | VTT + every sheet | requests | bytes fetched |")
    print("|---|---|---|---|---|---|")
    boards = [("default", "width=160"), ("tiles=scenes", "width=160&tiles=scenes"),
              ("interval=2", "width=160&interval=2")]
    # Round-robin, so that whatever else the machine does falls on each alike.
    runs = {name: [] for name, _ in boards}
    for n in range(RUNS):
        for k, (name, query) in enumerate(boards):
            runs[name].append(storyboard_run(work, nginx, n * len(boards) + k, query))
    for name, _ in boards:
        runs_of = runs[name]
        described = statistics.median(r[0] for r in runs_of)
        total = statistics.median(r[1] for r in runs_of)
        _, _, cues, sheets, (reqs, fetched) = runs_of[-1]
        print(f"| {name} | {cues} ({sheets}) | {described * 1000:.0f} ms | {total * 1000:.0f} ms |"
              f" {reqs} | {fetched / 1e6:.2f} MB |")


def main():
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first (make bench-storyboard does)")
    path = make_video()
    if "--scenes" in sys.argv[1:]:
        work = tempfile.mkdtemp(prefix="thumbd-storyboard-")
        nginx = Nginx(work)
        try:
            kinds(work, nginx, path)
        finally:
            nginx.stop()
            shutil.rmtree(work, ignore_errors=True)
        return
    work = tempfile.mkdtemp(prefix="thumbd-storyboard-")
    nginx = Nginx(work)
    try:
        # thumbd's default for 600 s with 2 s GOPs: 100 tiles, one per 6 s.
        interval, tiles = 6.0, 100
        needed, keyframes = needed_bytes(path, interval, tiles)
        rows = {}
        for name, run in [("thumbd", lambda n: thumbd_run(work, nginx.port, n)),
                          ("ffmpeg CLI", lambda n: cli_run(work, nginx.port, interval))]:
            times, traffic = [], None
            for n in range(RUNS):
                since = nginx.offset()
                secs, size = run(n)
                times.append(secs)
                traffic = nginx.traffic(since)
            rows[name] = (statistics.median(times), traffic, size)
        size_mb = os.path.getsize(path) / 1e6
        print(f"video: {VIDEO}, {size_mb:.0f} MB; {tiles} tiles of {interval:.0f} s from {keyframes} keyframes;"
              f" keyframe packets + index = {needed / 1e6:.2f} MB")
        print("| | cold time (median of 3) | requests | bytes fetched | bytes / needed |")
        print("|---|---|---|---|---|")
        for name, (secs, (reqs, fetched), _) in rows.items():
            print(f"| {name} | {secs * 1000:.0f} ms | {reqs} | {fetched / 1e6:.2f} MB | {fetched / needed:.2f}x |")
        t, c = rows["thumbd"][0], rows["ffmpeg CLI"][0]
        print(f"thumbd / CLI time: {t / c:.3f}x")
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
