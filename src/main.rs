//! The `thumbd` command: parse the CLI, load the config, set up logging, and
//! hand over to the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thumbd::config::{Config, LogFormat};
use thumbd::http::access_log::{self, LogGuard, LogSink};
use thumbd::source::SourceLocation;

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("one allocator: --no-default-features --features mimalloc for mimalloc");

/// The allocator of Rust's allocations (FFmpeg's own go through libc's
/// malloc whatever this is): jemalloc by default, which keeps RSS above
/// the caches' bytes flat where glibc's malloc and mimalloc let it grow
/// (bench/RESULTS.md, "Memory at the default cache sizes").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "thumbd",
    version,
    about = "A self-hosted video thumbnail origin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve thumbnails over HTTP.
    Serve {
        /// Config file; without it, the embedded default (org `demo`, env
        /// `local`, the repository's sample videos).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, overriding `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Render one thumbnail from a file or an http(s) URL, as the server would.
    Render {
        /// A file path or an http(s) URL.
        source: String,
        /// Seconds into the video (or 25%, f120, auto, auto:30); the middle when left out.
        #[arg(long)]
        time: Option<String>,
        /// `keyframe`: the keyframe at or before the time, decoded alone.
        #[arg(long)]
        snap: Option<String>,
        #[arg(long)]
        width: Option<String>,
        #[arg(long)]
        height: Option<String>,
        /// crop, smart, contain, fill or pad (with both width and height).
        #[arg(long)]
        fit: Option<String>,
        /// webp, jpg, png or avif; by default taken from the output file's extension.
        #[arg(long)]
        format: Option<String>,
        /// 1-100 for webp and jpg.
        #[arg(long)]
        quality: Option<String>,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Config whose [render] and [fetch] limits apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a signed token (or the whole URL) for a video of a signed environment.
    Sign {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        org: String,
        #[arg(long)]
        env: String,
        /// The video key.
        #[arg(long)]
        key: String,
        /// Which of the org's signing keys.
        #[arg(long)]
        kid: String,
        /// PEM private key, for RS*, PS*, ES* and EdDSA keys (HS* keys use the configured secret).
        #[arg(long)]
        private_key: Option<PathBuf>,
        /// Lifetime of the token, seconds.
        #[arg(long, default_value_t = 3600)]
        expires_in: u64,
        /// Parameters to bind into the token: a request asking for another value is refused.
        #[arg(long)]
        width: Option<String>,
        #[arg(long)]
        height: Option<String>,
        #[arg(long)]
        time: Option<String>,
        /// `keyframe`, bound with the time.
        #[arg(long)]
        snap: Option<String>,
        #[arg(long)]
        fit: Option<String>,
        #[arg(long)]
        quality: Option<String>,
        /// Bind the output format (webp, jpg, png); also the URL's extension with --url.
        #[arg(long)]
        format: Option<String>,
        /// Print the whole thumbnail URL (with server.public_base_url) instead of the token.
        #[arg(long)]
        url: bool,
    },
    /// Check a config file and exit.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
}

fn load(config: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    })
}

