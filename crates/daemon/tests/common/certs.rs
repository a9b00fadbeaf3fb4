//! Certificates for the TLS tests, made with openssl(1): a CA, a server certificate for
//! 127.0.0.1 (SAN IP), a client certificate, and a second CA with a client certificate of its
//! own. P-256 keys: quick to make.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certs {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ],
    );
}

fn ca(dir: &Path, name: &str) {
    key(dir, &format!("{name}-key.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=berth test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `name-cert.pem` (key `name-key.pem`) signed by `ca`, with `ext` lines.
fn leaf(dir: &Path, name: &str, ca: &str, cn: &str, ext: &str) {
    key(dir, &format!("{name}-key.pem"));
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}-cert.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

impl Certs {
    pub fn make() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ca(d, "ca");
        ca(d, "other-ca");
        leaf(
            d,
            "server",
            "ca",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        let client = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
        leaf(d, "client", "ca", "client", client);
        leaf(d, "other-client", "other-ca", "intruder", client);
        Certs { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A `DOCKER_CERT_PATH` directory `name` with `ca.pem`, `cert.pem` and `key.pem` copied
    /// from the given files (an empty name leaves that file out).
    pub fn client_dir(&self, name: &str, ca: &str, cert: &str, key: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("client-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        for (from, to) in [(ca, "ca.pem"), (cert, "cert.pem"), (key, "key.pem")] {
            if !from.is_empty() {
                std::fs::copy(self.dir.path().join(from), dir.join(to)).unwrap();
            }
        }
        dir
    }
}

impl Certs {
    /// A berthd on a free loopback port with mutual TLS (`--tlsverify`) of these
    /// certificates, and the port.
    pub fn daemon(&self) -> (crate::common::Daemon, u16) {
        let port = crate::common::free_port();
        let tcp = format!("tcp://127.0.0.1:{port}");
        let (ca, cert, key) = (
            self.path("ca.pem"),
            self.path("server-cert.pem"),
            self.path("server-key.pem"),
        );
        let d = crate::common::Daemon::start_with_args(
            &[
                "-H",
                &tcp,
                "--tlsverify",
                "--tlscacert",
                &ca,
                "--tlscert",
                &cert,
                "--tlskey",
                &key,
            ],
            |_| {},
        );
        (d, port)
    }
}
