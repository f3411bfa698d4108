//! The `thumbd` command: parse the CLI, load the config, set up logging, and
//! hand over to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use thumbd::config::Config;
use thumbd::source::SourceLocation;

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
        /// Seconds into the video; the middle when left out.
        #[arg(long)]
        time: Option<String>,
        #[arg(long)]
        width: Option<String>,
        #[arg(long)]
        height: Option<String>,
        /// crop, contain, fill or pad (with both width and height).
        #[arg(long)]
        fit: Option<String>,
        /// webp, jpg or png; by default taken from the output file's extension.
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("THUMBD_LOG")
                .unwrap_or_else(|_| "thumbd=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("thumbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, listen } => {
            let mut config = load(config.as_ref())?;
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
            // The same parameter rules as the URL, so the CLI renders exactly
            // what a request would.
            let query: String = [
                ("timeStamp", time),
                ("width", width),
                ("height", height),
                ("fit", fit),
                ("quality", quality),
            ]
            .into_iter()
            .filter_map(|(k, v)| {
                v.map(|v| {
                    format!(
                        "{k}={}",
                        percent_encoding::utf8_percent_encode(
                            &v,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                })
            })
            .collect::<Vec<_>>()
            .join("&");
            let request = thumbd::request::parse(&format!("cli/cli/video.{ext}"), Some(&query))
                .map_err(|errors| {
                    let lines: Vec<_> = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.location, e.message))
                        .collect();
                    anyhow::anyhow!("{}", lines.join("; "))
                })?;
            let location = if source.starts_with("http://") || source.starts_with("https://") {
                SourceLocation::Http(source)
            } else {
                SourceLocation::File(PathBuf::from(source))
            };
            thumbd::init_ffmpeg();
            let renderer = thumbd::render::Renderer::new(&config)?;
            let thumbnail = renderer.render(&location, request.spec).await?;
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
        Command::CheckConfig { config } => {
            let c = Config::load(&config)?;
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
