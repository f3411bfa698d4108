#!/usr/bin/python3
"""thumbd benchmark: thumbd against what users would run instead, side by
side in one run on one machine.

  - the ffmpeg CLI reading the same URL (`ffmpeg -ss T -i URL -frames:v 1
    -vf scale=W:-2 out.webp`), for cold renders;
  - nginx serving the same bytes as a static file, for cache hits.

Starts nginx (from the distribution) serving generated videos with Range
support, a delaying proxy (20 ms per request) in front of it, and the release
build of thumbd. "Cold" means a fresh thumbd process: empty thumbnail and
byte caches. Every figure is a median over several runs.

Usage: bench/bench.py [--runs N] [--quick] [--write bench/RESULTS.md]
(`make bench` installs nginx, wrk and the ffmpeg CLI, builds, and runs this.)
"""
import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench")
VIDEOS = os.path.join(WORK, "videos")
THUMBD = os.path.join(ROOT, "target", "release", "thumbd")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ff(*args):
    run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_videos():
    """The benchmark's videos (generated once, kept in target/bench)."""
    os.makedirs(VIDEOS, exist_ok=True)
    run(["bash", os.path.join(ROOT, "tests", "fixtures", "large.sh"), VIDEOS])
    out = os.path.join(VIDEOS, "h264_720p_gop8_bframes.mp4")
    if not os.path.exists(out):
        seg = os.path.join(VIDEOS, ".seg720.mp4")
        ff("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25:d=8", "-c:v", "libx264", "-preset", "veryfast",
           "-bf", "3", "-g", "200", "-keyint_min", "200", "-sc_threshold", "0", "-b:v", "3M",
           "-pix_fmt", "yuv420p", seg)
        ff("-stream_loop", "6", "-i", seg, "-c", "copy", "-movflags", "+faststart", out)
        os.remove(seg)
    out = os.path.join(VIDEOS, "vp9_720p_60s.webm")
    if not os.path.exists(out):
        seg = os.path.join(VIDEOS, ".seg_vp9.webm")
        ff("-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25:d=10", "-c:v", "libvpx-vp9", "-deadline", "realtime",
           "-cpu-used", "8", "-b:v", "2M", "-g", "250", "-pix_fmt", "yuv420p", seg)
        ff("-stream_loop", "5", "-i", seg, "-c", "copy", out)
        os.remove(seg)


