#!/usr/bin/env python3
"""HLS sources: thumbnails and a storyboard of a one-hour VOD, thumbd against
the ffmpeg CLI over the same playlist URL, cold, side by side.

The stream (generated once, cached in target/bench-videos/stream_1h): three
renditions, 1920x1080, 1280x720 and 640x360 (x264 veryfast with B-frames,
2 s closed GOPs, 2, 1.2 and 0.5 Mbit/s, BT.709), each a 30 s clip looped
120 times with `-stream_loop` and `-c copy` with an hour of AAC muxed in,
into 6 s segments:
`ts/` (MPEG-TS segments) and `fmp4/` (fMP4 segments with an EXT-X-MAP init
segment), each with a hand-written master playlist listing the renditions
with their RESOLUTION. nginx (from the distribution) serves the folder on
loopback and logs the bytes it sends per request.

1. A thumbnail at an arbitrary moment (TIMES: mid-segment, mid-GOP, whole
   frames at 25 fps, so the frame a player shows at T, thumbd's, is the CLI's
   first frame at or after T). Every thumbd run is a fresh process, so each
   render fetches the playlists again. Sides:
   - thumbd `/v1/thumbnail/.../master.m3u8.webp?width=320&timeStamp=T`
     (it reads the 640x360 rendition);
   - the CLI on the master playlist, what a user with that URL writes:
     `ffmpeg -ss T -i URL/master.m3u8 -frames:v 1 -vf scale=320:-2 -quality 80 out.webp`
     (FFmpeg's HLS demuxer opens every variant and decodes the largest);
   - the CLI on the 360p media playlist (a user who picked the rendition by hand);
   - full size: thumbd without `width` (the 1080p rendition) against the CLI
     on the master without `-vf`.
   A picture check compares thumbd's 320-wide PNG with the CLI's frame at T
   (and at T -/+ one frame) from the 360p rendition, converted with its
   BT.709 matrix (mean absolute difference of 320x180 grey pictures; the
   picture moves every frame, so a wrong frame shows).
2. A storyboard: thumbd's default (`/v1/storyboard/.../master.m3u8.jpg`: 100
   tiles 160 wide, one per 36 s, each a segment's first frame, from the 360p
   rendition) against what a script around the CLI does for the same tiles:
   one `ffmpeg -ss T -i URL/master.m3u8 -frames:v 1 -vf scale=160:-2` per
   tile, two at a time (`xargs -P2`), then `ffmpeg -i tile%03d.png -vf
   tile=10x10` (a single pass with an fps or select filter over the playlist
   would download the whole hour of the rendition it decodes: 900 MB here).

FFmpeg 5.1's CLI (Debian 12) makes no picture from the fMP4 playlists with
`-ss` before `-i`: its HLS demuxer loses the init segment when it seeks
("Invalid NAL unit size"). Those rows say so instead of a time; the TS rows
are the like-for-like comparison.

Medians of RUNS rounds; sides alternate within each round. Times include
what a client or a script pays: thumbd's HTTP answer on loopback, the CLI's
process start. Prints the tables and a markdown block for bench/RESULTS.md.

`make bench-streaming` installs nginx and the ffmpeg CLI, builds, runs this.
`--generate-only` makes the stream and exits (about a minute on 2 cores, 3.7 GB).
"""

import argparse
import datetime
import json
import os
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

VIDEOS = storyboard.VIDEOS
THUMBD = storyboard.THUMBD
STREAM = "stream_1h"
CLIP_SECS, LOOPS, FPS, SEGMENT = 30, 120, 25, 6
DURATION = CLIP_SECS * LOOPS
# name, size, video bit rate (kbit/s)
RENDITIONS = [("1080", "1920x1080", 2000), ("720", "1280x720", 1200), ("360", "640x360", 500)]
PACKAGINGS = ["ts", "fmp4"]
# Mid-segment and mid-GOP moments, whole frames at 25 fps.
TIMES = [137.32, 611.72, 1234.52, 1800.92, 2468.12, 3333.32]
ORG, ENV = "bench", "nginx"
TILES, TILE_WIDTH = 100, 160
CLI_TILE = """#!/bin/sh
# One storyboard tile, as a script around the ffmpeg CLI makes it: T URL OUT
exec ffmpeg -nostdin -hide_banner -loglevel error -y -ss "$1" -i "$2" -frames:v 1 -vf scale=160:-2 "$3"
"""


