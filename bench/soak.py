#!/usr/bin/python3
"""thumbd soak test: the release build under a realistic mix of traffic for a
bounded time, on loopback (127.0.0.1) only, then a report and checks.

It starts nginx serving generated test videos (Range support is built in)
and target/release/thumbd with its own config in target/soak/run, renders the
hit set once, then runs these clients together until the time is up:

  hit         a Zipf-distributed set of 200 cached URLs (most of the traffic)
  miss        new times and widths, never asked before (a few per second)
  srcset      3 widths of one new frame, asked at once
  signed_*    a signed environment: good tokens (200), bad ones (401/403)
  job_*       job submissions (a trickle) and polls of their state
  bad         bad widths and keys, unknown env and video, a non-video, wrong methods
  upload      a small video uploaded (multipart) now and then
  slow_*      sockets sending a head a byte a second or nothing (thumbd must
              close them after its 10 s header timeout), or reading slowly

Every request has a client timeout (30 s) and a class deadline (hits 1 s,
others 25 s); every loop is bounded in count and time; every process started
is killed on exit, Ctrl-C, SIGTERM and errors included. Printed, and written
to target/soak/report.json: per class the requests, answers, client errors
and p50/p99/max latency; thumbd's RSS after the warm-up (30 s or 20% of the
run), at the middle, at the end, and its peak; pass/fail checks (exit status
1 if one fails); a Markdown table for bench/RESULTS.md.

Usage: bench/soak.py [--minutes 10] [--quick] [--hit-rate 300]
(`make soak`; --quick runs 1 minute). Needs nginx-light and the ffmpeg CLI.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "soak")
VIDEOS = os.path.join(WORK, "videos")
RUN = os.path.join(WORK, "run")
THUMBD = os.path.join(ROOT, "target", "release", "thumbd")
ORG, API_KEY = "soak", "soak-api-key-0123456789"
SECRET = "soak-signing-secret-0123456789-abcdefghijklmnop"
CLIENT_TIMEOUT, HIT_DEADLINE, DEADLINE = 30.0, 1.0, 25.0
HEADER_TIMEOUT = 10  # thumbd's server.header_read_timeout_secs (the default)
# name, seconds, size, ffmpeg encoding arguments (of a testsrc2 pattern)
VIDEO_SPECS = [
    ("a.mp4", 20, "640x360", ["-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-movflags", "+faststart"]),
    ("b.mp4", 15, "1280x720", ["-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "125"]),  # moov at end
    ("c.webm", 20, "640x360", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "100"]),
    ("d.mp4", 30, "1280x720", ["-c:v", "libx264", "-preset", "veryfast", "-g", "75", "-movflags", "+faststart"]),
]
DURATION = {name: secs for name, secs, _, _ in VIDEO_SPECS}
HIT_WIDTHS = (120, 240, 320, 480, 640)
UPLOAD = os.path.join(WORK, "upload.mp4")
PROCS = []  # every process started (nginx, thumbd)


def ff(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, tries=200):
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def status_kib(pid, field):
    """VmRSS, VmHWM... of /proc/PID/status, KiB."""
    with open(f"/proc/{pid}/status") as f:
        return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), 0)


def make_videos():
    """The test videos (made once, kept in target/soak/videos), the upload, and a non-video."""
    os.makedirs(VIDEOS, exist_ok=True)
    for name, secs, size, enc in VIDEO_SPECS:
        out = os.path.join(VIDEOS, name)
        if not os.path.exists(out):
            tmp = os.path.join(VIDEOS, ".tmp." + name)
            ff("-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d={secs}", *enc, "-pix_fmt", "yuv420p", tmp)
            os.rename(tmp, out)
    if not os.path.exists(UPLOAD):
        ff("-f", "lavfi", "-i", "mandelbrot=s=320x180:r=25", "-t", "3", "-c:v", "libx264", "-preset", "veryfast",
           "-pix_fmt", "yuv420p", "-movflags", "+faststart", UPLOAD + ".tmp.mp4")
        os.rename(UPLOAD + ".tmp.mp4", UPLOAD)
    with open(os.path.join(VIDEOS, "notavideo.mp4"), "w") as f:
        f.write("this is not a video\n" * 500)


def start(cmd, log, env=None):
    """A child in its own process group (so that it and its children can be
    killed together), remembered in PROCS to be stopped on exit."""
    PROCS.append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True, env=env))
    return PROCS[-1]


def stop_all(grace=30):
    """SIGTERM to each process started, newest first; SIGKILL to its group after `grace` seconds."""
    for proc in reversed(PROCS):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_nginx():
    """nginx serving VIDEOS on loopback (Range support is built in)."""
    port, prefix = free_port(), os.path.join(RUN, "nginx")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; error_log {prefix}/logs/error.log; pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types {{ video/mp4 mp4; video/webm webm; }}
  server {{ listen 127.0.0.1:{port}; root {VIDEOS}; }}
}}
""")
    proc = start(["nginx", "-p", prefix, "-c", conf, "-g", "daemon off;"], subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/a.mp4")
    return proc, port


SMALL_CACHES = """[cache]
# Production-shaped but small, so that every bounded cache is full within
# the warm-up and what RSS does after it is what the process does, not a
# cache still filling (defaults: 512 MiB thumbnails, 128 MiB frames).
max_bytes = 8388608
frame_max_bytes = 33554432
source_max_bytes = 67108864
"""


def start_thumbd(nginx_port, binary=None, default_caches=False, env=None):
    port, config = free_port(), os.path.join(RUN, "thumbd.toml")
    caches = "" if default_caches else SMALL_CACHES
    with open(config, "w") as f:
        f.write(f"""
[server]
listen = "127.0.0.1:{port}"
public_base_url = "http://127.0.0.1:{port}"
shutdown_delay_secs = 0
{caches}
[render]
timeout_secs = 20
[jobs]
db_path = "jobs.db"
[orgs.{ORG}]
api_keys = ["{API_KEY}"]
default_env = "http"
webhook_secret = "soak-webhook-secret-0123456789"
[orgs.{ORG}.envs.http]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
[orgs.{ORG}.envs.private]
source = "http://127.0.0.1:{nginx_port}/{{key}}"
access = "signed"
[orgs.{ORG}.envs.up]
source = "store:up"
[[orgs.{ORG}.signing_keys]]
kid = "soak"
alg = "HS256"
secret = "{SECRET}"
""")
    proc = start([binary or THUMBD, "serve", "--config", config], open(os.path.join(RUN, "thumbd.log"), "w"),
                 env=env)
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, port


def jwt(key, exp_in=3600, secret=SECRET, kid="soak"):
    """An HS256 token for video `key` of the private environment."""
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    claims = {"sub": key, "aud": "thumbnail", "org": ORG, "env": "private", "exp": int(time.time()) + exp_in}
    signed = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    return signed + "." + b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def thumb(env, key, width, t, ext="webp"):
    return f"/v1/thumbnail/{ORG}/{env}/{key}.{ext}?width={width}&timeStamp={t}"


class Stats:
    """Every answer and client error, per class."""

    def __init__(self):
        self.lock = threading.Lock()
        self.status, self.errors, self.cache = defaultdict(Counter), defaultdict(Counter), defaultdict(Counter)
        self.lat = defaultdict(list)
        self.late, self.bad_5xx, self.notes = Counter(), Counter(), Counter()
        self.unexpected = defaultdict(Counter)  # class -> "what happened" -> times
        self.error_detail = Counter()

    def record(self, cls, status, secs, want=None, what="", headers=None, error=None):
        """An answer (`status`), or a client error (`error`, with what led to it)."""
        headers = headers or {}
        with self.lock:
            self.lat[cls].append(secs)
            if secs > (HIT_DEADLINE if cls == "hit" else DEADLINE):
                self.late[cls] += 1
            if error:
                self.errors[cls][error[0]] += 1
                self.error_detail[f"{cls}: {error[0]} on {what}{error[1]}"] += 1
                return
            self.status[cls][status] += 1
            if "x-thumbnail-cache" in headers:
                self.cache[cls][headers["x-thumbnail-cache"]] += 1
            if status == 503 and headers.get("retry-after"):
                return  # overload, answered as documented: not an error
            if isinstance(status, int) and status >= 500:
                self.bad_5xx[cls] += 1
            if want is not None and status not in want:
                self.unexpected[cls][f"{status} (wanted {'/'.join(map(str, want))}) for {what}"] += 1


class Soak:
    """The run's clock, its stop flag and what the clients share."""

    def __init__(self, port, seconds, hit_rate):
        self.port, self.seconds, self.hit_rate = port, seconds, hit_rate
        self.stats, self.stop = Stats(), threading.Event()
        self.lock = threading.Lock()
        self.seen = set()  # every (key, width, time) asked for, so that misses are new
        self.jobs = {}  # jobId -> its last known status
        self.rss = []  # (seconds into the run, VmRSS KiB)
        self.cached = []  # KiB the caches hold, at each RSS sample
        self.begin()

    def begin(self):
        self.t0 = time.monotonic()
        self.end = self.t0 + self.seconds

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.end

    def pause(self, secs):
        self.stop.wait(max(0.0, min(secs, self.end - time.monotonic())))

    def loop(self, interval, fn, jitter=0.5):
        """Calls fn(a Client) every `interval` seconds (with jitter) until the
        time is up, and at most twice as often as the duration allows."""
        c = Client(self)
        for _ in range(int(2 * self.seconds / interval) + 2):
            if not self.running():
                break
            started = time.monotonic()
            fn(c)
            self.pause(interval * random.uniform(1 - jitter, 1 + jitter) - (time.monotonic() - started))
        c.close()

    def new_point(self, widths=(None,)):
        """A video key and a time never asked for before at any of these widths
        (None: one random width), and the widths."""
        with self.lock:
            while True:
                k = random.choice(list(DURATION))
                t = round(random.uniform(0.5, DURATION[k] - 0.5), 3)
                ws = [w or random.randint(100, 1279) for w in widths]
                if not any((k, w, t) in self.seen for w in ws):
                    self.seen.update((k, w, t) for w in ws)
                    return k, t, ws

    def add_job(self, doc):
        with self.lock:
            self.jobs.setdefault(doc["jobId"], doc["status"])


class Client:
    """One keep-alive connection, as a browser or CDN keeps one. It is
    reopened after an error, and before it idles past the server's header
    timeout (which closes idle keep-alive connections too)."""

    def __init__(self, soak):
        self.soak, self.conn, self.last, self.prev = soak, None, 0.0, None

    def request(self, cls, method, path, want=(200,), headers=None, body=None, what=None):
        what = what or f"{method} {path.split('?')[0]}"
        if self.conn is None or time.monotonic() - self.last > HEADER_TIMEOUT / 2:
            self.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.soak.port, timeout=CLIENT_TIMEOUT)
        started = time.monotonic()
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            kind = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
            after = f", on a connection whose previous answer was {self.prev}" if self.prev else ", a new connection"
            self.soak.stats.record(cls, None, time.monotonic() - started, what=what, error=(kind, after))
            self.close()
            return None, {}, b""
        self.last = time.monotonic()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        self.soak.stats.record(cls, resp.status, self.last - started, want, what, hdrs)
        self.prev = f"{resp.status} to {what}"
        if resp.will_close:
            self.close()
        return resp.status, hdrs, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn, self.prev = None, None


