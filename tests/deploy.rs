//! The files in deploy/ against the binary they ship: the container image
//! installs every library thumbd links; the Kubernetes manifests parse, agree
//! with each other and give thumbd its whole shutdown time; the systemd unit
//! passes `systemd-analyze verify`, and its sandbox (system call filter,
//! W^X memory, address families) allows everything thumbd does while serving,
//! traced with strace.
//!
//! Tools: readelf (binutils), ldd and dpkg (Debian), /usr/bin/python3 with
//! python3-yaml, systemd-analyze (systemd), strace. `make test` installs them;
//! a missing one fails with the package to install, never skips.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_thumbd"))
}

fn read(path: &str) -> String {
    fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a tool, failing with the Debian package that provides it when it is
/// not installed.
fn run(program: &str, args: &[&str], package: &str) -> Output {
    let path = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program));
    Command::new(&path).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {program} ({e}): `make test` installs it \
                 (Debian package {package})"
        )
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// The container image.

/// Packages the runtime stage gets from debian:bookworm-slim itself
/// (Priority: required, or what apt and dpkg need): a binary may link their
/// libraries without the Dockerfile installing anything.
const BASE_IMAGE_PACKAGES: &[&str] = &[
    "libc6",      // libc, libm, ld-linux (essential)
    "libgcc-s1",  // libgcc_s (required by libc6's users; apt links it)
    "libstdc++6", // apt is written in C++
    "zlib1g",     // dpkg pre-depends on it
];

/// The stages of a Dockerfile: (FROM line, RUN commands with continuation
/// lines joined).
fn dockerfile_stages(text: &str) -> Vec<(String, Vec<String>)> {
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if logical.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let instruction = std::mem::take(&mut logical);
        let (word, rest) = instruction.split_once(' ').unwrap_or((&instruction, ""));
        match word.to_ascii_uppercase().as_str() {
            "FROM" => stages.push((rest.trim().to_owned(), Vec::new())),
            "RUN" => stages
                .last_mut()
                .expect("RUN before FROM")
                .1
                .push(rest.trim().to_owned()),
            _ => {}
        }
    }
    stages
}

/// The packages named by `apt-get install` commands in RUN lines.
fn apt_installed(runs: &[String]) -> BTreeSet<String> {
    let mut packages = BTreeSet::new();
    for run in runs {
        for command in run.split("&&").flat_map(|c| c.split(';')) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(at) = words
                .windows(2)
                .position(|w| w[0].ends_with("apt-get") && w[1] == "install")
            else {
                continue;
            };
            packages.extend(
                words[at + 2..]
                    .iter()
                    .filter(|w| !w.starts_with('-'))
                    .map(|w| w.to_string()),
            );
        }
    }
    packages
}

/// The shared libraries the binary's ELF header names (DT_NEEDED).
fn needed_libraries(bin: &Path) -> Vec<String> {
    let out = run("readelf", &["-d", bin.to_str().unwrap()], "binutils");
    assert!(out.status.success(), "readelf: {out:?}");
    stdout(&out)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split_once('[')?
                .1
                .split_once(']')
                .map(|(n, _)| n.to_owned())
        })
        .collect()
}

/// Where the dynamic loader finds each library (ldd), by soname.
fn resolved_libraries(bin: &Path) -> HashMap<String, PathBuf> {
    let out = run("ldd", &[bin.to_str().unwrap()], "libc-bin");
    assert!(out.status.success(), "ldd: {out:?}");
    let mut map = HashMap::new();
    for line in stdout(&out).lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(" => ") {
            let path = rest.split_whitespace().next().unwrap_or("");
            assert!(path.starts_with('/'), "{name} is not found: {line}");
            map.insert(name.trim().to_owned(), PathBuf::from(path));
        } else if let Some(path) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            // The loader itself: "/lib64/ld-linux-x86-64.so.2 (0x...)".
            let name = Path::new(path).file_name().unwrap().to_string_lossy();
            map.insert(name.into_owned(), PathBuf::from(path));
        }
    }
    map
}