def stream_dir():
    return os.path.join(VIDEOS, STREAM)


def key(packaging, playlist="master.m3u8"):
    return f"{STREAM}/{packaging}/{playlist}"


def codecs(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=profile,level", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True).stdout.strip()
    profile, level = out.split(",")
    idc = {"High": "6400", "Main": "4d40"}.get(profile, "42c0")
    return f"avc1.{idc}{int(level):02x},mp4a.40.2"


def make_stream():
    """The one-hour stream, TS and fMP4, once."""
    root = stream_dir()
    done = os.path.join(root, ".done")
    if os.path.exists(done):
        return
    start = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    # The clip: one encode, split into the three sizes.
    graph = f"testsrc2=s=1920x1080:r={FPS}:d={CLIP_SECS},format=yuv420p,split=3[a][b][c];" \
            "[b]scale=1280:720[b2];[c]scale=640:360[c2]"
    args = ["-filter_complex", graph]
    for (name, _, kbps), label in zip(RENDITIONS, ["[a]", "[b2]", "[c2]"]):
        args += ["-map", label, "-c:v", "libx264", "-preset", "veryfast", "-b:v", f"{kbps}k",
                 "-maxrate", f"{kbps * 3 // 2}k", "-bufsize", f"{kbps * 2}k", "-g", str(2 * FPS),
                 "-keyint_min", str(2 * FPS), "-sc_threshold", "0", "-x264-params", "open-gop=0",
                 "-pix_fmt", "yuv420p", "-colorspace", "bt709", "-color_primaries", "bt709",
                 "-color_trc", "bt709", os.path.join(root, f"clip_{name}.mp4")]
    storyboard.ff(*args)
    # The sound, an hour of it in one piece: a looped AAC track would not
    # end on a video frame, and each loop would shift the video's times.
    audio = os.path.join(root, "audio.m4a")
    storyboard.ff("-f", "lavfi", "-i", f"sine=f=440:d={DURATION}:sample_rate=48000", "-c:a", "aac", "-b:a", "64k",
                  audio)
    for packaging in PACKAGINGS:
        lines = ["#EXTM3U", f"#EXT-X-VERSION:{7 if packaging == 'fmp4' else 3}", "#EXT-X-INDEPENDENT-SEGMENTS"]
        for name, size, kbps in RENDITIONS:
            out = os.path.join(root, packaging, name)
            os.makedirs(out)
            clip = os.path.join(root, f"clip_{name}.mp4")
            if packaging == "ts":
                kind = ["-hls_segment_type", "mpegts", "-hls_segment_filename", f"{out}/seg_%04d.ts"]
            else:
                kind = ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
                        "-hls_segment_filename", f"{out}/seg_%04d.m4s"]
            storyboard.ff("-stream_loop", str(LOOPS - 1), "-i", clip, "-i", audio, "-map", "0:v", "-map", "1:a",
                          "-c", "copy", "-shortest", "-f", "hls",
                          "-hls_time", str(SEGMENT), "-hls_playlist_type", "vod", "-hls_list_size", "0",
                          *kind, f"{out}/index.m3u8")
            bandwidth = (kbps + 64) * 1000
            lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth * 5 // 4},AVERAGE-BANDWIDTH={bandwidth},"
                         f"RESOLUTION={size},FRAME-RATE={FPS}.000,CODECS=\"{codecs(clip)}\"")
            lines.append(f"{name}/index.m3u8")
        with open(os.path.join(root, packaging, "master.m3u8"), "w") as f:
            f.write("\n".join(lines) + "\n")
    # The playlists say an hour, in 6 s segments.
    with open(os.path.join(root, "ts", "360", "index.m3u8")) as f:
        text = f.read()
    total = sum(float(l.split(":")[1].rstrip(",")) for l in text.splitlines() if l.startswith("#EXTINF:"))
    if abs(total - DURATION) > 1 or "#EXT-X-ENDLIST" not in text:
        raise RuntimeError(f"the 360p playlist lasts {total} s")
    with open(done, "w") as f:
        f.write("ok\n")
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(root) for n in ns)
    print(f"generated the one-hour stream ({size / 1e9:.1f} GB) in {time.perf_counter() - start:.0f} s",
          flush=True)


