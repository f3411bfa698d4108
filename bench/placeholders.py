#!/usr/bin/env python3
"""What a placeholder (`/v1/placeholder/...json`) costs against a thumbnail
of the same frame, cold.

The video: storyboard.py's 10-minute 1080p H.264 (2 s GOPs), served by one
release thumbd from a `file:` source under two names (hard links: two
videos to thumbd's caches, the same bytes), so that each run has a cold
frame for both answers. Each run takes a fresh moment, 1.04 s into a GOP
(26 frames decoded), and asks, alternating which goes first:

- the placeholder of video A at that moment (cold: decode, then the
  placeholders), and a 320-wide WebP thumbnail of video B at the same
  moment (cold: decode, then scale and encode);
- then the same the other way round, each from the frame the first answer
  decoded: a placeholder with the frame cached (what a placeholder header
  on every thumbnail would add to each render) and a thumbnail with the
  frame cached (scale and encode only).

Reports medians over RUNS runs, and the answers' sizes.

    cargo build --release && python3 bench/placeholders.py
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storyboard  # noqa: E402  (its video, ports and waiting)

THUMBD = os.environ.get("THUMBD", storyboard.THUMBD)
RUNS = 15


def timed_get(url):
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        assert r.status == 200, url
        headers = {k.lower(): v for k, v in r.headers.items()}
    return time.perf_counter() - start, body, headers


def main():
    if not os.path.exists(THUMBD):
        sys.exit("build the release binary first: cargo build --release")
    video = storyboard.make_video()
    # Under target/, beside the video: hard links need one file system.
    work = tempfile.mkdtemp(prefix="thumbd-placeholders-", dir=os.path.dirname(storyboard.VIDEOS))
    proc = None
    try:
        for name in ("a.mp4", "b.mp4"):
            os.link(video, os.path.join(work, name))
        port = storyboard.free_port()
        cfg = os.path.join(work, "thumbd.toml")
        with open(cfg, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{port}"
demo_page = false
[jobs]
db_path = "{work}/jobs.db"
[orgs.bench.envs.files]
source = "file:{work}/{{key}}"
""")
        proc = subprocess.Popen([THUMBD, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        storyboard.wait_http(f"{base}/healthz")

        def placeholder(key, t):
            return timed_get(f"{base}/v1/placeholder/bench/files/{key}.json?timeStamp={t}")

        def thumbnail(key, t):
            return timed_get(f"{base}/v1/thumbnail/bench/files/{key}.webp?width=320&timeStamp={t}")

        # Open both videos once (the index read is not what is measured).
        placeholder("a.mp4", 0)
        thumbnail("b.mp4", 0)
        rows = {k: [] for k in ("p_cold", "t_cold", "p_warm", "t_warm", "t_encode", "p_hit")}
        sizes = []
        for run in range(RUNS):
            t = f"{20 * (run + 1) + 1.04:.2f}"
            first, second = ("p", "t") if run % 2 == 0 else ("t", "p")
            for kind in (first, second):
                if kind == "p":
                    secs, body, _ = placeholder("a.mp4", t)
                    rows["p_cold"].append(secs)
                    answer = json.loads(body)
                    lqip = answer["lqip"].split(",", 1)[1]
                    sizes.append((len(body), len(lqip) * 3 // 4, len(answer["blurhash"]),
                                  len(answer["thumbhash"])))
                else:
                    secs, _, _ = thumbnail("b.mp4", t)
                    rows["t_cold"].append(secs)
            for kind in (second, first):
                if kind == "p":
                    rows["p_warm"].append(placeholder("b.mp4", t)[0])
                else:
                    secs, _, headers = thumbnail("a.mp4", t)
                    rows["t_warm"].append(secs)
                    timing = headers.get("server-timing", "")
                    encode = [p for p in timing.split(", ") if p.startswith("encode;dur=")]
                    rows["t_encode"].append(float(encode[0].split("=")[1]) / 1000)
            rows["p_hit"].append(placeholder("a.mp4", t)[0])

        ms = {k: statistics.median(v) * 1000 for k, v in rows.items()}
        json_b, lqip_b, bh, th = (statistics.median(s[i] for s in sizes) for i in range(4))
        print(f"video: {storyboard.VIDEO} (1080p H.264, 2 s GOPs), frames 1.04 s into a GOP; "
              f"median of {RUNS} fresh moments, one release thumbd, `file:` source")
        print("| | placeholder (`.json`) | thumbnail (`.webp?width=320`) |")
        print("|---|---|---|")
        print(f"| cold: fetch, decode, then the answer | {ms['p_cold']:.1f} ms | {ms['t_cold']:.1f} ms |")
        print(f"| frame cached (decoded for the other answer) | {ms['p_warm']:.1f} ms | "
              f"{ms['t_warm']:.1f} ms (encode {ms['t_encode']:.1f} ms) |")
        print(f"| cache hit | {ms['p_hit']:.2f} ms | |")
        print(f"answer: {json_b:.0f} bytes of JSON (LQIP {lqip_b:.0f} bytes of WebP, "
              f"BlurHash {bh:.0f} characters, ThumbHash {th:.0f} characters of base64)")
        print(f"placeholder with the frame cached / thumbnail with the frame cached: "
              f"{ms['p_warm'] / ms['t_warm']:.2f}x; cold placeholder / cold thumbnail: "
              f"{ms['p_cold'] / ms['t_cold']:.2f}x")
    finally:
        if proc:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