/// The Debian package owning a file. dpkg records paths as packaged; with
/// Debian's merged /usr a library may be found under /lib but packaged under
/// /usr/lib, or the other way round, so each spelling is tried.
fn owning_package(path: &Path) -> String {
    let text = path.to_string_lossy().into_owned();
    let mut candidates = vec![text.clone()];
    if let Ok(real) = fs::canonicalize(path) {
        candidates.push(real.to_string_lossy().into_owned());
    }
    for c in candidates.clone() {
        if let Some(rest) = c.strip_prefix("/usr") {
            candidates.push(rest.to_owned());
        } else {
            candidates.push(format!("/usr{c}"));
        }
    }
    for c in &candidates {
        let out = run("dpkg", &["-S", c], "dpkg");
        if out.status.success() {
            // "libavcodec59:amd64: /usr/lib/x86_64-linux-gnu/libavcodec.so.59.37.100"
            let line = stdout(&out);
            let owners = line.lines().next().unwrap().rsplit_once(": ").unwrap().0;
            let first = owners.split(", ").next().unwrap();
            return first.split(':').next().unwrap().to_owned();
        }
    }
    panic!("no Debian package owns {text} (tried {candidates:?})");
}

#[test]
fn the_image_installs_every_library_the_binary_links() {
    let dockerfile = read("deploy/Dockerfile");
    let stages = dockerfile_stages(&dockerfile);
    assert!(stages.len() >= 2, "a build and a runtime stage: {stages:?}");
    let (runtime_from, runtime_runs) = stages.last().unwrap();
    assert!(
        runtime_from.starts_with("debian:bookworm-slim"),
        "runtime stage: {runtime_from}"
    );
    let installed = apt_installed(runtime_runs);

    // This is the test profile's binary; its DT_NEEDED list is the release
    // binary's (the same crates and features; debug info links nothing).
    // Only the libraries the binary itself names (DT_NEEDED) are checked.
    // ldd also lists what those libraries pull in (FFmpeg's codecs, TLS,
    // compression, ...: a hundred more), but those are dependencies of the
    // libav* packages, so apt installs them with the packages named here.
    let needed = needed_libraries(binary());
    assert!(
        needed.iter().any(|n| n.starts_with("libavcodec")),
        "readelf found no FFmpeg library among {needed:?}"
    );
    let resolved = resolved_libraries(binary());
    let mut missing = Vec::new();
    let mut report = Vec::new();
    for lib in &needed {
        let path = resolved
            .get(lib)
            .unwrap_or_else(|| panic!("ldd does not resolve {lib}"));
        let package = owning_package(path);
        report.push(format!("{lib} -> {package}"));
        if !installed.contains(&package) && !BASE_IMAGE_PACKAGES.contains(&package.as_str()) {
            missing.push(format!("{lib} ({package})"));
        }
    }
    assert!(
        missing.is_empty(),
        "deploy/Dockerfile's runtime stage does not install {missing:?}; it installs \
         {installed:?}; the binary links {report:?}"
    );
    eprintln!("linked: {}", report.join(", "));

    // The build stage has what `make` installs to build.
    let makefile = read("Makefile");
    let build_packages: BTreeSet<String> = makefile
        .lines()
        .find_map(|l| l.strip_prefix("BUILD_PACKAGES :="))
        .expect("BUILD_PACKAGES in the Makefile")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let build_installed = apt_installed(&stages[0].1);
    let absent: Vec<_> = build_packages.difference(&build_installed).collect();
    assert!(
        absent.is_empty(),
        "the build stage lacks {absent:?} of the Makefile's BUILD_PACKAGES"
    );

    // Non-root, health-checked, configured from deploy/thumbd.toml.
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "USER {user}"
    );
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/healthz"));
    assert!(dockerfile.contains("COPY deploy/thumbd.toml /etc/thumbd/thumbd.toml"));
    assert!(dockerfile.contains("EXPOSE 8080"));
    if dockerfile.contains("curl ") && dockerfile.contains("HEALTHCHECK") {
        assert!(
            installed.contains("curl"),
            "the HEALTHCHECK uses curl, which bookworm-slim lacks"
        );
    }
}

// ---------------------------------------------------------------------------
// Configuration, Kubernetes, compose, systemd: one shutdown budget.

