use std::net::IpAddr;

use super::*;

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default();
    assert!(c.env("demo", "local").is_some());
}

#[test]
fn accepts_the_documented_shape() {
    let text = r#"
        [server]
        listen = "127.0.0.1:8080"
        public_base_url = "http://127.0.0.1:8080"

        [cache]
        max_bytes = 536870912

        [orgs.demo.envs.local]
        source = "file:../samples/{key}"
        access = "public"

        [orgs.acme.envs.prod]
        source = "https://videos.example.com/{key}"
        access = "public"
    "#;
    let c = Config::from_toml(text, Path::new("/etc/thumbd")).unwrap();
    assert_eq!(c.cache.max_bytes, 536870912);
    assert_eq!(c.orgs.len(), 2);
}

#[test]
fn rejects_unknown_keys() {
    let err = Config::from_toml("[server]\nlisten_addr = \"x\"\n", Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("listen_addr"), "{err}");
    let err = Config::from_toml(
        "[orgs.a.envs.b]\nsource = \"file:x/{key}\"\nsorce = 1\n",
        Path::new("."),
    )
    .unwrap_err();
    assert!(err.to_string().contains("sorce"), "{err}");
}

#[test]
fn http_limits_and_log_format_are_checked() {
    let load = |text: &str| Config::from_toml(text, Path::new("."));
    for bad in [
        "[server]\nmax_header_bytes = 4096\n",
        "[server]\nmax_header_bytes = 2000000\n",
        "[server]\nheader_read_timeout_secs = 0\n",
    ] {
        let err = load(bad).unwrap_err().to_string();
        assert!(err.contains("server."), "{bad}: {err}");
    }
    let c = load("[server]\nmax_header_bytes = 8192\n[log]\nformat = \"json\"\n").unwrap();
    assert_eq!(c.server.max_header_bytes, 8192);
    assert_eq!(c.log.format, LogFormat::Json);
    assert!(load("[log]\nformat = \"yaml\"\n").is_err());
    // The grace that used to be the jobs' own is the server's now.
    assert!(load("[jobs]\nshutdown_grace_secs = 3\n").is_err());
    assert_eq!(LogFormat::parse(" JSON "), Some(LogFormat::Json));
    assert_eq!(LogFormat::parse("xml"), None);
}

#[test]
fn client_shares_and_trusted_proxies() {
    let load = |text: &str| Config::from_toml(text, Path::new("."));
    let c = load("[render]\nqueue = 8\n").unwrap();
    assert_eq!(c.render.per_client_queue(), 2);
    assert_eq!(
        load("[render]\nqueue = 3\n")
            .unwrap()
            .render
            .per_client_queue(),
        1
    );
    let c = load("[render]\nqueue = 8\nper_client_queue = 8\n").unwrap();
    assert_eq!(c.render.per_client_queue(), 8);
    for bad in [
        "[render]\nqueue = 8\nper_client_queue = 0\n",
        "[render]\nqueue = 8\nper_client_queue = 9\n",
        "[server]\nclient_header = \"X-Forwarded-For\"\n",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
        "[server]\nclient_header = \"bad header\"\ntrusted_proxies = [\"10.0.0.1\"]\n",
        "[server]\nclient_header = \"X-Real-IP\"\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
        "[server]\nclient_header = \"X-Real-IP\"\ntrusted_proxies = [\"example.com\"]\n",
        "[orgs.a.envs.b]\nsource = \"file:x/{key}\"\nallowed_widths = [0, 320]\n",
        "[orgs.a.envs.b]\nsource = \"file:x/{key}\"\nallowed_heights = [5000]\n",
    ] {
        assert!(load(bad).is_err(), "{bad}");
    }
    let c = load(
        "[server]\nclient_header = \"CF-Connecting-IP\"\n\
         trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\n",
    )
    .unwrap();
    let [net, one, v6] = c.server.trusted_proxies[..] else {
        panic!("three")
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(net.contains(ip("10.200.3.4")) && !net.contains(ip("11.0.0.1")));
    assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
    assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
    assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::5")));
    assert!(!v6.contains(ip("10.0.0.1")));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(ip("203.0.113.9")));
    let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
    assert!(mapped.contains(ip("10.9.9.9")));
}

#[test]
fn secrets_come_from_a_value_a_variable_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "s3cr et\n").unwrap();
    std::env::set_var("THUMBD_TEST_SECRET_VAR", "from-env");
    let read = |v: Option<&str>, e: Option<&str>, f: Option<&str>| {
        read_secret(
            (
                &v.map(Into::into),
                &e.map(Into::into),
                &f.map(PathBuf::from),
            ),
            dir.path(),
            "x",
        )
    };
    assert_eq!(read(None, None, None), Ok(None));
    assert_eq!(read(Some("v"), None, None), Ok(Some("v".into())));
    assert_eq!(
        read(None, Some("THUMBD_TEST_SECRET_VAR"), None),
        Ok(Some("from-env".into()))
    );
    assert_eq!(
        read(None, None, Some("key")),
        Ok(Some("s3cr et".into())),
        "less the newline only"
    );
    assert!(read(None, Some("THUMBD_TEST_UNSET_VAR"), None)
        .unwrap_err()
        .contains("not set"));
    assert!(read(None, None, Some("missing"))
        .unwrap_err()
        .contains("cannot read"));
    assert!(read(Some("v"), None, Some("key"))
        .unwrap_err()
        .contains("at most one"));
}

#[test]
fn storyboard_tiles_are_bounded() {
    let with = |n: u64| {
        Config::from_toml(
            &format!("[pictures]\nstoryboard_max_tiles = {n}\n[orgs.a.envs.b]\nsource = \"file:x/{{key}}\"\n"),
            Path::new("."),
        )
    };
    assert!(with(1).is_ok());
    assert!(with(10_000).is_ok());
    for bad in [0, 10_001] {
        let err = with(bad).unwrap_err().to_string();
        assert!(err.contains("storyboard_max_tiles"), "{err}");
    }
}
