//! Registry mirrors end to end: containerd's `hosts.toml` in `--registry-config-dir` (or
//! daemon.json's `registry-config-dir`) sends a registry's pulls to the hosts it lists, in
//! order, by capability, falling through the ones that fail; dockerd's `registry-mirrors`
//! serve Docker Hub's images. The mirrors are Debian's `docker-registry` on 127.0.0.1, seeded
//! with busybox by a push; the registries they stand in for are not reachable (no internet).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_tests::registry::Registry;
use common::{skip, text, Daemon};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use tonic::transport::{Endpoint, Uri};

/// A registry for the tests: `docker-registry`, which must be there under `CI=true`.
fn registry() -> Option<Registry> {
    match Registry::start() {
        Ok(r) => Some(r),
        Err(e) => {
            assert!(std::env::var("CI").is_err(), "docker-registry: {e}");
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// Pushes the busybox fixture into `registry` as each of `repos` (`pause:3.10`), leaving
/// nothing in `d`'s store.
fn seed(d: &Daemon, registry: &Registry, repos: &[&str]) {
    d.busybox("seed:local");
    for repo in repos {
        let name = format!("{}/{repo}", registry.host());
        d.ok(&["tag", "seed:local", &name]);
        d.ok(&["push", &name]);
        d.ok(&["rmi", &name]);
    }
    d.ok(&["rmi", "seed:local"]);
}

/// `dir/<host dir>/hosts.toml` with `text`.
fn hosts_toml(dir: &Path, host: &str, text: &str) {
    std::fs::create_dir_all(dir.join(host)).unwrap();
    std::fs::write(dir.join(host).join("hosts.toml"), text).unwrap();
}

/// The names the daemon lists.
fn names(d: &Daemon) -> Vec<String> {
    let out = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP proxy in front of a registry that records the request targets it sees, and maps
/// the ones under `prefix` to `/v2` (others get a 404): a registry whose API root is not
/// `/v2`, for `override_path`. Stopped and joined on drop.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: u16, prefix: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2, prefix) = (Arc::clone(&seen), Arc::clone(&stop), prefix.to_string());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (seen, prefix) = (Arc::clone(&seen2), prefix.clone());
                // One request per connection (`Connection: close` upstream): short threads.
                std::thread::spawn(move || {
                    let _ = relay(conn, upstream, &prefix, &seen);
                });
            }
        });
        Proxy {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Relays one request (without a body: GET and HEAD) to the registry, its target under
/// `prefix` moved to `/v2`, and the answer back until the registry closes.
fn relay(
    conn: TcpStream,
    upstream: u16,
    prefix: &str,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut start = String::new();
    reader.read_line(&mut start)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if !line.to_ascii_lowercase().starts_with("connection:") {
            headers.push(line);
        }
    }
    let mut parts = start.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    seen.lock().unwrap().push(target.to_string());
    let mut conn = conn;
    let Some(rest) = target.strip_prefix(prefix) else {
        conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return conn.shutdown(Shutdown::Both);
    };
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} /v2{rest} HTTP/1.1\r\nConnection: close\r\n");
    headers.iter().for_each(|h| head.push_str(h));
    head.push_str("\r\n");
    up.write_all(head.as_bytes())?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n])?;
    }
    conn.shutdown(Shutdown::Both)
}

/// The air-gapped node: `registry.k8s.io`'s pulls go to the local registry its hosts.toml
/// names (by `docker pull` and by `docker run` of a missing image); the image keeps its asked
/// name. A malformed hosts.toml then fails the pull with an error naming the file, and the
/// stored images are untouched.
#[test]
fn hosts_toml_sends_a_registry_to_its_mirror() {
    if skip() {
        return;
    }
    let Some(registry) = registry() else { return };
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    let d = Daemon::start_with_args(&["--registry-config-dir", dir], |_| {});
    seed(&d, &registry, &["pause:3.10"]);
    hosts_toml(
        config.path(),
        "registry.k8s.io",
        &format!(
            "server = \"https://registry.k8s.io\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            registry.host()
        ),
    );
    let out = d.ok(&["pull", "registry.k8s.io/pause:3.10"]);
    assert!(
        out.contains("Status: Downloaded newer image for registry.k8s.io/pause:3.10"),
        "{out}"
    );
    let listed = names(&d);
    assert!(
        listed
            .iter()
            .any(|n| n.starts_with("registry.k8s.io/pause:3.10 ")),
        "{listed:?}"
    );
    // `docker run` of a missing image pulls it the same way.
    d.ok(&["rmi", "registry.k8s.io/pause:3.10"]);
    let out = d.ok(&[
        "run",
        "--rm",
        "registry.k8s.io/pause:3.10",
        "echo",
        "from-mirror",
    ]);
    assert!(out.contains("from-mirror"), "{out}");
    // Malformed: a clear error naming the file, nothing changed.
    let before = names(&d);
    let file = config.path().join("registry.k8s.io/hosts.toml");
    std::fs::write(&file, "[host.\"http://127.0.0.1:1\"\ncapabilities = [\n").unwrap();
    let out = d.docker(&["pull", "registry.k8s.io/pause:3.10"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr.contains(&format!("registry configuration {}", file.display()))
            && stderr.contains("invalid TOML"),
        "{stderr}"
    );
    assert_eq!(names(&d), before);
    d.ok(&["image", "inspect", "registry.k8s.io/pause:3.10"]);
}

/// The CRI's PullImage (the kubelet's pull) goes through hosts.toml too.
#[test]
fn cri_pulls_go_through_hosts_toml() {
    if skip() {
        return;
    }
    let Some(registry) = registry() else { return };
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    let d = Daemon::start_with_args(&["--registry-config-dir", dir], |_| {});
    seed(&d, &registry, &["pause:3.10"]);
    hosts_toml(
        config.path(),
        "registry.k8s.io",
        &format!("[host.\"http://{}\"]\n", registry.host()),
    );
    let socket = d.dir.join("run/cri.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let image_ref = rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(std::time::Instant::now() < deadline, "no CRI socket");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let channel = Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .unwrap();
        let mut images = ImageServiceClient::new(channel);
        images
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: "registry.k8s.io/pause:3.10".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .image_ref
    });
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let listed = names(&d);
    assert!(
        listed
            .iter()
            .any(|n| n.starts_with("registry.k8s.io/pause:3.10 ")),
        "{listed:?}"
    );
}