/// A YAML file (all its documents) as JSON, through PyYAML.
fn yaml(path: &str) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let full = repo().join(path);
    let out = run(
        "python3",
        &["-c", script, full.to_str().unwrap()],
        "python3-yaml",
    );
    assert!(
        out.status.success(),
        "{path} does not parse as YAML (or PyYAML is missing: `make test` installs \
         python3-yaml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The config as thumbd reads it (validated, defaults filled in), checked
/// by every subsystem as `serve` and `check-config` do.
fn thumbd_config(text: &str, name: &str) -> thumbd::Config {
    let config = thumbd::Config::from_toml(text, repo())
        .unwrap_or_else(|e| panic!("thumbd refuses {name}: {e}"));
    if let Err(e) = thumbd::setup::resolve(&config) {
        panic!("thumbd refuses {name}: {e}");
    }
    config
}

fn seconds(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a number of seconds: {v}"))
}

#[test]
fn manifests_agree_and_give_thumbd_its_shutdown_time() {
    let toml = read("deploy/thumbd.toml");
    let config = thumbd_config(&toml, "deploy/thumbd.toml");
    assert!(
        !config.server.demo_page,
        "deploy/thumbd.toml must not serve the demo page"
    );
    let budget = config.server.shutdown_delay_secs + config.server.shutdown_grace_secs;
    let port = config.server.listen.port();
    let db = config.jobs_db_path();
    assert!(
        db.starts_with("/var/lib/thumbd"),
        "jobs.db_path {db:?} should be in /var/lib/thumbd (the unit's StateDirectory, \
         the image's volume)"
    );
    thumbd_config(
        &read("deploy/compose.thumbd.toml"),
        "deploy/compose.thumbd.toml",
    );

    // Kubernetes.
    let mut kinds: HashMap<String, Value> = HashMap::new();
    let k8s = repo().join("deploy/k8s");
    let mut files: Vec<String> = fs::read_dir(&k8s)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    for file in &files {
        for doc in yaml(&format!("deploy/k8s/{file}")) {
            let kind = doc["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no kind"));
            kinds.insert(kind.to_owned(), doc);
        }
    }
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Kustomization",
    ] {
        assert!(kinds.contains_key(kind), "deploy/k8s has no {kind}");
    }
    let listed: BTreeSet<&str> = kinds["Kustomization"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for file in files.iter().filter(|f| *f != "kustomization.yaml") {
        assert!(
            listed.contains(file.as_str()),
            "kustomization.yaml omits {file}"
        );
    }

    let cm = &kinds["ConfigMap"];
    assert_eq!(
        cm["data"]["thumbd.toml"].as_str(),
        Some(toml.as_str()),
        "deploy/k8s/configmap.yaml's thumbd.toml differs from deploy/thumbd.toml"
    );

    let deployment = &kinds["Deployment"];
    let name = deployment["metadata"]["name"].as_str().unwrap();
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], *labels);
    let spec = &pod["spec"];
    let grace = seconds(&spec["terminationGracePeriodSeconds"]);
    assert!(
        grace > budget,
        "terminationGracePeriodSeconds {grace} must exceed shutdown_delay_secs + \
         shutdown_grace_secs = {budget}"
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let containers = spec["containers"].as_array().unwrap();
    let c = &containers[0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(seconds(&c["ports"][0]["containerPort"]), u64::from(port));
    let port_name = c["ports"][0]["name"].as_str().unwrap();
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == port_name || get["port"] == u64::from(port),
            "{probe}"
        );
    }
    // Readiness fails before the listener closes.
    let r = &c["readinessProbe"];
    let detect = seconds(&r["periodSeconds"]) * seconds(&r["failureThreshold"]);
    assert!(
        detect <= config.server.shutdown_delay_secs,
        "readiness notices shutdown after {detect} s, past the {} s delay",
        config.server.shutdown_delay_secs
    );
    assert!(
        c["resources"]["requests"]["cpu"].is_string(),
        "the HPA needs a CPU request"
    );
    assert!(c["resources"]["limits"]["memory"].is_string());
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/etc/thumbd"), "{mounts:?}");
    assert!(
        mounts.iter().any(|m| db.starts_with(m)),
        "the job database {db:?} is on the read-only root: {mounts:?}"
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["serve", "--config", "/etc/thumbd/thumbd.toml"]);
    let dockerfile = read("deploy/Dockerfile");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert_eq!(
        user.split(':').next().unwrap().parse::<u64>().ok(),
        spec["securityContext"]["runAsUser"].as_u64(),
        "the pod's runAsUser should be the image's numeric USER"
    );

    let service = &kinds["Service"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the Service selects other pods");
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
    let pdb = &kinds["PodDisruptionBudget"];
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);
    let hpa = &kinds["HorizontalPodAutoscaler"];
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], name);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap();
    assert!(
        min > pdb["spec"]["minAvailable"].as_u64().unwrap(),
        "the PDB would block every drain"
    );

    // docker compose.
    let compose = &yaml("deploy/compose.yaml")[0];
    let stop = compose["services"]["thumbd"]["stop_grace_period"]
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("compose: thumbd's stop_grace_period in seconds");
    let compose_config = read("deploy/compose.thumbd.toml");
    let cc = thumbd_config(&compose_config, "deploy/compose.thumbd.toml");
    assert!(
        stop > cc.server.shutdown_delay_secs + cc.server.shutdown_grace_secs,
        "compose: stop_grace_period {stop}s"
    );

    // systemd.
    let unit = read("deploy/thumbd.service");
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|s| s.trim_end_matches('s').parse::<u64>().ok())
        .expect("TimeoutStopSec=<seconds> in deploy/thumbd.service");
    assert!(
        stop > budget,
        "TimeoutStopSec={stop} must exceed shutdown_delay_secs + shutdown_grace_secs = {budget}"
    );
    assert!(unit.contains("StateDirectory=thumbd"));
}

