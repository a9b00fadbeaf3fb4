//! The API over TCP with mutual TLS (`-H tcp://... --tlsverify`), driven by the real docker CLI
//! (`DOCKER_HOST=tcp://... DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=...`) and by `berth`: runs,
//! execs, attaches, follows logs; clients without a certificate, or with one of another CA,
//! are refused in the handshake; plain TCP needs `--tls=false`; the unix socket's group.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/certs.rs"]
mod tls_certs;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{free_port, run_env, skip, text, Daemon, DOCKER};
use tls_certs::Certs;

/// `docker ARGS` over TCP with the client material of `cert_dir`.
fn docker_tls(
    d: &Daemon,
    port: u16,
    cert_dir: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> std::process::Output {
    let host = format!("tcp://127.0.0.1:{port}");
    let config = d.dir.join("docker-config");
    run_env(
        Path::new(DOCKER),
        args,
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", cert_dir.to_str().unwrap()),
            ("DOCKER_CONFIG", config.to_str().unwrap()),
        ],
        stdin,
    )
}

/// `berth ARGS` over TCP with the client material of `cert_dir`, through `BERTH_` variables.
fn berth_tls(
    port: u16,
    cert_dir: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> std::process::Output {
    let host = format!("tcp://127.0.0.1:{port}");
    run_env(
        &common::berth_binary(),
        args,
        &[
            ("BERTH_HOST", &host),
            ("BERTH_TLS_VERIFY", "1"),
            ("BERTH_CERT_PATH", cert_dir.to_str().unwrap()),
        ],
        stdin,
    )
}

fn ok(out: std::process::Output, what: &str) -> String {
    let (o, e) = text(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}): {o}{e}",
        out.status
    );
    o
}

/// What both clients do over TLS: run, exec, attach (`run -i`, stdin piped), follow logs.
/// A client: ARGS and stdin to its output.
type ClientFn<'a> = &'a dyn Fn(&[&str], Option<&[u8]>) -> std::process::Output;

fn drive(name: &str, client: ClientFn<'_>) {
    let out = ok(
        client(&["run", "--rm", "busybox", "echo", "over-tls"], None),
        "run",
    );
    assert_eq!(out.trim(), "over-tls");
    let c = format!("{name}-exec");
    ok(
        client(&["run", "-d", "--name", &c, "busybox", "sleep", "60"], None),
        "run -d",
    );
    let out = ok(
        client(&["exec", &c, "sh", "-c", "echo exec-$((40+2))"], None),
        "exec",
    );
    assert_eq!(out.trim(), "exec-42");
    let out = ok(
        client(
            &["exec", "-i", &c, "sh", "-c", "tr a-z A-Z"],
            Some(b"piped into exec\n"),
        ),
        "exec -i",
    );
    assert_eq!(out.trim(), "PIPED INTO EXEC");
    ok(client(&["rm", "-f", &c], None), "rm");
    let out = ok(
        client(
            &["run", "--rm", "-i", "busybox", "sh", "-c", "wc -c"],
            Some(&[b'x'; 100_000]),
        ),
        "run -i",
    );
    assert_eq!(out.trim(), "100000");
    let c = format!("{name}-logs");
    ok(
        client(
            &[
                "run",
                "-d",
                "--name",
                &c,
                "busybox",
                "sh",
                "-c",
                "for i in 1 2 3; do echo line$i; sleep 0.3; done",
            ],
            None,
        ),
        "run -d",
    );
    let out = ok(client(&["logs", "-f", &c], None), "logs -f");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["line1", "line2", "line3"]);
    ok(client(&["rm", "-f", &c], None), "rm");

    // Push to and pull from a local registry: progress streams over TLS.
    let registry = berth_tests::registry::Registry::start().unwrap();
    let image = format!("{}/{name}/bb:1", registry.host());
    ok(client(&["tag", "busybox", &image], None), "tag");
    ok(client(&["push", &image], None), "push");
    ok(client(&["rmi", &image], None), "rmi");
    let out = ok(client(&["pull", &image], None), "pull");
    assert!(
        out.contains("Downloaded newer image") || out.contains("Pull complete"),
        "{out}"
    );
    let out = ok(
        client(&["run", "--rm", &image, "echo", "pulled"], None),
        "run the pulled image",
    );
    assert_eq!(out.trim(), "pulled");
}

