#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/TARGET, not committed): the generated
# test fixtures for the media targets, a few valid inputs for the others.
# Idempotent; corpora grow as fuzzing finds new paths.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=..
bash "$ROOT/tests/fixtures/generate.sh" "$ROOT/target/fixtures" >/dev/null
for t in url range jwt job_body config mp4_index http media; do mkdir -p "corpus/$t"; done
for f in "$ROOT"/target/fixtures/*; do
  [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ] || continue
  cp -n "$f" corpus/media/ 2>/dev/null || true
  cp -n "$f" corpus/mp4_index/ 2>/dev/null || true
done
printf 'demo/local/clip.mp4.webp' > corpus/url/path
printf 'bytes 0-99/1000' > corpus/range/basic
printf 'bytes 5-5/*' > corpus/range/unknown
printf '{"width": 320, "timestampMs": 12000, "format": "jpg", "fit": "max"}' > corpus/job_body/basic
cp -n "$ROOT/config/thumbd.toml" corpus/config/default.toml 2>/dev/null || true
printf 'eyJhbGciOiJIUzI1NiIsImtpZCI6ImsifQ.eyJzdWIiOiJhLm1wNCJ9.x' > corpus/jwt/token
