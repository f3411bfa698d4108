#!/usr/bin/env python3
"""What galleries, animated previews and `timeStamp=auto` cost, cold, side by
side with the ffmpeg CLI doing the same work over the same URLs.

Twenty generated 720p30 H.264 MP4s (x264 preset veryfast with its default
B-frames, 2 s GOPs, faststart, AAC audio, 30-40 s; the picture moves every
frame), cached in target/bench-videos, are served by nginx (from the
distribution) on a loopback port with Range support. Every thumbd run is a
fresh process (nothing cached) with its own job database.

1. Gallery pre-warm: 200 thumbnails (20 videos x 10 moments, 320 wide, WebP)
   submitted as ONE batch job call with the org's API key, timed from the
   call until every job is completed (each job's status read with
   `Prefer: wait`), against a shell script running the ffmpeg CLI two at a
   time (`xargs -P2`) over the same URLs and moments
   (`ffmpeg -ss T -i URL -frames:v 1 -vf scale=320:-2 -quality 80 out.webp`).
   The moments are multiples of 0.1 s (whole frames at 30 fps), so the frame
   a player shows at T (thumbd's) is the first at or after T (the CLI's
   accurate `-ss`). Then a picture check: one thumbnail per video, thumbd's
   against the CLI's gallery WebP as it is, and against the CLI's frame at T
   and at T -/+ one frame converted to RGB with the videos' BT.709 matrix;
   mean absolute difference after decoding both to 320x180 RGB.
2. Animated preview, 5 s at 15 fps, 320 wide, WebP and GIF: thumbd's
   /v1/animated URL against `ffmpeg -ss S -t 5 -i URL -vf fps=15,scale=320:-2`
   with libwebp_anim, and for GIF palettegen/paletteuse (one palette for the
   clip, as a careful script does). Cold: a fresh thumbd process each run.
3. `timeStamp=auto` against a plain render of the middle frame (no time
   given), each of the 20 videos once per fresh thumbd process.

Sides alternate within each round; medians of RUNS rounds. Times include
what a client or script pays: thumbd's HTTP answers on loopback, the CLI's
process starts.

`make bench-gallery` installs nginx and the ffmpeg CLI, builds, runs this.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storyboard  # noqa: E402  (its nginx, ports and waiting)

ROOT = storyboard.ROOT
VIDEOS = storyboard.VIDEOS
THUMBD = storyboard.THUMBD
N_VIDEOS, MOMENTS, WIDTH, FPS_IN = 20, 10, 320, 30
API_KEY = "bench-gallery-api-key-0123456789"
ORG, ENV = "bench", "nginx"
ANIM_VIDEO, ANIM_START, ANIM_SECS, ANIM_FPS = 0, 10.5, 5, 15
CLI_ONE = """#!/bin/sh
# One gallery thumbnail, as a script around the ffmpeg CLI makes it: T URL OUT
exec ffmpeg -nostdin -hide_banner -loglevel error -y -ss "$1" -i "$2" -frames:v 1 \\
  -vf scale=320:-2 -quality 80 "$3"
