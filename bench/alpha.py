#!/usr/bin/env python3
"""What a video's transparency costs a thumbnail, cold.

Two WebM videos of the same 10 s of 1280x720 VP9 (testsrc2 under a moving,
soft-edged transparent mask, 1 s GOPs, the same encoder settings): one
with alpha (yuva420p, decoded by libvpx, the alpha kept in the thumbnail),
one without (yuv420p, FFmpeg's own VP9 decoder, as every opaque video).
Each round starts a fresh thumbd over the same nginx URL for each video in
turn (alternating which goes first) and asks it for FRAMES different frames
in each FORMAT: every request a cold render (fetch, decode, scale, encode;
no frame reused, since each format asks for other times). Reports the
medians (and the fastest) over ROUNDS rounds of the whole request and of
Server-Timing's `decode` and `encode` stages (`encode` holds the alpha
plane's cut, scale and the encode with it), and the median answer size.
Then the CPU time (user + system) of `thumbd render` of the same frames,
one process each, which other load on the machine moves far less than
wall time.

Build the release binary first (`cargo build --release`); needs nginx and
the ffmpeg CLI with libvpx (`make bench-alpha` installs both).
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storyboard  # noqa: E402  (its nginx, ports and waiting)

VIDEOS = {"alpha": "alpha_720p.webm", "opaque": "opaque_720p.webm"}
THUMBD = storyboard.THUMBD
FRAMES = 8
ROUNDS = 3

# testsrc2 under a disc of opacity that drifts across the picture, with a
# soft edge (partial transparency) 40 px wide.
SOURCE = ("testsrc2=s=1280x720:r=25:d=10,format=rgba,"
          "geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':"
          "a='clip((300-hypot(X-(200+80*T),Y-360))*255/40,0,255)'")


def make_videos():
    os.makedirs(storyboard.VIDEOS, exist_ok=True)
    for kind, name in VIDEOS.items():
        out = os.path.join(storyboard.VIDEOS, name)
        if os.path.exists(out):
            continue
        pix = "yuva420p" if kind == "alpha" else "yuv420p"
        storyboard.ff("-f", "lavfi", "-i", SOURCE, "-c:v", "libvpx-vp9", "-pix_fmt", pix,
                      "-crf", "32", "-b:v", "0", "-g", "25", "-deadline", "good",
                      "-cpu-used", "4", "-row-mt", "1", out + ".part.webm")
        os.rename(out + ".part.webm", out)


def stage(timing, name):
    m = re.search(rf"{name};dur=([0-9.]+)", timing or "")
    return float(m.group(1)) if m else None


def run(work, nginx_port, n, video, formats):
    """One fresh thumbd, FRAMES cold renders per format; rows of
    (format, wall ms, decode ms, encode ms, bytes)."""
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
        for k, ext in enumerate(formats):
            for i in range(FRAMES):
                # Different times for each format: every render decodes.
                t = 0.3 + i * 1.15 + k * 0.08
                url = (f"http://127.0.0.1:{port}/v1/thumbnail/bench/nginx/{video}.{ext}"
                       f"?width=640&timeStamp={t:.2f}")
                start = time.perf_counter()
                with urllib.request.urlopen(url, timeout=120) as r:
                    body = r.read()
                    assert r.status == 200
                    assert r.headers["X-Thumbnail-Cache"] == "miss"
                    timing = r.headers["Server-Timing"]
                rows.append((ext, (time.perf_counter() - start) * 1000, stage(timing, "decode"),
                             stage(timing, "encode"), len(body)))
    finally:
        proc.terminate()
        proc.wait()
    return rows


def cpu_per_render(video, ext):
    """Median CPU time (user + system) of `thumbd render` of FRAMES frames
    of `video` as `ext` (each a process of its own: start-up included, the
    same for both videos), in ms: unlike wall time, other load on the
    machine barely moves it."""
    times = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(FRAMES):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([THUMBD, "render", os.path.join(storyboard.VIDEOS, video),
                            "--time", f"{0.3 + i * 1.15:.2f}", "--width", "640",
                            "-o", os.path.join(out, f"t.{ext}")],
                           check=True, stdout=subprocess.DEVNULL)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                         * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--formats", default="webp,png,avif,jpg")
    args = ap.parse_args()
    formats = args.formats.split(",")
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first (cargo build --release)")
    make_videos()
    storyboard.VIDEO = VIDEOS["alpha"]  # what the nginx helper waits for
    work = tempfile.mkdtemp(prefix="thumbd-alpha-")
    nginx = storyboard.Nginx(work)
    try:
        results = {kind: [] for kind in VIDEOS}
        n = 0
        for r in range(ROUNDS):
            order = list(VIDEOS) if r % 2 == 0 else list(reversed(VIDEOS))
            for kind in order:
                results[kind] += run(work, nginx.port, n, VIDEOS[kind], formats)
                n += 1
        print(f"videos: 1280x720 VP9 WebM, 10 s, 1 s GOPs, with and without alpha; 640 wide; "
              f"{FRAMES} frames x {ROUNDS} rounds per format, each a cold render")
        print("Medians, and in brackets the fastest of the renders (the least disturbed by "
              "other load on the machine).")
        print("| format | video | request | decode stage | encode stage | bytes |")
        print("|---|---|---|---|---|---|")

        def cell(xs, digits):
            xs = [x for x in xs if x is not None]
            return f"{statistics.median(xs):.{digits}f} ms ({min(xs):.{digits}f})"

        for ext in formats:
            for kind in VIDEOS:
                rows = [row for row in results[kind] if row[0] == ext]
                print(f"| {ext} | {kind} | {cell((r[1] for r in rows), 1)} "
                      f"| {cell((r[2] for r in rows), 1)} | {cell((r[3] for r in rows), 2)} "
                      f"| {int(statistics.median(r[4] for r in rows))} |")
        print()
        print(f"CPU time of `thumbd render` (one process a frame, start-up included), median of "
              f"{FRAMES} frames:")
        print("| format | alpha | opaque | alpha - opaque |")
        print("|---|---|---|---|")
        for ext in formats:
            a, o = (cpu_per_render(VIDEOS[k], ext) for k in ("alpha", "opaque"))
            print(f"| {ext} | {a:.1f} ms | {o:.1f} ms | {a - o:+.1f} ms |")
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