class Nginx:
    """nginx serving VIDEOS (Range support is built in), logging bytes sent."""

    def __init__(self, probe="large.mp4"):
        """`probe`: a file of VIDEOS fetched to know nginx is up."""
        self.port = free_port()
        self.prefix = os.path.join(WORK, "nginx")
        os.makedirs(os.path.join(self.prefix, "logs"), exist_ok=True)
        self.log = os.path.join(self.prefix, "logs", "access.log")
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 2;
error_log {self.prefix}/logs/error.log;
pid {self.prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  log_format bench '$request_uri $status $bytes_sent';
  access_log {self.log} bench;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  types {{ image/webp webp; video/mp4 mp4; video/webm webm; }}
  server {{
    listen 127.0.0.1:{self.port}; root {VIDEOS};
    # The static-file baseline for cache hits writes one log line per
    # request, as thumbd's access log does, to its own file: the main log
    # counts source traffic only.
    location = /thumb.webp {{ access_log {self.prefix}/logs/hits.log combined; }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", self.prefix, "-c", conf, "-g", "daemon off;"])
        wait_http(f"http://127.0.0.1:{self.port}/{probe}", head=True)

    def pids(self):
        """The master and its workers."""
        workers = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = int(proc_stat(pid)[1])
            except OSError:
                continue
            if ppid == self.proc.pid:
                workers.append(int(pid))
        return [self.proc.pid] + workers

    def traffic(self, since):
        """Requests and bytes logged after offset `since` of the log."""
        with open(self.log) as f:
            f.seek(since)
            lines = [l.split() for l in f if l.strip()]
        return len(lines), sum(int(l[-1]) for l in lines)

    def log_size(self):
        time.sleep(0.05)  # nginx writes the log line after the response
        return os.path.getsize(self.log)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class DelayProxy:
    """A TCP proxy adding 20 ms before forwarding each request (each chunk
    the client sends), as object storage's round trips would."""

    def __init__(self, target_port, delay=0.020):
        self.port = free_port()
        self.target = target_port
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)

        async def pipe(reader, writer, delay):
            try:
                while data := await reader.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def handle(cr, cw):
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
            await asyncio.gather(pipe(cr, sw, self.delay), pipe(sr, cw, 0))

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await server.serve_forever()

        self.loop.run_until_complete(main())


def wait_http(url, head=False, tries=200):
    for _ in range(tries):
        try:
            req = urllib.request.Request(url, method="HEAD" if head else "GET")
            with urllib.request.urlopen(req, timeout=2):
                return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


class Thumbd:
    def __init__(self, nginx_port, proxy_port):
        self.port = free_port()
        self.config = os.path.join(WORK, "thumbd.toml")
        with open(self.config, "w") as f:
            f.write(f"""
[server]
public_base_url = "http://127.0.0.1:{self.port}"
[jobs]
db_path = "{WORK}/jobs.db"
[orgs.bench.envs.nginx]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
[orgs.bench.envs.slow]
source = "http://127.0.0.1:{proxy_port}/{{key}}"
""")
        self.proc = None

    def start(self):
        # Logs (one access line per request) go to a file, as in production.
        self.proc = subprocess.Popen([THUMBD, "serve", "--config", self.config, "--listen", f"127.0.0.1:{self.port}"],
                                     stderr=open(os.path.join(WORK, "thumbd.log"), "a"))
        wait_http(f"http://127.0.0.1:{self.port}/healthz")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def url(self, env, key, query):
        return f"http://127.0.0.1:{self.port}/v1/thumbnail/bench/{env}/{key}.webp?{query}"

    def _status_mib(self, field):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def current_rss_mib(self):
        return self._status_mib("VmRSS")

    def peak_rss_mib(self):
        return self._status_mib("VmHWM")


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (state first)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_secs(pids):
    """User + system CPU seconds used so far by these processes."""
    ticks = sum(int(f[11]) + int(f[12]) for f in map(proc_stat, pids))
    return ticks / os.sysconf("SC_CLK_TCK")


def fetch(url):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
        status = r.status
    assert status == 200, (url, status)
    return time.perf_counter() - t0, body


def ffmpeg_cli(url, t, width):
    out = os.path.join(WORK, "cli.webp")
    t0 = time.perf_counter()
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(t), "-i", url, "-frames:v", "1",
         "-vf", f"scale={width}:-2", out])
    return time.perf_counter() - t0


def needed_bytes(path, t):
    """Container index plus the packets from the keyframe before `t` through
    the frame shown at `t`, from ffprobe's packet list."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts_time,dts_time,pos,size,flags", "-of", "json", path],
                         check=True, capture_output=True).stdout
    packets = [p for p in json.loads(out)["packets"] if p.get("pos") not in (None, "N/A")]
    for p in packets:
        p["pos"], p["size"] = int(p["pos"]), int(p["size"])
        p["pts"] = float(p.get("pts_time", p.get("dts_time", 0)))
    shown = max((p for p in packets if p["pts"] <= t + 1e-9), key=lambda p: p["pts"])
    key = max((p for p in packets if "K" in p["flags"] and p["pos"] <= shown["pos"]), key=lambda p: p["pos"])
    frames = sum(p["size"] for p in packets if key["pos"] <= p["pos"] <= shown["pos"])
    # The container's header and index: what precedes the first packet (a
    # faststart moov, WebM's header) plus what follows the last (a moov at the
    # end, WebM's cues).
    first_data = min(p["pos"] for p in packets)
    last_data = max(p["pos"] + p["size"] for p in packets)
    index = first_data + (os.path.getsize(path) - last_data)
    return index + frames


def allowed(need):
    """The bytes target: 1.5 times what is needed plus one read-ahead block
    (thumbd's first read and read-ahead step, 16 KiB)."""
    return f"<= 1.5 + 16 KiB = {(1.5 * need + 16384) / 1024:.0f} KiB"


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url], check=True,
                         capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def median(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer runs, shorter load tests")
    ap.add_argument("--write", help="write the table to this Markdown file")
    args = ap.parse_args()
    runs = 3 if args.quick else args.runs
    load_secs = 5 if args.quick else 10
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first: cargo build --release")
    make_videos()
    nginx = Nginx()
    proxy = DelayProxy(nginx.port)
    thumbd = Thumbd(nginx.port, proxy.port)
    rows = []

    def row(name, ours, theirs, unit, ratio_note, target):
        ratio = ours / theirs if theirs else float("nan")
        rows.append((name, ours, theirs, unit, ratio, ratio_note, target))
        print(f"{name:58} thumbd {ours:10.3f} {unit:6} | other {theirs:10.3f} | ratio {ratio:6.2f} ({ratio_note}) target {target}",
              flush=True)

    try:
        thumbd.start()
        width = 320
        # 1. Cold render latency vs the ffmpeg CLI; 2. bytes and requests.
        cases = [("large.mp4", "1080p H.264, 10 s GOP", 30.0, 35.0),
                 ("h264_720p_gop8_bframes.mp4", "720p H.264, 8 s GOP, B-frames", 16.0, 20.0),
                 ("vp9_720p_60s.webm", "720p VP9 (WebM)", 20.0, 25.0)]
        for key, label, t_key, t_mid in cases:
            for t, where in [(t_key, "keyframe"), (t_mid, "mid-GOP")]:
                ours, cli, our_req, our_bytes, cli_req, cli_bytes = [], [], [], [], [], []
                for _ in range(runs):
                    thumbd.restart()
                    mark = nginx.log_size()
                    ours.append(fetch(thumbd.url("nginx", key, f"width={width}&timeStamp={t}"))[0])
                    n, b = nginx.traffic(mark)
                    our_req.append(n)
                    our_bytes.append(b)
                    mark = nginx.log_size()
                    cli.append(ffmpeg_cli(f"http://127.0.0.1:{nginx.port}/{key}", t, width))
                    n, b = nginx.traffic(mark)
                    cli_req.append(n)
                    cli_bytes.append(b)
                row(f"1. cold render, {label}, {where} ({t:g} s)", median(ours) * 1e3, median(cli) * 1e3, "ms",
                    "thumbd / ffmpeg CLI", "<= 0.5")
                need = needed_bytes(os.path.join(VIDEOS, key), t)
                row(f"2. bytes fetched, {label}, {where}", median(our_bytes) / 1024, need / 1024, "KiB",
                    f"thumbd / needed; CLI fetched {median(cli_bytes) / 1024:.0f} KiB", allowed(need))
                row(f"2. requests, {label}, {where}", median(our_req), median(cli_req), "req",
                    "thumbd / ffmpeg CLI", "<= 3 requests")
        # moov at the end.
        ours_req = []
        for _ in range(runs):
            thumbd.restart()
            mark = nginx.log_size()
            fetch(thumbd.url("nginx", "large_moov_end.mp4", f"width={width}&timeStamp=30"))
            ours_req.append(nginx.traffic(mark)[0])
        row("2. requests, 1080p H.264 moov at the end, keyframe", median(ours_req), 4, "req", "thumbd / allowed", "<= 4 requests")
        # WebM past its last cue: FFmpeg's Matroska seek reads on to the end.
        last = []
        for _ in range(runs):
            thumbd.restart()
            mark = nginx.log_size()
            fetch(thumbd.url("nginx", "vp9_720p_60s.webm", f"width={width}&timeStamp=55"))
            last.append(nginx.traffic(mark))
        need = needed_bytes(os.path.join(VIDEOS, "vp9_720p_60s.webm"), 55.0)
        row("2. bytes fetched, 720p VP9 (WebM), in its last GOP", median(b for _, b in last) / 1024, need / 1024, "KiB",
            f"thumbd / needed; {median(n for n, _ in last):g} requests", allowed(need))

        # 3. Cache hits vs nginx serving the same bytes.
        thumbd.restart()
        hit_url = thumbd.url("nginx", "large.mp4", "width=320&timeStamp=30")
        _, body = fetch(hit_url)
        with open(os.path.join(VIDEOS, "thumb.webp"), "wb") as f:
            f.write(body)
        # Alternating short pairs, medians: on a shared machine a neighbour's
        # burst then hits both sides alike. CPU per request (the server's own
        # processes, user + system) is steadier than requests/s.
        ng_url = f"http://127.0.0.1:{nginx.port}/thumb.webp"
        hits = {"thumbd": [], "nginx": []}
        pair_secs = max(2, load_secs // 2)
        for _ in range(runs):
            for name, url, pids in (("thumbd", hit_url, lambda: [thumbd.proc.pid]),
                                    ("nginx", ng_url, nginx.pids)):
                cpu0 = cpu_secs(pids())
                rps, p99 = wrk(url, pair_secs)
                hits[name].append((rps, p99, (cpu_secs(pids()) - cpu0) / (rps * pair_secs) * 1e6))
        ours, theirs = ([median(x[i] for x in hits[n]) for i in range(3)] for n in ("thumbd", "nginx"))
        row("3. cache hits, requests/s at 32 connections", ours[0], theirs[0], "req/s", "thumbd / nginx", ">= 1.0")
        row("3. cache hits, p99 latency", ours[1], theirs[1], "ms", "thumbd / nginx", "<= 1.0")
        row("3. cache hits, server CPU per request", ours[2], theirs[2], "us", "thumbd / nginx", "-")

        # 4. srcset: three widths of one frame vs one render.
        one, three = [], []
        for _ in range(runs):
            thumbd.restart()
            one.append(fetch(thumbd.url("nginx", "large.mp4", "width=320&timeStamp=35"))[0])
            thumbd.restart()
            t0 = time.perf_counter()
            for w in (320, 640, 1280):
                fetch(thumbd.url("nginx", "large.mp4", f"width={w}&timeStamp=35"))
            three.append(time.perf_counter() - t0)
        row("4. srcset: 3 widths of one frame vs one render", median(three) * 1e3, median(one) * 1e3, "ms",
            "3 widths / 1 render", "<= 1.3")

        # 5. A new time in an already-seen video vs a cold render.
        cold, warm, warm_req = [], [], []
        for _ in range(runs):
            thumbd.restart()
            cold.append(fetch(thumbd.url("nginx", "large.mp4", "width=320&timeStamp=31"))[0])
            mark = nginx.log_size()
            warm.append(fetch(thumbd.url("nginx", "large.mp4", "width=320&timeStamp=51"))[0])
            warm_req.append(nginx.traffic(mark)[0])
        row("5. new time in a seen video vs cold", median(warm) * 1e3, median(cold) * 1e3, "ms",
            f"seen / cold; {median(warm_req):g} requests, index not refetched", "no index refetch")

        # 6. Distinct cold renders at full concurrency, and peak RSS.
        thumbd.restart()
        urls = [thumbd.url("nginx", "large.mp4", f"width={320 + i}&timeStamp={1 + i * 1.7:.1f}") for i in range(32)]
        cpu0 = cpu_secs([thumbd.proc.pid])
        t0 = time.perf_counter()
        threads = [threading.Thread(target=fetch, args=(u,)) for u in urls]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        cpu_ms = (cpu_secs([thumbd.proc.pid]) - cpu0) / 32 * 1e3
        rss = thumbd.peak_rss_mib()
        row("6. 32 concurrent distinct cold 1080p renders", 32 / elapsed, 32 / elapsed, "renders/s", "(absolute)", "-")
        row("6. CPU per render during them", cpu_ms, cpu_ms, "ms", "(absolute)", "-")
        row("6. peak RSS during them", rss, 600, "MiB", "thumbd / 600 MiB budget", "< 1.0")

        # 6b. RSS over 10,000 mixed requests (200 distinct renders, the rest
        # hits), 8 at a time: it should stay flat once the caches are warm.
        thumbd.restart()
        urls = [thumbd.url("nginx", "h264_720p_gop8_bframes.mp4", f"width={160 + i % 40}&timeStamp={8 * (i // 40)}")
                for i in range(200)]
        samples = []
        lock = threading.Lock()
        counter = iter(range(10_000))

        def worker():
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                fetch(urls[(i * 7919) % len(urls)])
                if i % 1000 == 999:
                    with lock:
                        samples.append((i + 1, thumbd.current_rss_mib()))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        samples.sort()
        early = samples[1][1]
        late = samples[-1][1]
        row("6. RSS after 10,000 vs after 2,000 mixed requests", late, early, "MiB",
            "later / earlier (flat is 1.0)", "flat")

        # 7. Through a source adding 20 ms per request.
        for t, where in [(30.0, "keyframe"), (35.0, "mid-GOP")]:
            ours, cli = [], []
            for _ in range(runs):
                thumbd.restart()
                ours.append(fetch(thumbd.url("slow", "large.mp4", f"width=320&timeStamp={t}"))[0])
                cli.append(ffmpeg_cli(f"http://127.0.0.1:{proxy.port}/large.mp4", t, 320))
            row(f"7. cold render, +20 ms per source request, 1080p {where}", median(ours) * 1e3, median(cli) * 1e3,
                "ms", "thumbd / ffmpeg CLI", "<= 0.5")
    finally:
        thumbd.stop()
        nginx.stop()

    if args.write:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        with open(args.write, "w") as f:
            f.write("# Benchmark results\n\n")
            f.write(f"Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; "
                    f"{time.strftime('%Y-%m-%d')}.\n\n")
            f.write(f"Command: `make bench` (`bench/bench.py --runs {runs} --write bench/RESULTS.md`). "
                    f"Medians of {runs} runs; each cold figure is a fresh thumbd process. "
                    "The ffmpeg CLI times include its process start, as a script around it pays it.\n\n")
            f.write("| measure | thumbd | other | unit | ratio | what the ratio is | target |\n|---|---:|---:|---|---:|---|---|\n")
            for name, ours, theirs, unit, ratio, note, target in rows:
                f.write(f"| {name} | {ours:.1f} | {theirs:.1f} | {unit} | {ratio:.2f} | {note} | {target} |\n")
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