"""

# (source, what makes it differ per video); every one moves every frame.
SOURCES = [
    "testsrc2=s=1280x720:r=30,scroll=horizontal=0.002:vertical=0.001",
    "sierpinski=s=1280x720:r=30:jump=20:seed={i}",
    "cellauto=s=1280x720:r=30:rule={rule}:random_seed={i}:random_fill_ratio=0.5",
    "testsrc=s=1280x720:r=30,scroll=horizontal=0.003",
]
TINTS = [(0, 0), (30, -20), (-25, 25), (20, 30), (-30, -15)]


def video_name(i):
    return f"gallery_{i:02d}_720p_bt709.mp4"


def duration(i):
    return 30 + 5 * (i % 3)


def moments(i):
    """10 moments spread over the video, each a multiple of 0.1 s."""
    d = duration(i)
    return [round((k + 0.5) / MOMENTS * d * 10) / 10 for k in range(MOMENTS)]


def make_videos():
    os.makedirs(VIDEOS, exist_ok=True)
    start, made = time.perf_counter(), 0
    for i in range(N_VIDEOS):
        out = os.path.join(VIDEOS, video_name(i))
        if os.path.exists(out):
            continue
        src = SOURCES[i % len(SOURCES)].format(i=i, rule=[30, 110, 90, 150, 105][i // 4])
        du, dv = TINTS[i // 4]
        # BT.709, limited range, tagged: as HD video is made.
        vf = (f"scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
              f"lutyuv=u='clip(val+{du},16,240)':v='clip(val+{dv},16,240)'")
        part = out + ".part.mp4"
        storyboard.ff("-f", "lavfi", "-i", src, "-f", "lavfi", "-i", f"sine=f={220 + 40 * i}",
                      "-t", str(duration(i)), "-vf", vf,
                      "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60",
                      "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-colorspace", "bt709",
                      "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
                      "-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart", part)
        os.rename(part, out)
        made += 1
    if made:
        print(f"generated {made} videos in {time.perf_counter() - start:.0f} s", flush=True)


def cpu_of(pid):
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def http(url, data=None, headers=None, timeout=120):
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.headers, r.read()


class Thumbd:
    """A fresh thumbd process: nothing cached, its own job database."""

    def __init__(self, work, nginx_port, label, binary=None):
        self.port = storyboard.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = os.path.join(work, f"thumbd-{label}.toml")
        with open(cfg, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{self.port}"
public_base_url = "{self.base}"
demo_page = false
[jobs]
db_path = "{work}/jobs-{label}.db"
max_batch = 200
[orgs.{ORG}]
api_keys = ["{API_KEY}"]
default_env = "{ENV}"
[orgs.{ORG}.envs.{ENV}]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
""")
        self.log = open(os.path.join(work, f"thumbd-{label}.log"), "w")
        self.proc = subprocess.Popen([binary or THUMBD, "serve", "--config", cfg], stdout=self.log,
                                     stderr=self.log)
        try:
            storyboard.wait_http(f"{self.base}/healthz")
        except Exception:
            self.stop()
            raise
        self.cpu0 = cpu_of(self.proc.pid)

    def cpu(self):
        return cpu_of(self.proc.pid) - self.cpu0

    def metrics(self):
        """Sums of the counters and histograms a render's cost shows in."""
        _, _, body = http(f"{self.base}/metrics", timeout=10)
        out = {}
        for line in body.decode().splitlines():
            m = re.match(r'thumbd_(render_stage_duration_seconds_(?:sum|count))\{stage="(\w+)"\} (\S+)', line)
            if m:
                out[f"{m[1]}.{m[2]}"] = float(m[3])
                continue
            m = re.match(r"thumbd_(renders_total|render_frames_decoded_(?:sum|count)|source_requests_total"
                         r"|source_fetched_bytes_total)(?:\{[^}]*\})? (\S+)", line)
            if m:
                out[m[1]] = out.get(m[1], 0.0) + float(m[2])
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- 1. the gallery --------------------------------------------------------

def gallery_items():
    return [(i, t) for i in range(N_VIDEOS) for t in moments(i)]


def thumbd_gallery(work, nginx_port, n, keep=None):
    thumbd = Thumbd(work, nginx_port, f"gallery{n}")
    try:
        items = [{"key": video_name(i), "env": ENV, "width": WIDTH, "format": "webp",
                  "timestampMs": int(round(t * 1000))} for i, t in gallery_items()]
        headers = {"X-Api-Key": API_KEY, "Content-Type": "application/json"}
        start = time.perf_counter()
        status, _, body = http(f"{thumbd.base}/v1/api/{ORG}/thumbnails/batch",
                               json.dumps({"items": items}).encode(), headers)
        accepted = time.perf_counter() - start
        answers = json.loads(body)["body"]["items"]
        bad = [a for a in answers if "error" in a]
        if status != 200 or bad:
            raise RuntimeError(f"batch refused: {status} {bad[:2]}")
        jobs = [(a["jobId"], a["url"]) for a in answers]
        deadline = start + 600
        for job_id, _ in jobs:
            while True:
                _, _, body = http(f"{thumbd.base}/v1/api/{ORG}/thumbnails/{job_id}",
                                  headers={"X-Api-Key": API_KEY, "Prefer": "wait=30"}, timeout=60)
                doc = json.loads(body)["body"]
                if doc["status"] == "completed":
                    break
                if doc["status"] == "failed":
                    raise RuntimeError(f"job {job_id} failed: {doc.get('error')}")
                if time.perf_counter() > deadline:
                    raise RuntimeError("the gallery took over 600 s")
        secs = time.perf_counter() - start
        cpu, metrics = thumbd.cpu(), thumbd.metrics()
        if keep is not None:  # the job URLs are now cache hits: keep some pictures
            for idx, path in keep.items():
                _, _, img = http(jobs[idx][1])
                with open(path, "wb") as f:
                    f.write(img)
        return secs, cpu, accepted, metrics
    finally:
        thumbd.stop()