/// Logs go to stderr, filtered by `THUMBD_LOG` (default `thumbd=info`), as
/// text (colour only on a terminal) or one JSON object per line.
///
/// Every line goes through one [`LogSink`]: a queue a logging thread writes
/// to stderr in batches, so under load one write(2) carries many lines; an
/// access line waits at most 20 ms for its batch, other lines are written
/// at once. It never drops a line: past 8 MiB queued, loggers wait. Access
/// lines (one per request) are formatted by hand into it, the bytes
/// `tracing`'s formatter wrote at a tenth of the cost
/// (`thumbd::http::access_log`); other lines are `tracing`'s. Keep the
/// returned guard until exit: dropping it writes what is queued.
fn init_logging(format: LogFormat) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("THUMBD_LOG")
        .unwrap_or_else(|_| "thumbd=info".into());
    let (sink, guard) = LogSink::start(std::io::stderr());
    let ansi = std::io::stderr().is_terminal();
    // Coloured text (a terminal) stays `tracing`'s: the hand-written line
    // has no colours, and a terminal is not where its cost matters.
    if format == LogFormat::Json || !ansi {
        access_log::route_access_lines(sink.clone(), format);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_ansi(ansi).init(),
    }
    guard
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` reads its config first: it may choose the log format.
    let config = match &cli.command {
        Command::Serve { config, .. } => match load(config.as_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("thumbd: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let format = match std::env::var("THUMBD_LOG_FORMAT") {
        Ok(v) => match LogFormat::parse(&v) {
            Some(f) => f,
            None => {
                eprintln!("thumbd: THUMBD_LOG_FORMAT must be \"text\" or \"json\", not {v:?}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => config.as_ref().map_or(LogFormat::Text, |c| c.log.format),
    };
    let log_guard = init_logging(format);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(run(cli.command, config));
    // A render stuck on a slow source must not hold the exit: jobs already
    // had their grace period, and unfinished ones are pending on disk.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // Queued log lines first, then the final error.
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("thumbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, loaded: Option<Config>) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, listen } => {
            let mut config = match loaded {
                Some(c) => c,
                None => load(config.as_ref())?,
            };
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
            thumbd::run(&config, listener, shutdown_signal()).await
        }
        Command::Render {
            source,
            time,
            snap,
            width,
            height,
            fit,
            format,
            quality,
            output,
            config,
        } => {
            let config = load(config.as_ref())?;
            let ext = match format {
                Some(f) => f,
                None => output
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "give --format or an output file ending in .webp, .jpg or .png"
                        )
                    })?,
            };
            let (request, _) = parse_params(&ext, time, snap, width, height, fit, quality)?;
            let location = if source.starts_with("http://") || source.starts_with("https://") {
                SourceLocation::Http(source)
            } else {
                SourceLocation::File(PathBuf::from(source))
            };
            thumbd::init_ffmpeg();
            let resolved = thumbd::setup::resolve(&config)?;
            let renderer = thumbd::setup::renderer(&config, resolved.orgs)?;
            let thumbnail = renderer
                .render(&location, request.into_request().spec)
                .await?;
            std::fs::write(&output, &thumbnail.bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
            println!(
                "{}: {}x{} {} at {:.3}s, {} bytes",
                output.display(),
                thumbnail.width,
                thumbnail.height,
                thumbnail.format.ext(),
                thumbnail.time_secs,
                thumbnail.bytes.len()
            );
            Ok(())
        }
        Command::Sign {
            config,
            org,
            env,
            key,
            kid,
            private_key,
            expires_in,
            width,
            height,
            time,
            snap,
            fit,
            quality,
            format,
            url,
        } => {
            let config = Config::load(&config)?;
            let key = thumbd::request::parse_key(&key)
                .map_err(|e| anyhow::anyhow!("--key: {}", e[0].message))?;
            let ext = format.clone().unwrap_or_else(|| "webp".into());
            let (request, query) = parse_params(&ext, time, snap, width, height, fit, quality)?;
            let pem = match &private_key {
                Some(p) => Some(
                    std::fs::read(p)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?,
                ),
                None => None,
            };
            let token = thumbd::auth::sign_token(
                &config,
                &thumbd::auth::SignRequest {
                    org: &org,
                    env: &env,
                    key: &key,
                    kid: &kid,
                    private_key_pem: pem.as_deref(),
                    expires_in_secs: expires_in,
                    bound: &request.params,
                    format: format.is_some().then_some(request.format),
                },
            )
            .map_err(anyhow::Error::msg)?;
            if url {
                let base = config.server.public_base_url.trim_end_matches('/');
                let sep = if query.is_empty() { "" } else { "&" };
                println!(
                    "{base}/v1/thumbnail/{org}/{env}/{key}.{}?{query}{sep}token={token}",
                    request.format.ext()
                );
            } else {
                println!("{token}");
            }
            Ok(())
        }
        Command::CheckConfig { config } => {
            let c = Config::load(&config)?;
            thumbd::setup::resolve(&c)?;
            let envs: usize = c.orgs.values().map(|o| o.envs.len()).sum();
            println!(
                "{}: ok ({} orgs, {envs} environments)",
                config.display(),
                c.orgs.len()
            );
            Ok(())
        }
    }
}

/// Parses picture parameters from the command line with the same rules as
/// the URL, so the CLI does exactly what a request would. Returns the parsed
/// request and the query string it came from.
fn parse_params(
    ext: &str,
    time: Option<String>,
    snap: Option<String>,
    width: Option<String>,
    height: Option<String>,
    fit: Option<String>,
    quality: Option<String>,
) -> anyhow::Result<(thumbd::request::ParsedRequest, String)> {
    let query: String = [
        ("width", width),
        ("height", height),
        ("timeStamp", time),
        ("snap", snap),
        ("fit", fit),
        ("quality", quality),
    ]
    .into_iter()
    .filter_map(|(k, v)| {
        v.map(|v| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
    })
    .collect::<Vec<_>>()
    .join("&");
    let request = thumbd::request::parse(&format!("cli/cli/video.{ext}"), Some(&query)).map_err(
        |errors| {
            let lines: Vec<_> = errors
                .iter()
                .map(|e| format!("{}: {}", e.location, e.message))
                .collect();
            anyhow::anyhow!("{}", lines.join("; "))
        },
    )?;
    Ok((request, query))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