#[test]
fn docker_cli_over_mutual_tls() {
    if skip() {
        return;
    }
    let certs = Certs::make();
    let (d, port) = certs.daemon();
    d.busybox("busybox");
    let good = certs.client_dir("good", "ca.pem", "client-cert.pem", "client-key.pem");
    let out = ok(
        docker_tls(
            &d,
            port,
            &good,
            &["version", "--format", "{{.Server.APIVersion}}"],
            None,
        ),
        "version",
    );
    assert_eq!(out.trim(), "1.43");
    drive("docker", &|args, stdin| {
        docker_tls(&d, port, &good, args, stdin)
    });

    // No client certificate: refused in the handshake.
    let nocert = certs.client_dir("nocert", "ca.pem", "", "");
    let out = docker_tls(&d, port, &nocert, &["ps"], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("tls: certificate required"), "{e}");
    // A certificate of another CA: refused too.
    let wrong = certs.client_dir(
        "wrong",
        "ca.pem",
        "other-client-cert.pem",
        "other-client-key.pem",
    );
    let out = docker_tls(&d, port, &wrong, &["ps"], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    // The server names its CA in the request for a certificate: Go's client sends none that
    // the CA did not issue, and the server then finds none.
    assert!(
        e.contains("tls: unknown certificate authority") || e.contains("tls: certificate required"),
        "{e}"
    );
    // A client trusting another CA refuses the server.
    let distrust = certs.client_dir(
        "distrust",
        "other-ca.pem",
        "client-cert.pem",
        "client-key.pem",
    );
    let out = docker_tls(&d, port, &distrust, &["ps"], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("certificate signed by unknown authority"), "{e}");
    assert!(d.log().contains("TLS handshake refused"), "{}", d.log());
}

#[test]
fn berth_cli_over_mutual_tls() {
    if skip() {
        return;
    }
    let certs = Certs::make();
    let (d, port) = certs.daemon();
    d.busybox("busybox");
    let good = certs.client_dir("good", "ca.pem", "client-cert.pem", "client-key.pem");
    drive("berth", &|args, stdin| berth_tls(port, &good, args, stdin));

    // The flags instead of the variables.
    let host = format!("tcp://127.0.0.1:{port}");
    let (ca, cert, key) = (
        certs.path("ca.pem"),
        certs.path("client-cert.pem"),
        certs.path("client-key.pem"),
    );
    let out = run_env(
        &common::berth_binary(),
        &[
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            &ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
            "ps",
            "-q",
        ],
        &[],
        None,
    );
    ok(out, "berth --tlsverify ps");

    let nocert = certs.client_dir("nocert", "ca.pem", "", "");
    let out = berth_tls(port, &nocert, &["ps"], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("CertificateRequired"), "{e}");
    let wrong = certs.client_dir(
        "wrong",
        "ca.pem",
        "other-client-cert.pem",
        "other-client-key.pem",
    );
    let out = berth_tls(port, &wrong, &["ps"], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("UnknownCA"), "{e}");
    let distrust = certs.client_dir(
        "distrust",
        "other-ca.pem",
        "client-cert.pem",
        "client-key.pem",
    );
    let out = berth_tls(port, &distrust, &["ps"], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("UnknownIssuer"), "{e}");
    // Plain HTTP to the TLS port: docker's hint.
    let out = run_env(&common::berth_binary(), &["-H", &host, "ps"], &[], None);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(
        e.contains("Are you trying to connect to a TLS-enabled daemon without TLS?"),
        "{e}"
    );
}

/// berthd with `args` must fail to start; its output.
fn berthd_fails(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let out = Command::new("timeout")
        .args(["-k", "5", "30", env!("CARGO_BIN_EXE_berthd")])
        .args([
            "--data-root",
            &format!("{root}/data"),
            "--exec-root",
            &format!("{root}/run"),
        ])
        .args(["--config-file", &format!("{root}/daemon.json")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(1), "berthd {args:?}: {o}{e}");
    e
}

#[test]
fn plain_tcp_needs_tls_false() {
    if skip() {
        return;
    }
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let e = berthd_fails(&["-H", &tcp]);
    assert!(e.contains("refusing to listen on tcp://127.0.0.1:"), "{e}");
    assert!(e.contains("--tls=false"), "{e}");

    let d = Daemon::start_with_args(&["-H", &tcp, "--tls=false"], |_| {});
    assert!(
        d.log().contains("Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network."),
        "{}",
        d.log()
    );
    let config = d.dir.join("docker-config");
    let out = run_env(
        Path::new(DOCKER),
        &["version", "--format", "{{.Server.APIVersion}}"],
        &[
            ("DOCKER_HOST", &tcp),
            ("DOCKER_CONFIG", config.to_str().unwrap()),
        ],
        None,
    );
    assert_eq!(ok(out, "docker over plain tcp").trim(), "1.43");
    let out = run_env(
        &common::berth_binary(),
        &["-H", &tcp, "ps", "-q"],
        &[],
        None,
    );
    ok(out, "berth over plain tcp");
}

#[test]
fn tls_settings_from_daemon_json() {
    if skip() {
        return;
    }
    let certs = Certs::make();
    let port = free_port();
    let config = serde_json::json!({
        "tlsverify": true,
        "tlscacert": certs.path("ca.pem"),
        "tlscert": certs.path("server-cert.pem"),
        "tlskey": certs.path("server-key.pem"),
    });
    let tcp = format!("tcp://127.0.0.1:{port}");
    // The fixture's `--config-file` is DIR/daemon.json.
    let d = Daemon::start_with_args(&["-H", &tcp], |dir| {
        std::fs::write(dir.join("daemon.json"), config.to_string()).unwrap();
    });
    let good = certs.client_dir("good", "ca.pem", "client-cert.pem", "client-key.pem");
    ok(docker_tls(&d, port, &good, &["ps"], None), "ps");
    let nocert = certs.client_dir("nocert", "ca.pem", "", "");
    assert!(!docker_tls(&d, port, &nocert, &["ps"], None)
        .status
        .success());
}

#[test]
fn unix_socket_group() {
    if skip() {
        return;
    }
    // The default group, `docker`, when it exists; root's otherwise.
    let d = Daemon::start();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    let docker_gid = nix::unistd::Group::from_name("docker")
        .unwrap()
        .map_or(0, |g| g.gid.as_raw());
    assert_eq!(meta.gid(), docker_gid);
    assert_eq!(meta.uid(), 0);
    drop(d);
    // A group named with -G.
    let d = Daemon::start_with_args(&["-G", "nogroup"], |_| {});
    let meta = std::fs::metadata(&d.socket).unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .expect("the nogroup group");
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    assert_eq!(meta.mode() & 0o777, 0o660);
    drop(d);
    // A missing group named explicitly fails the start, as in dockerd.
    let dir = tempfile::tempdir().unwrap();
    let sock = format!("unix://{}/b.sock", dir.path().display());
    let e = berthd_fails(&["-H", &sock, "-G", "berth-no-such-group"]);
    assert!(e.contains("group berth-no-such-group not found"), "{e}");
}

#[test]
fn systemd_socket_activation() {
    if skip() {
        return;
    }
    // `fd://` without activated sockets fails the start, as in dockerd.
    let e = berthd_fails(&["-H", "fd://"]);
    assert!(e.contains("no sockets found via socket activation"), "{e}");

    // A TCP socket bound by "systemd" (the test), with TLS as any TCP listener.
    let certs = Certs::make();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (ca, cert, key) = (
        certs.path("ca.pem"),
        certs.path("server-cert.pem"),
        certs.path("server-key.pem"),
    );
    use std::os::fd::AsRawFd;
    let d = Daemon::start_activated(
        listener.as_raw_fd(),
        &[
            "-H",
            "fd://",
            "--tlsverify",
            "--tlscacert",
            &ca,
            "--tlscert",
            &cert,
            "--tlskey",
            &key,
        ],
    );
    drop(listener);
    let good = certs.client_dir("good", "ca.pem", "client-cert.pem", "client-key.pem");
    let out = docker_tls(
        &d,
        port,
        &good,
        &["version", "--format", "{{.Server.APIVersion}}"],
        None,
    );
    assert_eq!(ok(out, "docker over the activated socket").trim(), "1.43");
    let nocert = certs.client_dir("nocert", "ca.pem", "", "");
    assert!(!docker_tls(&d, port, &nocert, &["ps"], None)
        .status
        .success());
    assert!(d.log().contains("fd://3"), "{}", d.log());
}

/// `exec -it` and `run -it` on a terminal (script(1)) over mutual TLS, with both CLIs: what is
/// typed reaches the container's shell, whose output comes back.
#[test]
fn interactive_tty_over_tls() {
    if skip() {
        return;
    }
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "script(1) is missing (util-linux)"
        );
        eprintln!("skipped: no script(1)");
        return;
    }
    let certs = Certs::make();
    let (d, port) = certs.daemon();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    let good = certs.client_dir("good", "ca.pem", "client-cert.pem", "client-key.pem");
    let config = d.dir.join("docker-config");
    let env = format!(
        "DOCKER_HOST=tcp://127.0.0.1:{port} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={} DOCKER_CONFIG={}",
        good.display(),
        config.display()
    );
    let berth = common::berth_binary().display().to_string();
    for client in [DOCKER, berth.as_str()] {
        for cmd in ["exec -it box sh", "run --rm -it busybox sh"] {
            let shell = format!(
                "printf 'echo tty-$((6*7))\\nexit\\n' \
                 | timeout 60 script -qec \"env {env} {client} {cmd}\" /dev/null"
            );
            let out = berth_tests::run_with_timeout(
                Command::new("sh").arg("-c").arg(shell),
                std::time::Duration::from_secs(70),
            );
            assert!(out.stdout.contains("tty-42"), "{client} {cmd}: {out:?}");
        }
    }
}