/// Hosts in the file's order: one that is down is passed over, one without `pull` is never
/// asked, and `override_path` makes the URL's path the API root instead of `/v2`.
#[test]
fn hosts_fall_through_by_capability_and_override_path() {
    if skip() {
        return;
    }
    let Some(registry) = registry() else { return };
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    // daemon.json's key this time.
    let d = Daemon::start_with(|daemon_dir| {
        std::fs::write(
            daemon_dir.join("daemon.json"),
            format!("{{\"registry-config-dir\": \"{dir}\"}}"),
        )
        .unwrap();
    });
    seed(&d, &registry, &["pause:3.10"]);
    let spy = Proxy::start(registry.port(), "/v2");
    let custom = Proxy::start(registry.port(), "/custom/root");
    hosts_toml(
        config.path(),
        "k8s.example.invalid",
        &format!(
            r#"
[host."http://127.0.0.1:{dead}"]
  capabilities = ["pull", "resolve"]
[host."http://127.0.0.1:{spy}"]
  capabilities = ["push"]
[host."http://127.0.0.1:{custom}/custom/root"]
  capabilities = ["pull", "resolve"]
  override_path = true
"#,
            dead = dead_port(),
            spy = spy.port,
            custom = custom.port,
        ),
    );
    let out = d.docker(&["pull", "k8s.example.invalid/pause:3.10"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        names(&d)
            .iter()
            .any(|n| n.starts_with("k8s.example.invalid/pause:3.10 ")),
        "{:?}",
        names(&d)
    );
    assert_eq!(
        spy.seen(),
        Vec::<String>::new(),
        "a push-only host was asked"
    );
    let seen = custom.seen();
    assert!(
        seen.iter()
            .any(|t| t == "/custom/root/pause/manifests/3.10?ns=k8s.example.invalid"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|t| t.starts_with("/custom/root/pause/blobs/sha256:")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|t| t.contains("/v2")), "{seen:?}");
}

/// A TLS registry whose CA only hosts.toml names (`ca`, relative to the file's directory):
/// pushed to through its own `server` entry, pulled from as another registry's host; with
/// `skip_verify` and no CA too.
#[test]
fn tls_hosts_trust_their_ca_or_skip_verify() {
    if skip() {
        return;
    }
    let registry = match Registry::start_with_tls() {
        Ok(r) => r,
        Err(e) => {
            assert!(std::env::var("CI").is_err(), "docker-registry: {e}");
            return;
        }
    };
    let host = registry.host();
    let config = tempfile::tempdir().unwrap();
    // Outside any host directory, so not one of the CAs trusted for all.
    std::fs::create_dir(config.path().join("cas")).unwrap();
    std::fs::copy(
        registry.ca_cert().unwrap(),
        config.path().join("cas/mirror.pem"),
    )
    .unwrap();
    let port_dir = host.replace(':', "_") + "_";
    hosts_toml(
        config.path(),
        &port_dir,
        &format!("server = \"https://{host}\"\nca = \"../cas/mirror.pem\"\n"),
    );
    let dir = config.path().to_str().unwrap();
    let d = Daemon::start_with_args(&["--registry-config-dir", dir], |_| {});
    seed(&d, &registry, &["pause:3.10"]);
    hosts_toml(
        config.path(),
        "tls.example.invalid",
        &format!("[host.\"https://{host}\"]\n  ca = [\"../cas/mirror.pem\"]\n"),
    );
    d.ok(&["pull", "tls.example.invalid/pause:3.10"]);
    // Without the CA the host fails (and the server is unreachable)...
    hosts_toml(
        config.path(),
        "tls2.example.invalid",
        &format!("[host.\"https://{host}\"]\n"),
    );
    let out = d.docker(&["pull", "tls2.example.invalid/pause:3.10"]);
    assert!(!out.status.success(), "{:?}", text(&out));
    // ... unless told not to verify.
    hosts_toml(
        config.path(),
        "tls2.example.invalid",
        &format!("[host.\"https://{host}\"]\n  skip_verify = true\n"),
    );
    d.ok(&["pull", "tls2.example.invalid/pause:3.10"]);
}

/// `_default/hosts.toml` serves registries without a directory of their own; a host with
/// `pull` alone fetches by digest but is not trusted to resolve a tag.
#[test]
fn default_hosts_and_the_resolve_capability() {
    if skip() {
        return;
    }
    let Some(registry) = registry() else { return };
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    let d = Daemon::start_with_args(&["--registry-config-dir", dir], |_| {});
    seed(&d, &registry, &["pause:3.10"]);
    let host = registry.host();
    hosts_toml(
        config.path(),
        "_default",
        &format!("[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
    );
    d.ok(&["pull", "quay.example.invalid/pause:3.10"]);
    let digest = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        "quay.example.invalid/pause:3.10",
    ]);
    let digest = digest.trim().rsplit('@').next().unwrap().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    d.ok(&["rmi", "quay.example.invalid/pause:3.10"]);
    // Pull only: the tag is resolved by the server alone (unreachable), the digest is not.
    hosts_toml(
        config.path(),
        "_default",
        &format!("[host.\"http://{host}\"]\n  capabilities = [\"pull\"]\n"),
    );
    let out = d.docker(&["pull", "quay.example.invalid/pause:3.10"]);
    assert!(!out.status.success(), "{:?}", text(&out));
    let by_digest = format!("quay.example.invalid/pause@{digest}");
    d.ok(&["pull", &by_digest]);
    // A registry with a directory of its own does not use _default.
    std::fs::create_dir_all(config.path().join("own.example.invalid")).unwrap();
    let out = d.docker(&["pull", &format!("own.example.invalid/pause@{digest}")]);
    assert!(!out.status.success(), "{:?}", text(&out));
}

