#!/usr/bin/python3
"""Mid-GOP renders: what thumbd decodes to show a frame between keyframes,
against the ffmpeg CLI reading the same URL, side by side in one run.

For each video (x264 and x265 at their default B-frame structure, 2 s and
10 s GOPs, and an x264 stream without B-frames, where every frame is a
reference), cold (a fresh thumbd each time: empty caches):
  - thumbd, the exact frame in the middle of a GOP and just before the next
    keyframe (non-reference frames before the target are not decoded);
  - the ffmpeg CLI, `ffmpeg -ss T -i URL -frames:v 1 -vf scale=320:-2`;
  - thumbd with `snap=keyframe` (the keyframe at or before T, decoded alone).
Also the packets thumbd decoded for the frame (its
`thumbd_render_frames_decoded` histogram), and a picture check: thumbd's
frame (PNG) against the CLI's at T and at the frames either side.

Usage: bench/midgop.py [--runs N]   (`make bench-midgop`)
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the shared plumbing: nginx, thumbd, the CLI)

WIDTH = 320
# (file, label, encoder arguments, GOP seconds)
VIDEOS = [
    ("x264_default_gop2.mp4", "1080p x264 defaults (3 B-frames, pyramid), 2 s GOP",
     ["-c:v", "libx264", "-preset", "medium", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"], 2.0),
    ("x264_default_gop10.mp4", "1080p x264 defaults, 10 s GOP",
     ["-c:v", "libx264", "-preset", "medium", "-g", "250", "-keyint_min", "250", "-sc_threshold", "0"], 10.0),
    ("x265_default_gop2.mp4", "1080p x265 (4 B-frames, pyramid), 2 s GOP",
     ["-c:v", "libx265", "-preset", "fast", "-x265-params",
      "log-level=error:keyint=50:min-keyint=50:scenecut=0", "-tag:v", "hvc1"], 2.0),
    ("x264_nob_gop10.mp4", "1080p x264 without B-frames (every frame a reference), 10 s GOP",
     ["-c:v", "libx264", "-preset", "medium", "-bf", "0", "-g", "250", "-keyint_min", "250",
      "-sc_threshold", "0"], 10.0),
]
SECONDS = 20


def make_videos():
    os.makedirs(bench.VIDEOS, exist_ok=True)
    for name, _, args, _ in VIDEOS:
        out = os.path.join(bench.VIDEOS, name)
        if os.path.exists(out):
            continue
        tmp = out + ".part.mp4"
        bench.ff("-f", "lavfi", "-i", f"testsrc2=s=1920x1080:r=25:d={SECONDS}", *args, "-b:v", "6M",
                 "-pix_fmt", "yuv420p", "-movflags", "+faststart", tmp)
        os.replace(tmp, out)


def frames_decoded(port):
    """The sum and count of thumbd's frames-decoded histogram."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = re.search(r"^thumbd_render_frames_decoded_sum ([\d.e+]+)", text, re.M)
    count = re.search(r"^thumbd_render_frames_decoded_count ([\d.e+]+)", text, re.M)
    return float(total.group(1)) if total else 0.0, float(count.group(1)) if count else 0.0


def cli_png(url, t):
    """The CLI's frame at `t` as a PNG; None past the end."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{t:.3f}", "-i", url, "-frames:v", "1",
                           "-vf", f"scale={WIDTH}:-2", "-f", "image2pipe", "-c:v", "png", "-"],
                          capture_output=True).stdout
    return out or None


def gray(png, size=(160, 90)):
    """A picture as raw 8-bit grey at `size`, by the ffmpeg CLI."""
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "image2pipe", "-i", "-",
                           "-vf", f"scale={size[0]}:{size[1]},format=gray", "-f", "rawvideo", "-"],
                          input=png, check=True, capture_output=True).stdout


def mean_diff(a, b):
    if b is None:
        return float("nan")
    x, y = gray(a), gray(b)
    return sum(abs(p - q) for p, q in zip(x, y)) / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not os.path.exists(bench.THUMBD):
        sys.exit("build the release binary first: cargo build --release")
    make_videos()
    nginx = bench.Nginx(probe=VIDEOS[0][0])
    proxy = bench.DelayProxy(nginx.port)
    thumbd = bench.Thumbd(nginx.port, proxy.port)
    median = statistics.median
    rows = []
    checks = []
    try:
        thumbd.start()
        for name, label, _, gop in VIDEOS:
            # The second GOP's middle and its last frame (every frame of
            # the GOP before it decoded, in display order).
            for where, t in [("mid-GOP", gop * 1.5), ("the last frame of a GOP", gop * 2 - 0.04)]:
                src = f"http://127.0.0.1:{nginx.port}/{name}"
                ours, snapped, cli, packets = [], [], [], []
                for _ in range(args.runs):
                    thumbd.restart()
                    s0, c0 = frames_decoded(thumbd.port)
                    ours.append(bench.fetch(thumbd.url("nginx", name, f"width={WIDTH}&timeStamp={t:.3f}"))[0])
                    s1, c1 = frames_decoded(thumbd.port)
                    packets.append(s1 - s0 if c1 > c0 else float("nan"))
                    thumbd.restart()
                    snapped.append(bench.fetch(thumbd.url(
                        "nginx", name, f"width={WIDTH}&timeStamp={t:.3f}&snap=keyframe"))[0])
                    cli.append(bench.ffmpeg_cli(src, t, WIDTH))
                ours_ms, snap_ms, cli_ms = (median(x) * 1e3 for x in (ours, snapped, cli))
                rows.append((label, where, t, ours_ms, cli_ms, snap_ms, median(packets), gop * 25))
                print(f"{label:70} {where:24} t={t:7.3f}  thumbd {ours_ms:7.1f} ms  CLI {cli_ms:7.1f} ms  "
                      f"ratio {ours_ms / cli_ms:5.2f}  snap {snap_ms:6.1f} ms ({snap_ms / cli_ms:4.2f}x)  "
                      f"packets {median(packets):g}", flush=True)
                # The picture: thumbd's frame is the CLI's at T, not a neighbour.
                png = bench.fetch(thumbd.url("nginx", name, f"width={WIDTH}&timeStamp={t:.3f}").replace(
                    ".webp?", ".png?"))[1]
                diffs = [mean_diff(png, cli_png(src, t + d)) for d in (-0.04, 0.0, 0.04)]
                checks.append((label, where, diffs))
                print(f"    picture: mean |diff| vs the CLI at T-1 frame {diffs[0]:.2f}, T {diffs[1]:.2f}, "
                      f"T+1 frame {diffs[2]:.2f}", flush=True)
    finally:
        thumbd.stop()
        nginx.stop()
    print()
    print("| video | moment | thumbd | ffmpeg CLI | ratio | snap=keyframe | snap / CLI | packets decoded (of a GOP) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, where, t, ours, cli, snap, packets, gop_frames in rows:
        print(f"| {label} | {where} ({t:g} s) | {ours:.0f} ms | {cli:.0f} ms | **{ours / cli:.2f}** | "
              f"{snap:.0f} ms | {snap / cli:.2f} | {packets:g} of {gop_frames:g} |")
    print()
    for label, where, diffs in checks:
        print(f"- {label}, {where}: mean |difference| from the CLI's frame at T {diffs[1]:.2f}/255 "
              f"(the frame before {diffs[0]:.2f}, after {diffs[2]:.2f})")


if __name__ == "__main__":
    main()