def cli_gallery(work, nginx_port, n):
    out_dir = os.path.join(work, f"cli{n}")
    os.makedirs(out_dir)
    one = os.path.join(work, "one.sh")
    with open(one, "w") as f:
        f.write(CLI_ONE)
    lst = os.path.join(work, f"list{n}.txt")
    with open(lst, "w") as f:
        for idx, (i, t) in enumerate(gallery_items()):
            f.write(f"{t:.1f} http://127.0.0.1:{nginx_port}/{video_name(i)} {out_dir}/{idx:03d}.webp\n")
    cpu0 = children_cpu()
    start = time.perf_counter()
    subprocess.run(["bash", "-c", f"xargs -P2 -n3 sh {one} < {lst}"], check=True, timeout=900)
    secs = time.perf_counter() - start
    made = len([p for p in os.listdir(out_dir) if os.path.getsize(os.path.join(out_dir, p)) > 0])
    if made != N_VIDEOS * MOMENTS:
        raise RuntimeError(f"the CLI made {made} thumbnails")
    return secs, children_cpu() - cpu0, out_dir


def rgb(path, vf="scale=320:180"):
    """A picture decoded to 320x180 RGB bytes."""
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-frames:v", "1",
                           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          check=True, capture_output=True, timeout=60).stdout


def mad(a, b):
    assert len(a) == len(b) == 320 * 180 * 3
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


def cli_frame(work, i, t, name):
    """The CLI's frame at t (the first at or after it, `-ss` before `-i`), to
    320x180 RGB through the video's own matrix (BT.709), lossless."""
    out = os.path.join(work, name)
    storyboard.ff("-ss", f"{t:.4f}", "-i", os.path.join(VIDEOS, video_name(i)), "-frames:v", "1",
                  "-vf", "scale=320:180:in_color_matrix=bt709:in_range=tv,format=rgb24", out)
    return rgb(out)


def picture_check(work, thumbd_pics, cli_dir):
    """thumbd's picture against the CLI's gallery WebP at T as it is, and
    against the CLI's frame at T, T - 1 frame and T + 1 frame converted to RGB
    with the video's matrix."""
    rows = []
    for idx, path in sorted(thumbd_pics.items()):
        i, t = gallery_items()[idx]
        mine = rgb(path)
        as_is = mad(mine, rgb(os.path.join(cli_dir, f"{idx:03d}.webp")))
        # Just below a frame's time for the neighbours: -ss takes the first at or after it.
        near = [mad(mine, cli_frame(work, i, t + d / FPS_IN - (0.001 if d else 0), f"ref{idx:03d}_{d}.png"))
                for d in (0, -1, 1)]
        rows.append((i, t, as_is, *near))
    return rows


# --- 2. animated previews ---------------------------------------------------

def webp_frames(body):
    """ANMF chunks in an animated WebP (1 for a still one)."""
    pos, frames = 12, 0
    while pos + 8 <= len(body):
        tag, size = body[pos:pos + 4], int.from_bytes(body[pos + 4:pos + 8], "little")
        frames += tag == b"ANMF"
        pos += 8 + size + (size & 1)
    return frames or 1


def gif_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return int(out.strip())