def hit_urls():
    """200 URLs (4 videos x 10 times x 5 widths), shuffled, with Zipf weights (s = 1.1)."""
    urls = [thumb("http", k, w, t) for k in DURATION for t in range(1, 11) for w in HIT_WIDTHS]
    random.Random(7).shuffle(urls)
    return urls, [1 / rank ** 1.1 for rank in range(1, len(urls) + 1)]


def prewarm(soak, urls, frames=120):
    """Each URL asked once, 2 at a time, so that the hit class sees only hits;
    then `frames` new frames, so that the decoded-frame cache (32 MiB here) is
    full, as it stays under the run's misses, before the warm-up's RSS."""
    with soak.lock:
        soak.seen.update((k, w, t) for k in DURATION for t in range(1, 11) for w in HIT_WIDTHS)
    urls = urls + [thumb("http", k, w, t) for k, t, (w,) in (soak.new_point() for _ in range(frames))]

    def one(chunk):
        c = Client(soak)
        for u in chunk:
            c.request("prewarm", "GET", u)
        c.close()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, [urls[0::2], urls[1::2]]))


def hits(soak, urls, weights, workers):
    soak.loop(workers / soak.hit_rate, lambda c: c.request("hit", "GET", random.choices(urls, weights)[0]), 0.3)


