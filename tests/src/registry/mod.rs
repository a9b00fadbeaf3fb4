//! Registries for tests of the registry client.
//!
//! [`Registry`] runs Debian's `docker-registry` (distribution 2.8) on a free port of 127.0.0.1
//! with its storage in a temporary directory, without authentication or with an htpasswd file.
//! [`AuthProxy`] stands in front of one: it implements the Bearer-token flow of the OCI
//! distribution specification, and can cut blob downloads short or slow them down, counting the
//! blob requests it saw. [`request`] is a small HTTP/1.1 client for the tests themselves.
//!
//! Both fixtures stop on `Drop`: the registry is killed and its directory removed; the proxy closes
//! its listener and every connection it holds, and joins its threads.

mod http;
mod proxy;

use std::fs;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use http::{basic_auth, request, Response};
pub use proxy::{AuthProxy, TOKEN_SERVICE};

/// Where Debian's `docker-registry` package installs the server.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// How long a registry may take to answer `GET /v2/` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Read and write time limit of every socket of these fixtures.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `docker-registry serve` on 127.0.0.1, storing into a temporary directory.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    storage: PathBuf,
    port: u16,
}

impl Registry {
    /// Starts a registry without authentication and waits until it answers.
    pub fn start() -> io::Result<Registry> {
        Registry::start_inner(None, false)
    }

    /// Starts a registry that requires HTTP Basic authentication as `user` / `password` (an
    /// htpasswd file with a bcrypt hash).
    pub fn start_with_htpasswd(user: &str, password: &str) -> io::Result<Registry> {
        Registry::start_inner(Some((user, password)), false)
    }

    /// Starts a registry that speaks HTTPS only, with a certificate for 127.0.0.1 signed by a
    /// certificate authority made for it with openssl ([`Registry::ca_cert`]).
    pub fn start_with_tls() -> io::Result<Registry> {
        Registry::start_inner(None, true)
    }

    /// The certificate authority of a registry started with [`Registry::start_with_tls`].
    pub fn ca_cert(&self) -> Option<PathBuf> {
        Some(self.dir.path().join("ca.crt")).filter(|p| p.exists())
    }

    fn start_inner(htpasswd: Option<(&str, &str)>, tls: bool) -> io::Result<Registry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            return Err(io::Error::other(
                "/usr/bin/docker-registry is missing: apt-get install docker-registry",
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()?;
        fs::create_dir(dir.path().join("storage"))?;
        let auth = match htpasswd {
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 4).map_err(io::Error::other)?;
                let file = dir.path().join("htpasswd");
                fs::write(&file, format!("{user}:{hash}\n"))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let auth = if tls {
            make_certificates(dir.path())?;
            // Under `http:`, which the configuration ends with before `auth`.
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n{auth}",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            )
        } else {
            auth
        };
        // The port is found free, then handed to the registry: another process may take it in
        // between, so a failed bind is retried on another port.
        let storage = dir.path().join("storage");
        let log_path = dir.path().join("registry.log");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let config = dir.path().join("config.yml");
            fs::write(&config, registry_config(&storage, port, &auth))?;
            let log = fs::File::create(&log_path)?;
            let mut child = Command::new(DOCKER_REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            match wait_ready(&mut child, &format!("127.0.0.1:{port}"), tls) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        dir,
                        storage,
                        port,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    last_error = format!("{e}; log: {log}");
                    if !log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        Err(io::Error::other(format!(
            "docker-registry did not start: {last_error}"
        )))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the registry listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The root directory of the registry's filesystem storage.
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// Where the filesystem driver keeps the data of blob `sha256:<hex>`: a test can overwrite
    /// it to serve corrupt content.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// Everything the registry printed (errors only; for messages of failed tests).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `GET /v2/` of `host` until it answers 200 or 401, `child` exits, or [`START_TIMEOUT`].
/// A TLS registry answers plain HTTP with 400, which is enough to know it is up.
fn wait_ready(child: &mut Child, host: &str, tls: bool) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "docker-registry exited: {status}"
            )));
        }
        if let Ok(response) = request(host, "GET", "/v2/", &[], b"") {
            if matches!(response.status, 200 | 401) || (tls && response.status == 400) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("docker-registry did not answer GET /v2/ within {START_TIMEOUT:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `ca.crt`/`ca.key` (a certificate authority) and `server.crt`/`server.key` (for
/// IP 127.0.0.1, signed by it) into `dir`, with openssl.
fn make_certificates(dir: &Path) -> io::Result<()> {
    let openssl = |args: &[&str]| -> io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=berth-test-ca"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(&ca)?;
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&csr)?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])
}

/// The YAML configuration of a registry on `port` storing in `storage`, followed by `auth`.
fn registry_config(storage: &Path, port: u16, auth: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n\
         {auth}",
        storage.display()
    )
}
