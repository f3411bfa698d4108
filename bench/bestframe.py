#!/usr/bin/env python3
"""What `timeStamp=auto` costs on a video with sparse keyframes, cold.

The video: 60 s of 1080p H.264 whose only keyframes are at 0 and 29 s,
both black (a film's black opening; the picture fades in from 32 s). The
keyframes the best-frame search looks at are all black, so it also scans
the frames from the latest of them on (`pictures.best_frame_scan_frames`,
300 by default). Side by side in one run, each a fresh thumbd process over
the same nginx URL: that search, the keyframes-only search
(`best_frame_scan_frames = 0`, which answers a black frame here), and a
plain render of the middle frame (30 s, mid-GOP, still black: the cost of an ordinary
thumbnail of this video), and of a frame of the picture (40 s: every frame
from the keyframe at 29 s decoded). Reports the median time of RUNS runs
and what nginx sent.

`make bench-bestframe` installs nginx and the ffmpeg CLI, builds, runs this.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storyboard  # noqa: E402  (its nginx, ports and waiting)

ROOT = storyboard.ROOT
VIDEO = "sparse_black_opening_1080p.mp4"
THUMBD = storyboard.THUMBD
RUNS = 3


def make_video():
    os.makedirs(storyboard.VIDEOS, exist_ok=True)
    out = os.path.join(storyboard.VIDEOS, VIDEO)
    if os.path.exists(out):
        return out
    storyboard.ff("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25:d=60,fade=t=in:st=32:d=2",
                  "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-g", "10000",
                  "-sc_threshold", "0", "-force_key_frames", "0,29", "-pix_fmt", "yuv420p",
                  "-movflags", "+faststart", out + ".part.mp4")
    os.rename(out + ".part.mp4", out)
    return out


def thumbd_get(work, nginx_port, n, query, scan_frames):
    port = storyboard.free_port()
    cfg = os.path.join(work, f"thumbd{n}.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
demo_page = false
[jobs]
db_path = "{work}/jobs{n}.db"
[pictures]
best_frame_scan_frames = {scan_frames}
[orgs.bench.envs.nginx]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
""")
    proc = subprocess.Popen([THUMBD, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        storyboard.wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/v1/thumbnail/bench/nginx/{VIDEO}.webp?width=320&{query}"
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as r:
            r.read()
            assert r.status == 200
            shown = r.headers["X-Thumbnail-Time"]
        return time.perf_counter() - start, shown
    finally:
        proc.terminate()
        proc.wait()


def main():
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first (make bench-bestframe does)")
    make_video()
    storyboard.VIDEO = VIDEO  # what the nginx helper waits for
    work = tempfile.mkdtemp(prefix="thumbd-bestframe-")
    nginx = storyboard.Nginx(work)
    try:
        rows = []
        for name, query, scan in [
            ("auto, keyframes then scan (default)", "timeStamp=auto", 300),
            ("auto, keyframes only (best_frame_scan_frames = 0)", "timeStamp=auto", 0),
            ("plain render at 30 s (mid-GOP, black)", "timeStamp=30", 300),
            ("plain render at 40 s (mid-GOP, the picture)", "timeStamp=40", 300),
        ]:
            times = []
            for n in range(RUNS):
                since = nginx.offset()
                secs, shown = thumbd_get(work, nginx.port, n, query, scan)
                times.append(secs)
                traffic = nginx.traffic(since)
            rows.append((name, statistics.median(times), traffic, shown))
        print(f"video: {VIDEO}, {os.path.getsize(os.path.join(storyboard.VIDEOS, VIDEO)) / 1e6:.0f} MB,"
              " keyframes at 0 and 29 s (both black), picture from 32 s")
        print("| | cold time (median of 3) | requests | bytes fetched | frame chosen |")
        print("|---|---|---|---|---|")
        for name, secs, (reqs, fetched), shown in rows:
            print(f"| {name} | {secs * 1000:.0f} ms | {reqs} | {fetched / 1e6:.2f} MB | {shown} s |")
        print(f"scan / keyframes only: {rows[0][1] / rows[1][1]:.2f}x the time, "
              f"{rows[0][2][1] / max(rows[1][2][1], 1):.2f}x the bytes")
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