// ---------------------------------------------------------------------------
// systemd.

/// deploy/thumbd.service with ExecStart pointing at the built binary (verify
/// checks that the program exists), in `dir`.
fn unit_copy(dir: &Path) -> PathBuf {
    let unit = read("deploy/thumbd.service");
    let exec = "ExecStart=/usr/local/bin/thumbd ";
    assert_eq!(
        unit.matches(exec).count(),
        1,
        "one ExecStart of /usr/local/bin/thumbd"
    );
    let path = dir.join("thumbd.service");
    fs::write(
        &path,
        unit.replace(exec, &format!("ExecStart={} ", binary().display())),
    )
    .unwrap();
    path
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path());
    let out = run(
        "systemd-analyze",
        &["verify", unit.to_str().unwrap()],
        "systemd",
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on unknown keys and bad values, only warning about them
    // ("Unknown key ...", "... ignoring"), so any line about the unit fails.
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("thumbd.service") || l.contains("ignoring"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify deploy/thumbd.service: {text}"
    );
}

/// The names in a systemd system call set, groups expanded.
fn syscall_set(name: &str, cache: &mut HashMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    if let Some(s) = cache.get(name) {
        return s.clone();
    }
    let out = run("systemd-analyze", &["syscall-filter", name], "systemd");
    assert!(
        out.status.success(),
        "systemd-analyze syscall-filter {name}: {out:?}"
    );
    let mut set = BTreeSet::new();
    for line in stdout(&out).lines().skip(1) {
        let item = line.trim();
        if item.is_empty() || item.starts_with('#') {
            continue;
        }
        if item.starts_with('@') {
            set.extend(syscall_set(item, cache));
        } else {
            set.insert(item.to_owned());
        }
    }
    cache.insert(name.to_owned(), set.clone());
    set
}

/// What the unit's SystemCallFilter= lines allow (an allow list, then
/// `~` deny lists).
fn unit_allowed_syscalls(unit: &str) -> BTreeSet<String> {
    let mut cache = HashMap::new();
    let mut allowed: Option<BTreeSet<String>> = None;
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (deny, items) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let mut set = BTreeSet::new();
        for item in items.split_whitespace() {
            if item.starts_with('@') {
                set.extend(syscall_set(item, &mut cache));
            } else {
                set.insert(item.split(':').next().unwrap().to_owned());
            }
        }
        if deny {
            let a = allowed.as_mut().expect("an allow list before a deny list");
            a.retain(|s| !set.contains(s));
        } else {
            allowed.get_or_insert_with(BTreeSet::new).extend(set);
        }
    }
    allowed.expect("SystemCallFilter= in the unit")
}