def http(url, timeout=300):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read()


class Thumbd:
    """A fresh thumbd process: nothing cached, no playlist known."""

    def __init__(self, work, nginx_port, label):
        self.port = storyboard.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cfg = os.path.join(work, f"thumbd-{label}.toml")
        with open(cfg, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{self.port}"
public_base_url = "{self.base}"
demo_page = false
shutdown_delay_secs = 0
shutdown_grace_secs = 1
[jobs]
db_path = "{work}/jobs-{label}.db"
[orgs.{ORG}.envs.{ENV}]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
""")
        self.log = open(os.path.join(work, f"thumbd-{label}.log"), "w")
        self.proc = subprocess.Popen([THUMBD, "serve", "--config", cfg], stdout=self.log, stderr=self.log)
        try:
            storyboard.wait_http(f"{self.base}/healthz")
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def thumbd_thumbnail(work, nginx, packaging, t, width, label, ext="webp"):
    thumbd = Thumbd(work, nginx.port, label)
    try:
        query = f"timeStamp={t}" + (f"&width={width}" if width else "")
        url = f"{thumbd.base}/v1/thumbnail/{ORG}/{ENV}/{key(packaging)}.{ext}?{query}"
        since = nginx.offset()
        start = time.perf_counter()
        status, headers, body = http(url)
        secs = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"{url}: {status}")
        shown = float(headers["X-Thumbnail-Time"])
        if abs(shown - t) > 0.5 / FPS:
            raise RuntimeError(f"{url}: X-Thumbnail-Time {shown}")
        path = os.path.join(work, f"{label}.{ext}")
        with open(path, "wb") as f:
            f.write(body)
        return secs, nginx.traffic(since), path
    finally:
        thumbd.stop()


def cli(*args):
    """Runs the ffmpeg CLI; whether it exited 0."""
    r = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                       capture_output=True, timeout=600)
    return r.returncode == 0


def cli_thumbnail(work, nginx, url, t, width, label):
    """None when the CLI made no picture (FFmpeg 5.1's HLS demuxer loses the
    fMP4 init segment when it seeks: "Invalid NAL unit size", no frame)."""
    out = os.path.join(work, f"{label}.webp")
    vf = ["-vf", f"scale={width}:-2"] if width else []
    since = nginx.offset()
    start = time.perf_counter()
    ok = cli("-ss", str(t), "-i", url, "-frames:v", "1", *vf, "-quality", "80", out)
    secs = time.perf_counter() - start
    traffic = nginx.traffic(since)
    if not ok or not os.path.exists(out) or os.path.getsize(out) == 0:
        return None
    return secs, traffic, out


def grey(path):
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-frames:v", "1",
                          "-vf", "scale=320:180,format=gray", "-f", "rawvideo", "-"],
                          check=True, capture_output=True, timeout=60).stdout


def mad(a, b):
    assert len(a) == len(b) == 320 * 180
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


def reference(work, nginx, t, d, label):
    """The CLI's frame `d` frames from `t` in the 360p rendition (the TS
    playlist: the CLI cannot seek in the fMP4 one; the frames are the same),
    converted to RGB with the video's BT.709 matrix, lossless. `-ss` just
    below a frame's time for the neighbours: it takes the first at or after."""
    out = os.path.join(work, f"{label}.png")
    url = f"http://127.0.0.1:{nginx.port}/{key('ts', '360/index.m3u8')}"
    vf = "scale=320:180:in_color_matrix=bt709:flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24"
    if not cli("-ss", f"{t + d / FPS - (0.001 if d else 0):.4f}", "-i", url, "-frames:v", "1", "-vf", vf, out):
        raise RuntimeError(f"the CLI made no reference frame at {t} s")
    return out


