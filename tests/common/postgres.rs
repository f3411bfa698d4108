//! A throwaway PostgreSQL server for a test: Debian's binaries (the newest
//! of /usr/lib/postgresql/*/bin), a fresh cluster in a temp folder, on a
//! free loopback port with password authentication, killed and removed on
//! drop (also when the test panics). PostgreSQL refuses to run as root, so
//! as root it runs as the `postgres` user the Debian package creates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{free_port, Proc};

/// The password of the `postgres` user in test servers.
pub const PASSWORD: &str = "test-password-7f3a";

/// A running server; its database `thumbd` is empty at start.
pub struct Postgres {
    pub port: u16,
    // Dropped first: the server stops before its folder is removed.
    server: Proc,
    dir: tempfile::TempDir,
}

/// The newest installed /usr/lib/postgresql/<version>/bin.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (make test-deps installs Debian's postgresql)")
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/postgres")
        .1
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program` with `args`, as the `postgres` user when this is root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Creates a cluster and starts its server; returns once it accepts
    /// connections (bounded: 60 s) and the database exists.
    pub async fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "chown to the postgres user (created by Debian's postgresql package)"
            );
        }
        let out = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--auth-local=trust",
            ])
            .args(["--auth-host=scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut cmd = command(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        let server = Proc::spawn("postgres", &mut cmd, dir.path().join("postgres.log"));
        let pg = Postgres { port, server, dir };
        let admin = pg.connect("postgres").await;
        admin
            .batch_execute("CREATE DATABASE thumbd")
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE: {e}"));
        pg
    }

    /// Connects to `db` through the server's socket (trusted), waiting
    /// until it accepts connections.
    async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        let conninfo = format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.path().display(),
            self.port
        );
        loop {
            match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return client;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("PostgreSQL did not come up: {e}\n{}", self.server.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:port/thumbd`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/thumbd",
            self.port
        )
    }

    /// A client of the `thumbd` database, for looking at rows directly.
    pub async fn client(&self) -> tokio_postgres::Client {
        self.connect("thumbd").await
    }
}