def misses(soak):
    def one(c):
        k, t, (w,) = soak.new_point()
        c.request("miss", "GET", thumb("http", k, w, t))
    soak.loop(0.6, one)


def srcset(soak):
    """3 widths of a new frame at once, on 3 connections, as a browser asks for a srcset."""
    clients, widths = [Client(soak) for _ in range(3)], (320, 640, 960)
    with ThreadPoolExecutor(3) as pool:
        def one(_):
            k, t, _ = soak.new_point(widths)
            list(pool.map(lambda c, w: c.request("srcset", "GET", thumb("http", k, w, t)), clients, widths))
        soak.loop(3.0, one)
    for c in clients:
        c.close()


def signed(soak):
    keys = list(DURATION)

    def one(c):
        k, t = random.choice(keys), random.randint(1, 5)
        path = thumb("private", k, 320, t)
        c.request("signed_ok", "GET", f"{path}&token={jwt(k)}", what="a good token")
        case, token, want = random.choice([
            ("a wrong signature", jwt(k, secret=SECRET[::-1]), 401),
            ("an expired token", jwt(k, exp_in=-3600), 401),
            ("an unknown kid", jwt(k, kid="nope"), 401),
            ("a token of another video", jwt(random.choice([o for o in keys if o != k])), 403),
            ("no token", None, 401),
            ("a malformed token", "not.a.jwt", 401)])
        c.request("signed_bad", "GET", path + (f"&token={token}" if token else ""), (want,), what=case)
    soak.loop(0.25, one)