def picture_check(work, nginx, path, t, label):
    """Mean absolute difference of thumbd's picture (320x180 grey) from the
    CLI's frame at t, and at one frame before and after it."""
    mine = grey(path)
    return [mad(mine, grey(reference(work, nginx, t, d, f"{label}-{d}"))) for d in (0, -1, 1)]


def thumbd_storyboard(work, nginx, packaging, label):
    thumbd = Thumbd(work, nginx.port, label)
    try:
        base = f"{thumbd.base}/v1/storyboard/{ORG}/{ENV}/{key(packaging)}"
        since = nginx.offset()
        start = time.perf_counter()
        status, _, body = http(f"{base}.jpg")
        secs = time.perf_counter() - start
        traffic = nginx.traffic(since)
        if status != 200:
            raise RuntimeError(f"{base}.jpg: {status}")
        _, _, layout = http(f"{base}.json")
        tiles = len(json.loads(layout)["tiles"])
        return secs, traffic, len(body), tiles
    finally:
        thumbd.stop()


def cli_storyboard(work, nginx, packaging, label):
    """None when the CLI made fewer tiles than asked."""
    out_dir = os.path.join(work, label)
    os.makedirs(out_dir)
    one = os.path.join(work, "tile.sh")
    with open(one, "w") as f:
        f.write(CLI_TILE)
    url = f"http://127.0.0.1:{nginx.port}/{key(packaging)}"
    interval = DURATION / TILES
    lst = os.path.join(work, f"{label}.txt")
    with open(lst, "w") as f:
        for i in range(TILES):
            f.write(f"{i * interval:.2f} {url} {out_dir}/tile{i:03d}.png\n")
    since = nginx.offset()
    start = time.perf_counter()
    subprocess.run(["bash", "-c", f"xargs -P2 -n3 sh {one} < {lst}"], timeout=1800)
    made = len([n for n in os.listdir(out_dir) if n.startswith("tile")])
    sprite = os.path.join(out_dir, "sprite.jpg")
    if made != TILES or not cli("-i", f"{out_dir}/tile%03d.png", "-vf", "tile=10x10", "-frames:v", "1",
                                "-q:v", "3", sprite):
        return None
    secs = time.perf_counter() - start
    return secs, nginx.traffic(since), os.path.getsize(sprite), TILES


def med(xs):
    return statistics.median(xs)


def mb(n):
    return f"{n / 1e6:.2f} MB"