def thumbd_anim(work, nginx_port, n, ext, binary=None):
    thumbd = Thumbd(work, nginx_port, f"anim-{ext}{n}", binary)
    try:
        url = (f"{thumbd.base}/v1/animated/{ORG}/{ENV}/{video_name(ANIM_VIDEO)}.{ext}"
               f"?start={ANIM_START}&end={ANIM_START + ANIM_SECS}&fps={ANIM_FPS}&width={WIDTH}")
        start = time.perf_counter()
        status, headers, body = http(url)
        secs = time.perf_counter() - start
        cpu = thumbd.cpu()
        assert status == 200
        path = os.path.join(work, f"thumbd{n}.{ext}")
        with open(path, "wb") as f:
            f.write(body)
        frames = webp_frames(body) if ext == "webp" else gif_frames(path)
        return secs, len(body), frames, cpu
    finally:
        thumbd.stop()


def cli_anim(work, nginx_port, n, ext):
    url = f"http://127.0.0.1:{nginx_port}/{video_name(ANIM_VIDEO)}"
    out = os.path.join(work, f"cli{n}.{ext}")
    base = ["-ss", str(ANIM_START), "-t", str(ANIM_SECS), "-i", url]
    if ext == "webp":
        args = [*base, "-vf", f"fps={ANIM_FPS},scale={WIDTH}:-2", "-c:v", "libwebp_anim",
                "-quality", "80", "-loop", "0", "-an", out]
    else:
        args = [*base, "-filter_complex",
                f"fps={ANIM_FPS},scale={WIDTH}:-2:flags=lanczos,split[a][b];[a]palettegen[p];[b][p]paletteuse",
                "-loop", "0", "-an", out]
    cpu0 = children_cpu()
    start = time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, timeout=300)
    secs = time.perf_counter() - start
    cpu = children_cpu() - cpu0
    with open(out, "rb") as f:
        body = f.read()
    frames = webp_frames(body) if ext == "webp" else gif_frames(out)
    return secs, len(body), frames, cpu


# --- 3. timeStamp=auto against the middle frame -----------------------------

