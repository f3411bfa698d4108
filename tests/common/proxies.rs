//! The real proxies the deployment tests put in front of thumbd: nginx and
//! Varnish from Debian's packages, run with the shipped configurations
//! from deploy/, adjusted only by the substitutions their comments document.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Proc;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program from PATH or the sbin folders (varnishd and nginx live in
/// /usr/sbin, which is not on a Debian user's PATH). Fails, naming the
/// package, when it is not installed.
pub fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: `make test` installs it \
                 (Debian package {package}), or `apt-get install {package}`"
            )
        })
}

/// `text` with `from` replaced by `to`, outside `#` comment lines, where
/// `from` must occur exactly once (so the documented substitution is
/// unambiguous).
pub fn substitute(text: &str, from: &str, to: &str) -> String {
    let is_code = |line: &&str| !line.trim_start().starts_with('#');
    let found: usize = text
        .lines()
        .filter(is_code)
        .map(|l| l.matches(from).count())
        .sum();
    assert_eq!(found, 1, "`{from}` should occur once outside comments");
    text.lines()
        .map(|l| {
            if is_code(&l) {
                l.replace(from, to)
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// deploy/nginx/thumbd-cache.conf's text `conf` listening on loopback
/// `port`, its cache in `cache_dir`: the substitutions its header documents
/// (the upstream is each test's own).
pub fn cache_conf_at(conf: &str, port: u16, cache_dir: &Path) -> String {
    let conf = substitute(conf, "listen 8081;", &format!("listen 127.0.0.1:{port};"));
    substitute(
        &conf,
        "/var/cache/nginx/thumbd",
        &cache_dir.display().to_string(),
    )
}

/// nginx in the foreground with a minimal nginx.conf whose `http` block
/// includes `includes` (files already written in `dir`), its temporary
/// folders, pid and logs in `dir`.
pub fn nginx(dir: &Path, includes: &[&str]) -> Proc {
    let nginx = tool("nginx", "nginx-light");
    fs::create_dir_all(dir.join("logs")).unwrap();
    let d = dir.display();
    let includes: String = includes
        .iter()
        .map(|f| format!("    include {d}/{f};\n"))
        .collect();
    fs::write(
        dir.join("nginx.conf"),
        format!(
            r#"
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{includes}}}
"#
        ),
    )
    .unwrap();
    Proc::spawn(
        "nginx",
        Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"]),
        dir.join("nginx.log"),
    )
}