def main():
    global THUMBD
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians are reported); default 3")
    ap.add_argument("--times", type=int, default=len(TIMES), help=f"moments per round, of {len(TIMES)}")
    ap.add_argument("--no-storyboard", action="store_true", help="thumbnails only")
    ap.add_argument("--generate-only", action="store_true", help="make the stream and exit")
    ap.add_argument("--thumbd", default=THUMBD, help="the binary to run (default: the release build)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    make_stream()
    if args.generate_only:
        return
    THUMBD = os.path.abspath(args.thumbd)
    if not os.path.exists(THUMBD):
        sys.exit(f"{THUMBD}: build the release binary first (make bench-streaming does)")
    storyboard.VIDEO = key("ts")  # what the nginx helper waits for
    work = tempfile.mkdtemp(prefix="thumbd-streaming-")
    nginx = storyboard.Nginx(work)
    times = TIMES[:args.times]
    try:
        print(f"stream: {DURATION} s, {len(RENDITIONS)} renditions ({', '.join(s for _, s, _ in RENDITIONS)}), "
              f"{SEGMENT} s segments, 2 s GOPs with B-frames; {args.runs} rounds x {len(times)} moments, medians",
              flush=True)
        sides = {}  # (packaging, side) -> [(secs, requests, bytes)]
        failed = {}  # (packaging, side) -> runs without a picture
        checks = []
        for packaging in PACKAGINGS:
            master = f"http://127.0.0.1:{nginx.port}/{key(packaging)}"
            media360 = f"http://127.0.0.1:{nginx.port}/{key(packaging, '360/index.m3u8')}"
            for n in range(args.runs):
                for i, t in enumerate(times):
                    label = f"{packaging}-{n}-{i}"
                    runs = [
                        ("thumbd, 320 wide", lambda: thumbd_thumbnail(work, nginx, packaging, t, 320, f"t320-{label}")),
                        ("CLI, master, 320 wide", lambda: cli_thumbnail(work, nginx, master, t, 320, f"c320-{label}")),
                        ("CLI, 360p playlist, 320 wide",
                         lambda: cli_thumbnail(work, nginx, media360, t, 320, f"c360-{label}")),
                        ("thumbd, full size (1080p)",
                         lambda: thumbd_thumbnail(work, nginx, packaging, t, None, f"tfull-{label}")),
                        ("CLI, master, full size", lambda: cli_thumbnail(work, nginx, master, t, None, f"cfull-{label}")),
                    ]
                    if (n + i) % 2:  # alternate who goes first
                        runs.reverse()
                    paths = {}
                    for name, run in runs:
                        sides.setdefault((packaging, name), [])
                        result = run()
                        if result is None:
                            failed[(packaging, name)] = failed.get((packaging, name), 0) + 1
                            continue
                        secs, (reqs, fetched), path = result
                        sides[(packaging, name)].append((secs, reqs, fetched))
                        paths[name] = path
                    if n == 0:  # lossless, untimed: which frame it is
                        _, _, png = thumbd_thumbnail(work, nginx, packaging, t, 320, f"check-{label}", "png")
                        checks.append((packaging, t, *picture_check(work, nginx, png, t, f"ref-{label}")))
            print(f"{packaging}: thumbnails done", flush=True)
        boards = {}
        if not args.no_storyboard:
            for packaging in PACKAGINGS:
                # A script finds out at its first tile whether the CLI can do it.
                probe = cli_thumbnail(work, nginx, f"http://127.0.0.1:{nginx.port}/{key(packaging)}",
                                      DURATION / 2, TILE_WIDTH, f"probe-{packaging}")
                for n in range(args.runs):
                    runs = [("thumbd", lambda: thumbd_storyboard(work, nginx, packaging, f"sb-{packaging}-{n}"))]
                    if probe is not None:
                        runs.append(("CLI, one -ss per tile",
                                     lambda: cli_storyboard(work, nginx, packaging, f"cs-{packaging}-{n}")))
                    else:
                        failed[(packaging, "CLI, one -ss per tile")] = args.runs
                    if n % 2:
                        runs.reverse()
                    for name, run in runs:
                        boards.setdefault((packaging, name), [])
                        result = run()
                        if result is None:
                            failed[(packaging, name)] = failed.get((packaging, name), 0) + 1
                            continue
                        secs, (reqs, fetched), size, tiles = result
                        boards[(packaging, name)].append((secs, reqs, fetched, tiles))
                print(f"{packaging}: storyboards done", flush=True)
        report(args, times, sides, failed, checks, boards)
    finally:
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


FAILED_NOTE = ("no picture: FFmpeg 5.1's HLS demuxer loses the fMP4 init segment when it seeks "
               "(\"Invalid NAL unit size\"), so `-ss` before `-i` decodes nothing")


def report(args, times, sides, failed, checks, boards):
    out = []
    out.append(f"## HLS sources: a one-hour VOD (make bench-streaming), {datetime.date.today()}")
    out.append("")
    out.append(f"`bench/streaming.py --runs {args.runs}`: a generated one-hour stream (1080p 2 Mbit/s, 720p "
               "1.2 Mbit/s, 360p 0.5 Mbit/s; x264 veryfast, B-frames, 2 s closed GOPs, AAC muxed in; 6 s segments, "
               "MPEG-TS and fMP4) served by nginx on loopback. Every thumbd run is a fresh process (it fetches the "
               f"playlists each time). Moments: {', '.join(f'{t}' for t in times)} s. Medians of "
               f"{args.runs} x {len(times)} cold renders; requests and bytes from nginx's access log "
               "(`$bytes_sent`), per render.")
    out.append("")

    def cells(v, unit_ms=True):
        if not v:
            return "-", "-", "-"
        t = med([x[0] for x in v])
        return (f"{t * 1000:.0f} ms" if unit_ms else f"{t:.2f} s", f"{med([x[1] for x in v]):.0f}",
                mb(med([x[2] for x in v])))

    for packaging in PACKAGINGS:
        out.append(f"**Thumbnail at a moment, {'MPEG-TS' if packaging == 'ts' else 'fMP4'} segments**")
        out.append("")
        out.append("| side | cold time | requests | bytes fetched | runs without a picture |")
        out.append("|---|---|---|---|---|")
        rows = {name: v for (p, name), v in sides.items() if p == packaging}
        for name, v in rows.items():
            out.append(f"| {name} | {' | '.join(cells(v))} | {failed.get((packaging, name), 0)} |")
        out.append("")

        def ratio(a, b, i):
            return med([x[i] for x in rows[a]]) / max(med([x[i] for x in rows[b]]), 1e-9)
        for a, b in [("thumbd, 320 wide", "CLI, master, 320 wide"),
                     ("thumbd, 320 wide", "CLI, 360p playlist, 320 wide"),
                     ("thumbd, full size (1080p)", "CLI, master, full size")]:
            if rows.get(a) and rows.get(b):
                out.append(f"- {a} / {b}: {ratio(a, b, 0):.3f}x the time, {ratio(a, b, 2):.3f}x the bytes")
            else:
                why = (FAILED_NOTE if packaging == "fmp4" else "the CLI made no picture") if not rows.get(b) \
                    else "thumbd made no picture"
                out.append(f"- {a} / {b}: {why}")
        out.append("")
    if checks:
        at_t = max(c[2] for c in checks)
        neighbours = min(min(c[3], c[4]) for c in checks)
        out.append("Picture check, round 0: thumbd's 320-wide PNG against the CLI's frame at T from the 360p "
                   "rendition converted with its BT.709 matrix (mean absolute difference of 320x180 grey pictures, "
                   f"of 255): at most {at_t:.2f} over {len(checks)} renders ({len(set(c[1] for c in checks))} "
                   f"moments, both packagings); against the frame before or after T, at least {neighbours:.2f}.")
        out.append("")
    if boards:
        out.append(f"**Storyboard**: {TILES} tiles {TILE_WIDTH} wide, one per {DURATION / TILES:.0f} s (thumbd's "
                   "default: each a segment's first frame, from the 360p rendition); the CLI: one "
                   "`ffmpeg -ss T -i URL/master.m3u8 -frames:v 1 -vf scale=160:-2 tileNNN.png` per tile, "
                   "`xargs -P2`, then `-vf tile=10x10`.")
        out.append("")
        out.append("| packaging | side | cold time | requests | bytes fetched | tiles | runs without a sprite |")
        out.append("|---|---|---|---|---|---|---|")
        for (packaging, name), v in boards.items():
            tiles = v[0][3] if v else "-"
            out.append(f"| {packaging} | {name} | {' | '.join(cells(v, False))} | {tiles} | "
                       f"{failed.get((packaging, name), 0)} |")
        for (packaging, name), n in failed.items():
            if (packaging, name) not in boards and name.startswith("CLI, one"):
                out.append(f"| {packaging} | {name} | - | - | - | - | {n} |")
        out.append("")
        for packaging in PACKAGINGS:
            t = boards.get((packaging, "thumbd"))
            c = boards.get((packaging, "CLI, one -ss per tile"))
            if t and c:
                out.append(f"- {packaging}: thumbd / CLI {med([x[0] for x in t]) / med([x[0] for x in c]):.3f}x the "
                           f"time, {med([x[2] for x in t]) / max(med([x[2] for x in c]), 1):.3f}x the bytes")
            elif t:
                why = f" ({FAILED_NOTE})" if packaging == "fmp4" else ""
                out.append(f"- {packaging}: the CLI made no storyboard{why}")
        out.append("")
    text = "\n".join(out)
    print()
    print("--- markdown for bench/RESULTS.md ---")
    print(text)


if __name__ == "__main__":
    main()