def jobs(soak):
    hdrs = {"X-Api-Key": API_KEY, "Content-Type": "application/json"}

    def one(c):
        k, t, (w,) = soak.new_point()
        if random.random() < 0.2:  # a request made before: the same job, 200 once completed
            k, t, w = random.choice(list(DURATION)), 2.0, 320
        status, _, data = c.request("job_submit", "POST", f"/v1/api/{ORG}/edge-ids/{k}/thumbnails", (200, 202),
                                    hdrs, json.dumps({"width": w, "timestampMs": int(t * 1000)}), "a job")
        if status in (200, 202):
            soak.add_job(json.loads(data)["body"])
    soak.loop(1.0, one)


def poll_jobs(soak, until):
    """Polls unfinished jobs (20 at most a round, every 0.5 s) until all are
    finished after the run, or `until` (monotonic)."""
    c = Client(soak)
    for _ in range(int((until - time.monotonic()) / 0.5) + 2):
        if soak.stop.is_set() or time.monotonic() >= until:
            break
        with soak.lock:
            pending = [j for j, s in soak.jobs.items() if s != "completed" and not s.startswith("failed")][:20]
        if not pending and not soak.running():
            break
        for job in pending:
            status, _, data = c.request("job_poll", "GET", f"/v1/api/{ORG}/thumbnails/{job}", (200, 202),
                                        {"X-Api-Key": API_KEY}, what="a job's state")
            if status in (200, 202) or (status is not None and status != 503):
                with soak.lock:
                    soak.jobs[job] = json.loads(data)["body"]["status"] if status in (200, 202) else f"failed {status}"
        soak.stop.wait(0.5)
    c.close()