/// daemon.json's `registry-mirrors`: Docker Hub's `busybox:latest` comes from the mirror (for
/// `docker pull` and a build's `FROM`), and `docker info` lists the mirror.
#[test]
fn registry_mirrors_serve_docker_hub() {
    if skip() {
        return;
    }
    let Some(registry) = registry() else { return };
    let mirror = format!("http://{}", registry.host());
    let d = Daemon::start_with(|dir| {
        std::fs::write(
            dir.join("daemon.json"),
            format!("{{\"registry-mirrors\": [\"{mirror}\"]}}"),
        )
        .unwrap();
    });
    seed(&d, &registry, &["library/busybox:latest"]);
    let out = d.ok(&["pull", "busybox:latest"]);
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    assert!(
        names(&d).iter().any(|n| n.starts_with("busybox:latest ")),
        "{:?}",
        names(&d)
    );
    // A build's FROM of a missing image.
    d.ok(&["rmi", "busybox:latest"]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nLABEL mirrored=yes\n",
    )
    .unwrap();
    let mut cmd = d.docker_command(&["build", "-t", "built:1", ctx.path().to_str().unwrap()]);
    cmd.env("DOCKER_BUILDKIT", "0");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    // docker info.
    let json = d.ok(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
    assert_eq!(json.trim(), format!("[\"{mirror}/\"]"));
    let info = d.ok(&["info"]);
    let lines: Vec<&str> = info.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "Registry Mirrors:")
        .unwrap_or_else(|| panic!("{info}"));
    assert_eq!(lines[at + 1], format!("{mirror}/"), "{info}");
}

/// A bad mirror refuses the start, with dockerd's words, from the flag or daemon.json.
#[test]
fn bad_mirrors_refuse_the_start() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("daemon.json");
    std::fs::write(&config, r#"{"registry-mirrors": ["ftp://mirror.lan"]}"#).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_berthd"))
            .args([
                "-H",
                &format!("unix://{}", dir.path().join("s.sock").display()),
            ])
            .args(["--data-root", dir.path().join("data").to_str().unwrap()])
            .args(["--exec-root", dir.path().join("run").to_str().unwrap()])
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&[
        "--config-file",
        "/nonexistent/daemon.json",
        "--registry-mirror",
        "mirror.lan:5000",
    ]);
    assert!(
        err.contains("invalid mirror: no scheme specified for \"mirror.lan:5000\": must use either 'https://' or 'http://'"),
        "{err}"
    );
    let err = run(&["--config-file", config.to_str().unwrap()]);
    assert!(
        err.contains("invalid mirror: unsupported scheme \"ftp\" in \"ftp://mirror.lan\": must use either 'https://' or 'http://'"),
        "{err}"
    );
    // Nothing was made.
    assert!(!dir.path().join("s.sock").exists());
    assert!(!dir.path().join("data").exists());
}
