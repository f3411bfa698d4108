//! The demo page at `/` in a real browser: the thumbd binary with its embedded
//! default config serves it, and tests/browser/demo.test.mjs drives headless
//! Chromium through it (every picture loads at the width its URL asks, at 1x
//! and 2x; the URL builder shows a thumbnail with its headers and a problem
//! for a bad request; nothing is asked of another origin) and saves a
//! screenshot to target/browser/demo.png.
//!
//! Needs node, Debian's chromium and `npm ci --prefix tests/browser`, which
//! `make test` provides; without them this test fails and says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Debian's Chromium; `CHROMIUM=/path` picks another (the script reads it too).
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The last 30 lines of a log, for failure messages.
fn log_tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// What the browser test needs and `make test` installs.
fn check_prerequisites() {
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").output();
    match node {
        Ok(out) if out.status.success() => {
            // playwright-core 1.61 runs on Node 18 (Debian 12's) and later.
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let major: u32 = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if major < 18 {
                missing.push(format!("node 18 or later (found {version})"));
            }
        }
        _ => missing.push("node (Debian's nodejs and npm packages)".to_owned()),
    }
    if !root()
        .join("tests/browser/node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("tests/browser/node_modules (npm ci --prefix tests/browser)".to_owned());
    }
    if !chromium().is_file() {
        missing.push(format!(
            "{} (Debian's chromium package)",
            chromium().display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the browser test cannot run, missing: {}. Run `make test`, which installs them.",
        missing.join(", ")
    );
}

#[tokio::test]
async fn demo_page_works_in_headless_chromium() {
    check_prerequisites();
    let out = root().join("target/browser");
    std::fs::create_dir_all(&out).unwrap();
    let screenshot = out.join("demo.png");
    let _ = std::fs::remove_file(&screenshot);

    // No --config: the embedded default (org demo, envs local and private,
    // the demo page on).
    let port = common::free_port();
    let server = common::Proc::thumbd(None, port, &[], out.join("thumbd.log")).await;
    let started = Instant::now();
    let run = Command::new("node")
        .arg(root().join("tests/browser/demo.test.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&screenshot)
        .current_dir(root())
        .output()
        .expect("run node tests/browser/demo.test.mjs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the browser test failed ({}):\n{stdout}{stderr}\nthumbd's log ends:\n{}",
        run.status,
        log_tail(&server.log())
    );
    print!("{stdout}");
    println!("browser test took {:.1} s", started.elapsed().as_secs_f64());
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot at {} ({size} bytes)",
        screenshot.display()
    );
    drop(server);
}