BAD = [  # what, method, path, the status wanted
    ("width 0", "GET", thumb("http", "a.mp4", 0, 1), 400),
    ("width 5000", "GET", thumb("http", "a.mp4", 5000, 1), 400),
    ("width abc", "GET", thumb("http", "a.mp4", "abc", 1), 400),
    ("time abc", "GET", thumb("http", "a.mp4", 320, "abc"), 400),
    ("format gif", "GET", thumb("http", "a.mp4", 320, 1, ext="gif"), 400),
    ("a key with ..", "GET", thumb("http", "x/../a.mp4", 320, 1), 400),
    ("a key with //", "GET", thumb("http", "x//a.mp4", 320, 1), 400),
    ("a key with %2e%2e", "GET", thumb("http", "%2e%2e/a.mp4", 320, 1), 400),
    ("a key with %2f", "GET", thumb("http", "x%2fa.mp4", 320, 1), 400),
    ("an unknown env", "GET", thumb("nope", "a.mp4", 320, 1), 404),
    ("an unknown org", "GET", "/v1/thumbnail/nope/http/a.mp4.webp?width=320", 404),
    ("an unknown video", "GET", thumb("http", "missing.mp4", 320, 1), 404),
    ("a non-video", "GET", thumb("http", "notavideo.mp4", 320, 1), 415),
    ("POST to a thumbnail", "POST", thumb("http", "a.mp4", 320, 1), 405),
    ("DELETE of a thumbnail", "DELETE", thumb("http", "a.mp4", 320, 1), 405),
    ("GET of the uploads", "GET", f"/v1/api/{ORG}/uploads", 405),
    ("a job without API key", "POST", f"/v1/api/{ORG}/edge-ids/a.mp4/thumbnails", 401),
    ("an upload with a wrong API key", "UPLOAD", f"/v1/api/{ORG}/uploads", 401),
    ("an unknown endpoint", "GET", "/v1/nothing", 404),
]


def upload_request(api_key, time_secs):
    """Headers and multipart body of an upload of UPLOAD."""
    boundary = "soak-boundary-" + "".join(random.choices("0123456789abcdef", k=16))
    with open(UPLOAD, "rb") as f:
        video = f.read()
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in (("time", time_secs), ("size", "320x180")))
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="upload.mp4"\r\n'
             f"Content-Type: video/mp4\r\n\r\n").encode() + video + f"\r\n--{boundary}--\r\n".encode()
    return {"X-Api-Key": api_key, "Content-Type": f"multipart/form-data; boundary={boundary}"}, body


def bad_inputs(soak):
    n = iter(range(10 ** 9))

    def one(c):
        what, method, path, want = BAD[next(n) % len(BAD)]
        hdrs, body = {"Content-Type": "application/json"}, b'{"width": 320, "timestampMs": 1000}'
        if method == "UPLOAD":
            method, (hdrs, body) = "POST", upload_request("wrong-api-key-0123456789", 1)
        c.request("bad", method, path, (want,), *((hdrs, body) if method == "POST" else ()), what=what)
    soak.loop(0.3, one, jitter=0.2)


def uploads(soak):
    def one(c):
        hdrs, body = upload_request(API_KEY, round(random.uniform(0.2, 2.8), 2))
        status, _, data = c.request("upload", "POST", f"/v1/api/{ORG}/uploads", (200, 202), hdrs, body, "an upload")
        if status in (200, 202):
            doc = json.loads(data)["body"]
            soak.add_job(doc)
            soak.stats.notes[f"uploads stored {doc.get('stored')}"] += 1
    soak.loop(max(5.0, soak.seconds / 30), one, jitter=0.2)


def slow_heads(soak, idle):
    """Sends a request head one byte a second (or nothing, `idle`); thumbd
    must close the connection after its header timeout."""
    head = f"GET {thumb('http', 'a.mp4', 320, 1)} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + "z" * 100
    cls = "slow_idle" if idle else "slow_header"

    def one(_):
        started, outcome = time.monotonic(), "not closed in 30 s"
        try:
            s = socket.create_connection(("127.0.0.1", soak.port), timeout=1)
        except OSError as e:
            return soak.stats.record(cls, None, time.monotonic() - started, what="connecting", error=(repr(e), ""))
        with s:
            for i in range(30):
                try:
                    if not idle:
                        s.sendall(head[i].encode())
                    data = s.recv(4096)
                    outcome = "closed" if not data else data.split(b"\r\n")[0].decode(errors="replace")
                    break
                except TimeoutError:
                    continue
                except OSError as e:
                    outcome = "closed" if isinstance(e, (ConnectionResetError, BrokenPipeError)) else repr(e)
                    break
        secs = time.monotonic() - started
        if outcome == "closed" and not HEADER_TIMEOUT - 1 <= secs <= HEADER_TIMEOUT + 5:
            outcome = f"closed after {secs:.0f} s"
        soak.stats.record(cls, outcome, secs, ("closed",), f"a head sent {'never' if idle else 'slowly'}")
    soak.loop(1.0, one, jitter=0.0)


