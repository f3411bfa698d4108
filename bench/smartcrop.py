#!/usr/bin/env python3
"""What `fit=smart` costs against `fit=crop`, cold.

The video: 20 s of 1080p H.264 (testsrc2, 1 s GOPs). Each round starts a
fresh thumbd over the same nginx URL for each fit in turn (alternating
which goes first) and asks it for FRAMES different frames at one size
(a square 320x320 WebP by default, so the window has room to move): every
request a cold render (fetch, decode, scale, encode; no frame reused).
Reports the medians over ROUNDS rounds of the whole request and of
Server-Timing's `encode` stage, which holds everything after the decode
(the smart crop's window, the scaling, the encode): the difference is what
choosing the window costs.

Build the release binary first (`cargo build --release`); needs nginx and
the ffmpeg CLI (`make bench-bestframe` installs both).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storyboard  # noqa: E402  (its nginx, ports and waiting)

VIDEO = "smartcrop_1080p.mp4"
THUMBD = storyboard.THUMBD
FRAMES = 15
ROUNDS = 3


def make_video():
    os.makedirs(storyboard.VIDEOS, exist_ok=True)
    out = os.path.join(storyboard.VIDEOS, VIDEO)
    if os.path.exists(out):
        return out
    storyboard.ff("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25:d=20",
                  "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-g", "25",
                  "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                  out + ".part.mp4")
    os.rename(out + ".part.mp4", out)
    return out


def stage(timing, name):
    m = re.search(rf"{name};dur=([0-9.]+)", timing or "")
    return float(m.group(1)) if m else None


def run(work, nginx_port, n, fit, size, ext):
    """One fresh thumbd, FRAMES cold renders; (wall ms, encode-stage ms) each."""
    port = storyboard.free_port()
    cfg = os.path.join(work, f"thumbd{n}.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
demo_page = false
[jobs]
db_path = "{work}/jobs{n}.db"
[orgs.bench.envs.nginx]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
""")
    proc = subprocess.Popen([THUMBD, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    rows = []
    try:
        storyboard.wait_http(f"http://127.0.0.1:{port}/healthz")
        w, h = size
        for i in range(FRAMES):
            t = 0.5 + i * 1.25
            url = (f"http://127.0.0.1:{port}/v1/thumbnail/bench/nginx/{VIDEO}.{ext}"
                   f"?width={w}&height={h}&fit={fit}&timeStamp={t}")
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=120) as r:
                r.read()
                assert r.status == 200
                assert r.headers["X-Thumbnail-Cache"] == "miss"
                timing = r.headers["Server-Timing"]
            rows.append(((time.perf_counter() - start) * 1000, stage(timing, "encode")))
    finally:
        proc.terminate()
        proc.wait()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="320x320", help="WxH of the thumbnails")
    ap.add_argument("--format", default="webp")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first (cargo build --release)")
    make_video()
    storyboard.VIDEO = VIDEO  # what the nginx helper waits for
    work = tempfile.mkdtemp(prefix="thumbd-smartcrop-")
    nginx = storyboard.Nginx(work)
    try:
        results = {"crop": [], "smart": []}
        n = 0
        for r in range(ROUNDS):
            order = ["crop", "smart"] if r % 2 == 0 else ["smart", "crop"]
            for fit in order:
                results[fit] += run(work, nginx.port, n, fit, size, args.format)
                n += 1
        print(f"video: {VIDEO} (1920x1080 H.264, 1 s GOPs), {args.size} {args.format}, "
              f"{FRAMES} frames x {ROUNDS} rounds, each a cold render")
        print("| fit | request (median) | encode stage: window + scale + encode (median) |")
        print("|---|---|---|")
        med = {}
        for fit in ["crop", "smart"]:
            wall = statistics.median(x for x, _ in results[fit])
            enc = statistics.median(e for _, e in results[fit] if e is not None)
            med[fit] = (wall, enc)
            print(f"| `fit={fit}` | {wall:.1f} ms | {enc:.2f} ms |")
        print(f"smart - crop: {med['smart'][0] - med['crop'][0]:+.1f} ms a request, "
              f"{med['smart'][1] - med['crop'][1]:+.2f} ms in the encode stage")
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
