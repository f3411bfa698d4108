#!/usr/bin/python3
"""Uploads: how long thumbd takes to accept a large upload, and whether its
memory grows with the file (it must not: uploads stream to disk).

For a 10 MB and a 100 MB 1080p H.264 MP4, each round starts a fresh thumbd
(release build) with an empty store, uploads the file with curl to
`POST /v1/api/bench/uploads` (multipart, as a client would), and records
the time until the 202 answer and thumbd's peak RSS (VmHWM). Side by side,
what a script around the ffmpeg CLI must do at least for the same upload
once it has the bytes: write them to disk and fsync (`dd conv=fsync`), then
check them with `ffprobe`. Medians over the rounds.

Usage: bench/upload.py [--rounds N]   (`make bench-upload`)
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench")
VIDEOS = os.path.join(WORK, "videos")
THUMBD = os.path.join(ROOT, "target", "release", "thumbd")
KEY = "bench-api-key-0123456789"


def ff(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_videos():
    """upload_100mb.mp4 (25 s) and upload_10mb.mp4 (its first 2 s), by stream copy."""
    os.makedirs(VIDEOS, exist_ok=True)
    big = os.path.join(VIDEOS, "upload_100mb.mp4")
    small = os.path.join(VIDEOS, "upload_10mb.mp4")
    if not os.path.exists(big):
        seg = os.path.join(VIDEOS, ".upload_seg.mp4")
        ff("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25:d=12.5", "-c:v", "libx264", "-preset", "ultrafast",
           "-g", "50", "-b:v", "40M", "-minrate", "40M", "-maxrate", "40M", "-bufsize", "20M",
           "-pix_fmt", "yuv420p", seg)
        ff("-stream_loop", "1", "-i", seg, "-c", "copy", "-movflags", "+faststart", big)
        os.remove(seg)
    if not os.path.exists(small):
        ff("-i", big, "-t", "2.5", "-c", "copy", "-movflags", "+faststart", small)
    return [("10 MB", small), ("100 MB", big)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Thumbd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="thumbd-upload-bench-")
        self.port = free_port()
        config = os.path.join(self.dir, "thumbd.toml")
        with open(config, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{self.port}"
public_base_url = "http://127.0.0.1:{self.port}"
shutdown_delay_secs = 0
[orgs.bench]
api_keys = ["{KEY}"]
[orgs.bench.envs.up]
source = "store:store"
[orgs.bench.envs.up.store]
max_upload_bytes = 1073741824
""")
        env = dict(os.environ, THUMBD_LOG="thumbd=warn")
        self.proc = subprocess.Popen([THUMBD, "serve", "--config", config], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("thumbd did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def upload(port, path):
    """Seconds until the answer, and the answer."""
    out = subprocess.run(
        ["curl", "-s", "-H", f"X-Api-Key: {KEY}", "-F", f"video=@{path}", "-F", "time=1",
         "-F", "size=320x180", "-w", "\n%{http_code} %{time_total}",
         f"http://127.0.0.1:{port}/v1/api/bench/uploads"],
        check=True, capture_output=True, text=True).stdout
    body, tail = out.rsplit("\n", 1)
    code, secs = tail.split()
    if code not in ("200", "202"):
        raise RuntimeError(f"upload answered {code}: {body}")
    return float(secs), json.loads(body)


def script_floor(path):
    """What a script must do at least with the bytes: store them (synced) and probe them."""
    dest = os.path.join(tempfile.gettempdir(), "upload-bench-copy.mp4")
    started = time.monotonic()
    subprocess.run(["dd", f"if={path}", f"of={dest}", "bs=1M", "conv=fsync", "status=none"], check=True)
    subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", dest],
                   check=True, capture_output=True)
    secs = time.monotonic() - started
    os.remove(dest)
    return secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for name, path in make_videos():
        size_mb = os.path.getsize(path) / 1e6
        times, floors, peaks, idle = [], [], [], []
        for _ in range(args.rounds):
            t = Thumbd()
            try:
                idle.append(status_kib(t.proc.pid, "VmRSS") / 1024)
                secs, answer = upload(t.port, path)
                assert answer["body"]["stored"] == "new", answer
                times.append(secs)
                peaks.append(status_kib(t.proc.pid, "VmHWM") / 1024)
            finally:
                t.stop()
            floors.append(script_floor(path))
        rows.append((name, size_mb, statistics.median(times), statistics.median(floors),
                     statistics.median(idle), statistics.median(peaks)))
    print(f"\n| upload | size MB | thumbd accepts (s) | write+fsync+ffprobe (s) | ratio | MB/s | RSS idle MiB | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, t, floor, idle, peak in rows:
        print(f"| {name} | {size:.1f} | {t:.3f} | {floor:.3f} | {t / floor:.2f} | {size / t:.0f} | {idle:.1f} | {peak:.1f} |")
    (_, _, _, _, _, small_peak), (_, _, _, _, _, big_peak) = rows
    print(f"\npeak RSS, 100 MB upload / 10 MB upload: {big_peak / small_peak:.2f} (streaming: about 1.0)")


if __name__ == "__main__":
    main()
