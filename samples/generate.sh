#!/usr/bin/env bash
# Regenerates the sample videos served by the embedded default config
# (`make run`): small, so they live in the repository. Needs the ffmpeg CLI.
set -euo pipefail
cd "$(dirname "$0")"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
# A 10 s landscape clip with a running clock, H.264 in a faststart MP4.
ff -f lavfi -i "testsrc2=s=640x360:r=25:d=10" -c:v libx264 -preset slow -crf 30 -g 50 \
  -pix_fmt yuv420p -movflags +faststart demo.mp4
# The same picture recorded "on a phone": stored sideways, turned by metadata.
ff -f lavfi -i "testsrc2=s=360x640:r=25:d=6,transpose=1" -c:v libx264 -preset slow -crf 30 -g 50 \
  -pix_fmt yuv420p .portrait_raw.mp4
ff -i .portrait_raw.mp4 -c copy -metadata:s:v:0 rotate=90 portrait.mp4
rm -f .portrait_raw.mp4
# VP9 in WebM.
ff -f lavfi -i "testsrc=s=480x270:r=25:d=6" -c:v libvpx-vp9 -b:v 150k -deadline good -cpu-used 4 \
  -g 50 -pix_fmt yuv420p clip.webm
ls -l demo.mp4 portrait.mp4 clip.webm