def thumbd_pick(work, nginx, n, mode):
    thumbd = Thumbd(work, nginx.port, f"{mode}{n}")
    try:
        per = []
        for i in range(N_VIDEOS):
            url = f"{thumbd.base}/v1/thumbnail/{ORG}/{ENV}/{video_name(i)}.webp?width={WIDTH}"
            if mode == "auto":
                url += "&timeStamp=auto"
            since = nginx.offset()
            start = time.perf_counter()
            status, headers, _ = http(url)
            secs = time.perf_counter() - start
            assert status == 200
            reqs, fetched = nginx.traffic(since)
            per.append((secs, reqs, fetched, float(headers["X-Thumbnail-Time"])))
        return per
    finally:
        thumbd.stop()


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="BIN",
                    help="an earlier thumbd binary, run beside this one for the animated previews")
    ap.add_argument("--parts", default="gallery,animated,auto",
                    help="which of gallery, animated, auto to run (comma-separated)")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first (make bench-gallery does)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    make_videos()
    storyboard.VIDEO = video_name(0)  # what the nginx helper waits for
    work = tempfile.mkdtemp(prefix="thumbd-gallery-")
    nginx = storyboard.Nginx(work)
    try:
        runs = args.runs
        sizes = [os.path.getsize(os.path.join(VIDEOS, video_name(i))) for i in range(N_VIDEOS)]
        print(f"videos: {N_VIDEOS} x 720p30 H.264 (x264 veryfast, B-frames, 2 s GOPs, faststart), "
              f"{min(duration(i) for i in range(N_VIDEOS))}-{max(duration(i) for i in range(N_VIDEOS))} s, "
              f"{sum(sizes) / 1e6:.0f} MB in all; {runs} rounds, medians", flush=True)

        # 1. Gallery.
        if "gallery" in parts:
            check = {i * MOMENTS + i % MOMENTS: os.path.join(work, f"thumbd{i:02d}.webp") for i in range(N_VIDEOS)}
            g_thumbd, g_cli, cli_dir = [], [], None
            for n in range(runs):
                since = nginx.offset()
                r = thumbd_gallery(work, nginx.port, n, keep=check if n == 0 else None)
                g_thumbd.append((*r, nginx.traffic(since)))
                print(f"  gallery round {n}: thumbd {r[0]:.2f} s (cpu {r[1]:.1f} s)", flush=True)
                since = nginx.offset()
                secs, cpu, out_dir = cli_gallery(work, nginx.port, n)
                g_cli.append((secs, cpu, nginx.traffic(since)))
                cli_dir = cli_dir or out_dir
                print(f"  gallery round {n}: CLI {secs:.2f} s (cpu {cpu:.1f} s)", flush=True)
            pics = picture_check(work, check, cli_dir)

        # 2. Animated previews.
        if "animated" in parts:
            anim = {}
            sides = [("thumbd", thumbd_anim), ("ffmpeg CLI", cli_anim)]
            if args.baseline:
                sides.append(("thumbd baseline",
                              lambda w, p, n, e: thumbd_anim(w, p, n, e, args.baseline)))
            for ext in ("webp", "gif"):
                for name, fn in sides:
                    anim[(ext, name)] = []
                for n in range(runs):
                    for name, fn in sides:
                        since = nginx.offset()
                        r = fn(work, nginx.port, n, ext)
                        anim[(ext, name)].append((*r, nginx.traffic(since)))
                print(f"  animated {ext}: thumbd {[round(x[0], 3) for x in anim[(ext, 'thumbd')]]} s, "
                      f"CLI {[round(x[0], 3) for x in anim[(ext, 'ffmpeg CLI')]]} s", flush=True)

        # 3. auto against the middle frame.
        if "auto" in parts:
            picks = {"middle": [], "auto": []}
            for n in range(runs):
                for mode in ("middle", "auto"):
                    picks[mode].append(thumbd_pick(work, nginx, n, mode))

        # --- Report --------------------------------------------------------
        print()
        if "gallery" in parts:
            print("## 1. Gallery pre-warm: 200 thumbnails, 320-px WebP (20 videos x 10 moments)")
            print("| side | wall time | CPU time | source requests | bytes fetched |")
            print("|---|---:|---:|---:|---:|")
            t_wall, t_cpu = med([r[0] for r in g_thumbd]), med([r[1] for r in g_thumbd])
            c_wall, c_cpu = med([r[0] for r in g_cli]), med([r[1] for r in g_cli])
            t_tr, c_tr = g_thumbd[0][4], g_cli[0][2]
            print(f"| thumbd, one batch call, polled with `Prefer: wait` | {t_wall:.2f} s | {t_cpu:.1f} s "
                  f"| {t_tr[0]} | {t_tr[1] / 1e6:.1f} MB |")
            print(f"| ffmpeg CLI, `xargs -P2` | {c_wall:.2f} s | {c_cpu:.1f} s | {c_tr[0]} | {c_tr[1] / 1e6:.1f} MB |")
            print(f"thumbd / CLI: **{t_wall / c_wall:.3f}x** the wall time (target <= 0.3), "
                  f"{t_cpu / c_cpu:.3f}x the CPU")
            print(f"rounds: thumbd {', '.join(f'{r[0]:.2f}' for r in g_thumbd)} s; "
                  f"CLI {', '.join(f'{r[0]:.2f}' for r in g_cli)} s; "
                  f"batch call answered in {med([r[2] for r in g_thumbd]) * 1000:.0f} ms")
            m = g_thumbd[0][3]
            renders = m.get("renders_total", 0) or 1
            stages = ", ".join(f"{s} {m.get(f'render_stage_duration_seconds_sum.{s}', 0) / renders * 1000:.1f} ms"
                               for s in ("fetch", "decode", "encode"))
            print(f"thumbd per render (round 0, /metrics): {stages}; "
                  f"{m.get('render_frames_decoded_sum', 0) / max(m.get('render_frames_decoded_count', 1), 1):.1f} "
                  f"packets decoded; {m.get('source_requests_total', 0):.0f} source requests, "
                  f"{m.get('source_fetched_bytes_total', 0) / 1e6:.1f} MB; {renders:.0f} renders")
            print()
            print("Picture check: one thumbnail per video, thumbd's WebP against the CLI's gallery WebP at T, and"
                  " against the CLI's (`-ss T`) frame at T and one frame either side converted to RGB with the"
                  " video's BT.709 matrix (lossless); mean absolute difference per RGB sample (0-255) at 320x180")
            print("| video | T (s) | vs CLI's WebP | vs CLI frame at T | at T - 1 frame | at T + 1 frame |")
            print("|---|---:|---:|---:|---:|---:|")
            for i, t, as_is, at, before, after in pics:
                print(f"| {video_name(i)} | {t:.1f} | {as_is:.2f} | {at:.2f} | {before:.2f} | {after:.2f} |")
            closest = sum(1 for p in pics if p[3] < min(p[4], p[5]))
            print(f"median: {med([p[2] for p in pics]):.2f} against the CLI's WebP; {med([p[3] for p in pics]):.2f}"
                  f" against its frame at T (max {max(p[3] for p in pics):.2f}), {med([p[4] for p in pics]):.2f}"
                  f" and {med([p[5] for p in pics]):.2f} one frame off; closest to the frame at T in"
                  f" {closest}/{len(pics)}")
        if "animated" in parts:
            print()
            print(f"## 2. Animated preview: {ANIM_SECS} s at {ANIM_FPS} fps, {WIDTH} wide, from {ANIM_START} s of "
                  f"{video_name(ANIM_VIDEO)}; each thumbd run a fresh process")
            print("| format | side | time | CPU | frames | bytes | source requests | fetched |")
            print("|---|---|---:|---:|---:|---:|---:|---:|")
            for ext in ("webp", "gif"):
                for name in [side for side, _ in sides]:
                    rs = anim[(ext, name)]
                    print(f"| {ext} | {name} | {med([r[0] for r in rs]) * 1000:.0f} ms "
                          f"| {med([r[3] for r in rs]) * 1000:.0f} ms | {rs[0][2]} | {rs[0][1]:,} "
                          f"| {rs[0][4][0]} | {rs[0][4][1] / 1e6:.2f} MB |")
            for ext in ("webp", "gif"):
                t = med([r[0] for r in anim[(ext, "thumbd")]])
                c = med([r[0] for r in anim[(ext, "ffmpeg CLI")]])
                print(f"{ext}: thumbd / CLI **{t / c:.3f}x** (target <= 0.5); thumbd rounds "
                      f"{', '.join(f'{r[0] * 1000:.0f}' for r in anim[(ext, 'thumbd')])} ms, CLI "
                      f"{', '.join(f'{r[0] * 1000:.0f}' for r in anim[(ext, 'ffmpeg CLI')])} ms")
                if args.baseline:
                    b = med([r[0] for r in anim[(ext, "thumbd baseline")]])
                    print(f"{ext}: baseline / CLI {b / c:.3f}x; this build / baseline {t / b:.3f}x")
        if "auto" in parts:
            print()
            print("## 3. `timeStamp=auto` against the middle frame, 20 videos, one fresh thumbd per mode and round")
            print("| request | median per video | slowest | 20 videos in turn | requests / video | fetched / video |")
            print("|---|---:|---:|---:|---:|---:|")
            summary = {}
            for mode in ("middle", "auto"):
                flat = [p for run in picks[mode] for p in run]
                total = med([sum(p[0] for p in run) for run in picks[mode]])
                summary[mode] = (med([p[0] for p in flat]), total)
                print(f"| {'`timeStamp=auto`' if mode == 'auto' else 'no time (the middle)'} "
                      f"| {summary[mode][0] * 1000:.1f} ms | {max(p[0] for p in flat) * 1000:.0f} ms "
                      f"| {total:.2f} s | {med([p[1] for p in flat]):.0f} | {med([p[2] for p in flat]) / 1e6:.2f} MB |")
            chosen = [p[3] for p in picks["auto"][0]]
            on_key = sum(1 for t in chosen if abs(t / 2 - round(t / 2)) < 1e-3)
            print(f"auto / middle: {summary['auto'][0] / summary['middle'][0]:.2f}x per video (median), "
                  f"{summary['auto'][1] / summary['middle'][1]:.2f}x for the 20; frames chosen by auto: "
                  f"{', '.join(f'{t:g}' for t in chosen)} s ({on_key}/{len(chosen)} on a keyframe)")
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