def slow_reader(soak, path):
    """Pipelines 8 requests for a large cached PNG and reads the answers at
    64 KiB/s, for 20 s at most a connection."""
    def one(_):
        started, got, first = time.monotonic(), 0, b""
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # before connecting: a small window
                s.settimeout(CLIENT_TIMEOUT)
                s.connect(("127.0.0.1", soak.port))
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() * 8)
                while time.monotonic() - started < 20 and soak.running() and (data := s.recv(8192)):
                    first, got = first or data, got + len(data)
                    time.sleep(0.125)
        except OSError as e:
            error = ("timeout" if isinstance(e, TimeoutError) else type(e).__name__, f" after {got} bytes")
            return soak.stats.record("slow_read", None, time.monotonic() - started, what="slow reading", error=error)
        status = first.split(b"\r\n")[0].split(b" ")
        soak.stats.record("slow_read", int(status[1]) if len(status) > 1 else "nothing", time.monotonic() - started,
                          (200,), "slow reading")
        soak.stats.notes["KiB read slowly"] += got // 1024
    soak.loop(1.0, one, jitter=0.0)


def cached_kib(port):
    """What thumbd's in-memory caches hold (thumbd_cache_memory_bytes, every cache), KiB."""
    total = 0.0
    for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode().splitlines():
        if line.startswith("thumbd_cache_memory_bytes{"):
            total += float(line.rsplit(" ", 1)[1])
    return total / 1024


def monitor(soak, pid, every):
    """Samples thumbd's RSS and what its caches hold, and asks /healthz, every `every`
    seconds; a progress line every 30 s."""
    def one(c):
        soak.cached.append(cached_kib(soak.port))
        soak.rss.append((t := time.monotonic() - soak.t0, status_kib(pid, "VmRSS")))
        c.request("health", "GET", "/healthz")
        if len(soak.rss) > 1 and int(t / 30) > int(soak.rss[-2][0] / 30):
            print(f"  {t:4.0f} s: {sum(map(len, soak.stats.lat.values()))} requests, "
                  f"RSS {soak.rss[-1][1] / 1024:.0f} MiB", flush=True)
    soak.loop(every, one, jitter=0.0)


def metrics(port):
    """A few of thumbd's counters from /metrics, summed over their labels."""
    wanted = ("renders_total", "renders_refused_total", "cache_hits_total", "cache_misses_total",
              "cache_coalesced_total", "cache_evictions_total", "cache_bytes", "source_requests_total")
    out = Counter()
    for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode().splitlines():
        if (name := line.split("{")[0].split(" ")[0].removeprefix("thumbd_")) in wanted:
            out[name] += float(line.rsplit(" ", 1)[1])
    return {k: int(v) for k, v in out.items()}