/// thumbd serving under strace while a client exercises every kind of work
/// (public, signed and HTTP-sourced renders in each format, errors, a job,
/// metrics, SIGTERM) and checks every answer; returns strace's output. Every
/// system call outside `allowed` fails with EPERM (strace's fault
/// injection), as it does under the unit's SystemCallFilter with
/// SystemCallErrorNumber=EPERM.
async fn trace_thumbd(dir: &Path, allowed: &BTreeSet<String>) -> String {
    let source = common::SourceServer::start(common::samples()).await;
    let port = common::free_port();
    let samples = repo().join("samples");
    let config = dir.join("thumbd.toml");
    fs::write(
        &config,
        format!(
            r#"
[server]
shutdown_delay_secs = 1
shutdown_grace_secs = 2
[log]
format = "json"
[jobs]
db_path = "{db}"
[orgs.demo]
api_keys = ["deploy-test-api-key-0123456789"]
default_env = "local"
[orgs.demo.envs.local]
source = "file:{samples}/{{key}}"
[orgs.demo.envs.http]
source = "http://localhost:{src}/{{key}}"
[orgs.demo.envs.private]
source = "file:{samples}/{{key}}"
access = "signed"
[[orgs.demo.signing_keys]]
kid = "k"
alg = "HS256"
secret = "deploy-test-secret-long-enough-0123456789"
"#,
            db = dir.join("jobs.db").display(),
            samples = samples.display(),
            src = source.addr.port(),
        ),
    )
    .unwrap();
    let trace = dir.join("strace.txt");
    // `?name`: names strace does not know on this architecture are ignored.
    let inject = format!(
        "inject=!{}:error=EPERM",
        allowed
            .iter()
            .map(|s| format!("?{s}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    // In its own process group: strace's tracee would outlive a killed strace.
    let mut p = common::Proc::spawn(
        "thumbd under strace",
        Command::new(
            ["/usr/bin/strace", "/bin/strace"]
                .iter()
                .find(|p| Path::new(p).is_file())
                .unwrap_or_else(|| {
                    panic!(
                        "strace is not installed: `make test` installs it (Debian package strace)"
                    )
                }),
        )
        .args(["-f", "-qq", "-e", &inject, "-o"])
        .arg(&trace)
        .arg(binary())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")]),
        dir.join("thumbd.log"),
    );

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!(
                "thumbd under strace exited ({status}) before serving: {}",
                p.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "thumbd under strace did not start: {}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = common::sign(
        &config,
        &[
            "--org", "demo", "--env", "private", "--key", "demo.mp4", "--kid", "k",
        ],
    );
    let get = |path: String| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let r = client.get(&url).send().await.unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            (url, status)
        }
    };
    let mut expect = vec![
        ("/healthz".to_owned(), 200),
        ("/metrics".to_owned(), 200),
        ("/v1/thumbnail/demo/local/missing.mp4.webp".to_owned(), 404),
        ("/v1/thumbnail/demo/private/demo.mp4.webp".to_owned(), 401),
        (
            format!("/v1/thumbnail/demo/private/demo.mp4.jpg?token={token}"),
            200,
        ),
    ];
    for (video, ext) in [
        ("demo.mp4", "webp"),
        ("portrait.mp4", "jpg"),
        ("clip.webm", "png"),
    ] {
        expect.push((
            format!("/v1/thumbnail/demo/local/{video}.{ext}?width=200"),
            200,
        ));
        expect.push((
            format!("/v1/thumbnail/demo/http/{video}.{ext}?width=160&timeStamp=1"),
            200,
        ));
    }
    for (path, want) in expect {
        let (url, status) = get(path).await;
        assert_eq!(status, want, "{url}");
    }
    let job = client
        .post(format!("{base}/v1/api/demo/edge-ids/demo.mp4/thumbnails"))
        .header("x-api-key", "deploy-test-api-key-0123456789")
        .header("content-type", "application/json")
        .body(r#"{"width": 90, "timestampMs": 3000}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), 202);
    let job: Value = serde_json::from_slice(&job.bytes().await.unwrap()).unwrap();
    let id = job["body"]["jobId"].as_str().unwrap().to_owned();
    loop {
        let state = client
            .get(format!("{base}/v1/api/demo/thumbnails/{id}"))
            .header("x-api-key", "deploy-test-api-key-0123456789")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let state: Value = serde_json::from_slice(&state).unwrap();
        if state["body"]["status"] == "completed" {
            break;
        }
        assert_ne!(state["body"]["status"], "failed", "{state}");
        assert!(Instant::now() < deadline, "the job did not finish: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM to thumbd (strace's child), then strace ends with it.
    let pid = fs::read_to_string(&trace)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exited = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "thumbd did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exited.success(), "thumbd exited with {exited}: {}", p.log());
    fs::read_to_string(&trace).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unit_sandbox_allows_what_thumbd_does() {
    let unit = read("deploy/thumbd.service");
    let allowed = unit_allowed_syscalls(&unit);
    assert!(allowed.contains("read") && !allowed.contains("setuid"));
    let dir = tempfile::tempdir().unwrap();
    let trace = trace_thumbd(dir.path(), &allowed).await;

    let mut used = BTreeSet::new();
    let mut wx = Vec::new();
    let mut families = BTreeSet::new();
    for line in trace.lines() {
        // "1234  name(args) = ret", "1234  <... name resumed>...".
        let Some((_, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let name = if let Some(rest) = call.strip_prefix("<... ") {
            rest.split_whitespace().next().unwrap_or("")
        } else {
            call.split('(').next().unwrap_or("")
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        used.insert(name.to_owned());
        if call.starts_with(name) {
            let flags = call.split(", ").nth(2).unwrap_or("");
            // MemoryDenyWriteExecute: no mapping both writable and
            // executable, and no mprotect adding PROT_EXEC.
            let mmap_wx =
                name == "mmap" && flags.contains("PROT_WRITE") && flags.contains("PROT_EXEC");
            let mprotect_x =
                (name == "mprotect" || name == "pkey_mprotect") && flags.contains("PROT_EXEC");
            if mmap_wx || mprotect_x {
                wx.push(line.to_owned());
            }
            if name == "socket" {
                families.insert(
                    call["socket(".len()..]
                        .split(',')
                        .next()
                        .unwrap()
                        .to_owned(),
                );
            }
        }
    }
    assert!(
        used.contains("execve") && used.contains("exit_group"),
        "{used:?}"
    );
    // thumbd did all of the above with these calls failing. Each must be
    // understood: allow it in the unit, or say here why failing is harmless.
    const HARMLESS_DENIALS: &[(&str, &str)] = &[
        // libnuma (linked by FFmpeg's codec libraries) probes at load time
        // whether MPOL_PREFERRED_MANY works and falls back when it does not.
        ("set_mempolicy", "libnuma's start-up probe"),
        // SQLite gives its journal and WAL files the database's owner only
        // when running as root; under DynamicUser it never calls it.
        ("fchown", "SQLite as root (this test)"),
    ];
    let denied: BTreeSet<&str> = trace
        .lines()
        .filter(|l| l.ends_with("(INJECTED)"))
        .filter_map(|l| l.split_whitespace().nth(1)?.split('(').next())
        .collect();
    let unexplained: Vec<&str> = denied
        .iter()
        .copied()
        .filter(|d| !HARMLESS_DENIALS.iter().any(|(h, _)| h == d))
        .collect();
    let examples: Vec<&str> = trace
        .lines()
        .filter(|l| l.ends_with("(INJECTED)"))
        .take(10)
        .collect();
    assert!(
        unexplained.is_empty(),
        "thumbd makes system calls deploy/thumbd.service's SystemCallFilter denies \
         (it still worked with them failing): {unexplained:?}\n{}",
        examples.join("\n")
    );
    assert!(
        wx.is_empty(),
        "MemoryDenyWriteExecute=yes would refuse: {wx:#?}"
    );
    let allowed_families: Vec<&str> = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .expect("RestrictAddressFamilies=")
        .split_whitespace()
        .collect();
    let refused: Vec<_> = families
        .iter()
        .filter(|f| !allowed_families.contains(&f.as_str()))
        .collect();
    assert!(
        refused.is_empty(),
        "thumbd opens sockets of families the unit refuses: {refused:?}"
    );
    eprintln!(
        "{} system calls, socket families {families:?}, denied and survived: {denied:?}",
        used.len()
    );
}
