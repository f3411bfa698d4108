//! FFmpeg given only what thumbd needs, seen from outside: files FFmpeg
//! would open with its defaults (a playlist or a concat list disguised as
//! an MP4, a still image, a video in a codec thumbd does not document) are
//! refused with 415 through the real server, and nothing leaves for the
//! addresses they name. (The nested-open and protocol defences are shown on
//! their own, with the container list bypassed, in src/media/avio.rs.)

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{get, problem, Thumbd};

/// A listener that counts connections: what a hostile file would call.
async fn bait() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count)
}

fn ffprobe(path: &std::path::Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=format_name:stream=codec_name",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe (make test installs the ffmpeg CLI)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\n', " ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_ffmpeg_would_open_are_refused_and_call_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, calls) = bait().await;
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "playlist.mp4",
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n\
             http://127.0.0.1:{port}/seg0.ts\n#EXTINF:4.0,\ntcp://127.0.0.1:{port}\n#EXT-X-ENDLIST\n"
        ),
    );
    write(
        "variants.mp4",
        format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://127.0.0.1:{port}/v.m3u8\n"),
    );
    write(
        "list.mp4",
        format!("ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/a.mp4'\nfile 'demo.mp4'\n"),
    );
    std::fs::copy(
        common::samples().join("demo.mp4"),
        dir.path().join("demo.mp4"),
    )
    .unwrap();
    let ff = |args: &[&str]| {
        let ok = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y"])
            .args(args)
            .current_dir(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "ffmpeg {args:?}");
    };
    ff(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=64x64",
        "-frames:v",
        "1",
        "-f",
        "image2",
        "-c:v",
        "png",
        "still.mp4",
    ]);
    ff(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x64:d=1",
        "-c:v",
        "ffv1",
        "ffv1.mkv",
    ]);
    // What FFmpeg makes of the last two with its defaults: a picture and a video.
    assert_eq!(ffprobe(&dir.path().join("still.mp4")), "png png_pipe");
    assert_eq!(
        ffprobe(&dir.path().join("ffv1.mkv")),
        "ffv1 \"matroska,webm\""
    );

    let config = format!(
        "[orgs.demo.envs.files]\nsource = \"file:{}/{{key}}\"\n",
        dir.path().display()
    );
    let t = Thumbd::start(&config).await;
    let (status, _, _) = get(&t.url("/v1/thumbnail/demo/files/demo.mp4.webp?width=64")).await;
    assert_eq!(status, 200, "a documented container still renders");
    for file in [
        "playlist.mp4",
        "variants.mp4",
        "list.mp4",
        "still.mp4",
        "ffv1.mkv",
    ] {
        let (status, _, body) =
            get(&t.url(&format!("/v1/thumbnail/demo/files/{file}.webp?width=64"))).await;
        assert_eq!(status, 415, "{file}: {}", String::from_utf8_lossy(&body));
        assert_eq!(
            problem(&body)["type"],
            "urn:thumbd:problem:unsupported-media",
            "{file}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no file reached the address it names"
    );
}