def report(soak, args, pid, healthy, warmup):
    st, mib = soak.stats, lambda secs: min(soak.rss, key=lambda s: abs(s[0] - secs))[1] / 1024
    rows = []
    for cls in ("prewarm", "hit", "miss", "srcset", "signed_ok", "signed_bad", "job_submit", "job_poll", "bad",
                "upload", "health", "slow_header", "slow_idle", "slow_read", "script"):
        if lat := sorted(st.lat.get(cls, [])):
            rows.append({"class": cls, "requests": len(lat), "answers": {str(k): v for k, v in st.status[cls].items()},
                         "client_errors": dict(st.errors[cls]), "p50_ms": lat[len(lat) // 2] * 1e3,
                         "p99_ms": lat[int(0.99 * len(lat))] * 1e3, "max_ms": lat[-1] * 1e3,
                         "past_deadline": st.late[cls], "x_thumbnail_cache": dict(st.cache[cls])})
    rss = {"warmup_mib": mib(warmup), "middle_mib": mib(soak.seconds / 2), "end_mib": mib(soak.seconds),
           "peak_mib": status_kib(pid, "VmHWM") / 1024, "samples_kib": [(round(t, 1), k) for t, k in soak.rss]}
    # Overhead: RSS less what the caches hold (thumbd_cache_memory_bytes), at each sample.
    over = [(t, (k - c) / 1024) for (t, k), c in zip(soak.rss, soak.cached)]
    at = lambda secs: min(over, key=lambda s: abs(s[0] - secs))[1]  # noqa: E731
    after = [o for t, o in over if t >= warmup]
    rss.update({"cached_end_mib": soak.cached[-1] / 1024 if soak.cached else 0.0,
                "overhead_middle_mib": at(soak.seconds / 2), "overhead_end_mib": at(soak.seconds),
                "overhead_max_mib": max(after, default=0.0), "allocator": args.label,
                "cached_kib": [round(c) for c in soak.cached]})
    with soak.lock:
        job_states = dict(Counter(soak.jobs.values()))
    unexpected = {c: dict(v) for c, v in st.unexpected.items() if v}
    n_unexpected, n_errors = sum(sum(v.values()) for v in unexpected.values()), sum(st.error_detail.values())
    checks = [
        (f"RSS flat after warm-up: end {rss['end_mib']:.0f} MiB <= 1.25 x {rss['warmup_mib']:.0f} MiB at {warmup:.0f} s",
         rss["end_mib"] <= 1.25 * rss["warmup_mib"] + rss["cached_end_mib"]),
        (f"overhead (RSS less the caches' bytes) flat: {rss['overhead_end_mib']:.0f} MiB at the end, "
         f"{rss['overhead_middle_mib']:.0f} MiB at the middle (within 5%)",
         rss["overhead_end_mib"] <= 1.05 * rss["overhead_middle_mib"]),
        (f"no 5xx other than 503 with Retry-After ({sum(st.bad_5xx.values())})", not st.bad_5xx),
        (f"no request past its class deadline, hits {HIT_DEADLINE:g} s, others {DEADLINE:g} s "
         f"({sum(st.late.values())})", not st.late),
        (f"no client errors: timeouts, connection errors ({n_errors})", not n_errors),
        (f"every answer as expected: bad input refused, slow heads closed after ~{HEADER_TIMEOUT} s "
         f"({n_unexpected} not)", not n_unexpected),
        (f"every job completed {job_states}", set(job_states) <= {"completed"}),
        ("thumbd still answers /healthz at the end", healthy),
    ]
    table = [f"Soak: `bench/soak.py --minutes {soak.seconds / 60:g}` on {os.cpu_count()} CPUs, "
             f"{time.strftime('%Y-%m-%d')}; cache hits at {args.hit_rate}/s.", "",
             "| class | requests | answers | client errors | p50 ms | p99 ms | max ms | past deadline |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r["answers"].items()))
        errors = ", ".join(f"{k}: {v}" for k, v in r["client_errors"].items()) or "0"
        table.append(f"| {r['class']} | {r['requests']} | {answers} | {errors} | {r['p50_ms']:.1f} "
                     f"| {r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['past_deadline']} |")
    table += ["", f"thumbd RSS ({args.label}): {rss['warmup_mib']:.0f} MiB after the warm-up ({warmup:.0f} s), "
                  f"{rss['middle_mib']:.0f} MiB at the middle, {rss['end_mib']:.0f} MiB at the end; "
                  f"peak {rss['peak_mib']:.0f} MiB. The caches held {rss['cached_end_mib']:.0f} MiB at the end; "
                  f"overhead (RSS less the caches' bytes) {rss['overhead_middle_mib']:.0f} MiB at the middle, "
                  f"{rss['overhead_end_mib']:.0f} MiB at the end, at most {rss['overhead_max_mib']:.0f} MiB after the "
                  f"warm-up.", "", "| check | result |", "|---|---|"]
    table += [f"| {name} | {'pass' if ok else 'FAIL'} |" for name, ok in checks]
    print("\n" + "\n".join(table) + "\n")
    for r in rows:
        if r["x_thumbnail_cache"]:
            print(f"X-Thumbnail-Cache, {r['class']}: {r['x_thumbnail_cache']}")
    for cls, items in unexpected.items():
        for what, n in items.items():
            print(f"unexpected, {cls}: {n} x {what}")
    for what, n in st.error_detail.items():
        print(f"client error, {n} x {what}")
    print(f"jobs: {job_states}; {dict(st.notes)}\nmetrics: {(mets := metrics(soak.port))}\n")
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    with open(os.path.join(WORK, "report.json"), "w") as f:
        json.dump({"minutes": soak.seconds / 60, "hit_rate": args.hit_rate, "classes": rows, "rss": rss,
                   "jobs": job_states, "unexpected": unexpected, "client_errors": dict(st.error_detail),
                   "notes": dict(st.notes), "metrics": mets, "checks": [{"check": n, "pass": ok} for n, ok in checks],
                   "markdown": "\n".join(table)}, f, indent=1)
    print(f"\nwrote {os.path.join(WORK, 'report.json')}; thumbd's log is {os.path.join(RUN, 'thumbd.log')}")
    return all(ok for _, ok in checks)


def guarded(soak, fn, args):
    """Runs a client; an exception in the script itself counts as a client error."""
    try:
        fn(*args)
    except Exception as e:
        soak.stats.record("script", None, 0.0, what=fn.__name__, error=(repr(e), ""))


def main():
    ap = argparse.ArgumentParser(description="thumbd soak test, on loopback")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the run (default 10)")
    ap.add_argument("--quick", action="store_true", help="a 1-minute run, to try it out")
    ap.add_argument("--hit-rate", type=int, default=300, help="cache hits per second, all hit clients together")
    ap.add_argument("--default-caches", action="store_true",
                    help="thumbd's default cache sizes instead of small ones that fill in the warm-up")
    ap.add_argument("--thumbd", help="the thumbd binary (default target/release/thumbd)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for thumbd (MALLOC_ARENA_MAX=2, ...)")
    ap.add_argument("--label", default="as built", help="what this run is, for the report (an allocator)")
    args = ap.parse_args()
    seconds = 60.0 if args.quick else args.minutes * 60
    if seconds < 30:
        sys.exit("--minutes: 0.5 at least")
    if not os.path.exists(THUMBD):
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    make_videos()
    shutil.rmtree(RUN, ignore_errors=True)
    os.makedirs(RUN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends the run as Ctrl-C does
    soak, ok = None, False
    try:
        _, nginx_port = start_nginx()
        env = dict(os.environ, **dict(e.split("=", 1) for e in args.env))
        thumbd, port = start_thumbd(nginx_port, args.thumbd, args.default_caches, env)
        print(f"thumbd (pid {thumbd.pid}) on 127.0.0.1:{port}, nginx on 127.0.0.1:{nginx_port}; {seconds:.0f} s",
              flush=True)
        soak = Soak(port, seconds, args.hit_rate)
        urls, weights = hit_urls()
        big_png = thumb("http", "d.mp4", 1280, 7, ext="png")
        started = time.monotonic()
        prewarm(soak, urls + [big_png])
        print(f"rendered the {len(urls) + 1} thumbnails to hit and 120 other frames in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        soak.begin()
        workers = [(hits, (soak, urls, weights, 4))] * 4 + [
            (misses, (soak,)), (srcset, (soak,)), (signed, (soak,)), (jobs, (soak,)), (bad_inputs, (soak,)),
            (poll_jobs, (soak, soak.end + DEADLINE)), (uploads, (soak,)), (slow_heads, (soak, False)),
            (slow_heads, (soak, False)), (slow_heads, (soak, True)), (slow_reader, (soak, big_png)),
            (slow_reader, (soak, big_png)), (monitor, (soak, thumbd.pid, max(1.0, seconds / 200)))]
        threads = [threading.Thread(target=guarded, args=(soak, fn, a), daemon=True) for fn, a in workers]
        for th in threads:
            th.start()
        for th in threads:  # the job poller waits for the last jobs: DEADLINE past the end at most
            th.join(max(0.0, soak.end + DEADLINE + 2 * CLIENT_TIMEOUT - time.monotonic()))
        soak.stop.set()
        if any(th.is_alive() for th in threads):
            print("some clients did not finish in time; leaving them", flush=True)
        try:
            healthy = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).status == 200
        except OSError:
            healthy = False
        ok = report(soak, args, thumbd.pid, healthy and thumbd.poll() is None, min(max(30.0, seconds / 5), seconds / 2))
    except KeyboardInterrupt:
        print("interrupted: stopping thumbd and nginx", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave thumbd running
        if soak:
            soak.stop.set()
        stop_all()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
