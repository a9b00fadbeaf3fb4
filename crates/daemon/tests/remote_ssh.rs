//! `-H ssh://USER@HOST:PORT`: the client runs `ssh ... -- berth system dial-stdio` and speaks
//! the API over its stdin and stdout. A private sshd (openssh-server) on a loopback port, with
//! its own host key, config and authorized key, made by the test (the system's sshd is never
//! touched); `ssh` is a wrapper in PATH that gives the client its own config.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{berth_binary, free_port, run_env, skip, text, Daemon, DOCKER};

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 with sessions whose PATH starts with `berth`'s directory and
    /// whose `BERTH_HOST` and `DOCKER_HOST` are `d`'s socket.
    fn start(d: &Daemon) -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            assert!(
                std::env::var("CI").is_err(),
                "remote_ssh needs sshd (apt-get install openssh-server)"
            );
            eprintln!("skipped: no {SSHD} (apt-get install openssh-server)");
            return None;
        }
        // sshd's privilege separation directory (made by its service, which never ran here).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(&p("host_key"));
        keygen(&p("id_ed25519"));
        std::fs::copy(p("id_ed25519.pub"), p("authorized_keys")).unwrap();
        let port = free_port();
        let bin_dir = berth_binary().parent().unwrap().display().to_string();
        let host = format!("unix://{}", d.socket.display());
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n\
             SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin BERTH_HOST={host} DOCKER_HOST={host}\n",
            hk = p("host_key").display(),
            ak = p("authorized_keys").display(),
        );
        std::fs::write(p("sshd_config"), config).unwrap();
        // The client side: its own config, through an `ssh` first in PATH.
        let client = format!(
            "Host *\n  IdentityFile {id}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n",
            id = p("id_ed25519").display()
        );
        std::fs::write(p("ssh_config"), client).unwrap();
        std::fs::create_dir_all(p("bin")).unwrap();
        let wrapper = format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            p("ssh_config").display()
        );
        std::fs::write(p("bin/ssh"), wrapper).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p("bin/ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = std::fs::File::create(p("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let sshd = Sshd { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sshd)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn host(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }
}

fn ok(out: std::process::Output, what: &str, sshd: &Sshd) -> String {
    let (o, e) = text(&out);
    assert!(
        out.status.success(),
        "{what} failed ({}): {o}{e}\nsshd: {}",
        out.status,
        sshd.log()
    );
    o
}

/// The request goes in, the answer comes out; stdin is closed only once the answer is in
/// (berthd, as hyper's servers by default, drops a request whose client half-closes the
/// connection before the answer is written, which the docker CLI never does).
#[test]
fn dial_stdio_proxies_the_socket() {
    if skip() {
        return;
    }
    use std::io::{Read, Write};
    let d = Daemon::start();
    let host = format!("unix://{}", d.socket.display());
    let mut child = Command::new(berth_binary())
        .args(["-H", &host, "system", "dial-stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    // HTTP/1.0: berthd closes the connection after the answer, which ends the command.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut o = String::new();
        stdout.read_to_string(&mut o).map(|_| o)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dial-stdio did not end when the daemon closed the connection");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let o = reader.join().unwrap().unwrap();
    assert!(status.success(), "{o}");
    assert!(o.starts_with("HTTP/1.0 200 OK\r\n"), "{o}");
    assert!(o.ends_with("\r\n\r\nOK"), "{o}");
}

#[test]
fn berth_and_docker_over_ssh() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let Some(sshd) = Sshd::start(&d) else {
        return;
    };
    let path = sshd.path();
    let host = sshd.host();
    let berth = |args: &[&str], stdin: Option<&[u8]>| {
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        run_env(&berth_binary(), &all, &[("PATH", &path)], stdin)
    };
    let out = ok(
        berth(&["version", "--format", "{{.Server.APIVersion}}"], None),
        "version",
        &sshd,
    );
    assert_eq!(out.trim(), "1.43");
    let out = ok(
        berth(&["run", "--rm", "busybox", "echo", "over-ssh"], None),
        "run",
        &sshd,
    );
    assert_eq!(out.trim(), "over-ssh");
    let out = ok(
        berth(
            &["run", "--rm", "-i", "busybox", "sh", "-c", "wc -c"],
            Some(&[b'y'; 50_000]),
        ),
        "run -i",
        &sshd,
    );
    assert_eq!(out.trim(), "50000");
    ok(
        berth(
            &["run", "-d", "--name", "sshexec", "busybox", "sleep", "60"],
            None,
        ),
        "run -d",
        &sshd,
    );
    let out = ok(
        berth(
            &["exec", "-i", "sshexec", "sh", "-c", "tr a-z A-Z"],
            Some(b"through ssh\n"),
        ),
        "exec -i",
        &sshd,
    );
    assert_eq!(out.trim(), "THROUGH SSH");
    ok(
        berth(
            &[
                "run",
                "-d",
                "--name",
                "sshlogs",
                "busybox",
                "sh",
                "-c",
                "echo a; sleep 0.5; echo b",
            ],
            None,
        ),
        "run -d",
        &sshd,
    );
    let out = ok(berth(&["logs", "-f", "sshlogs"], None), "logs -f", &sshd);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b"]);

    // The docker CLI runs `docker system dial-stdio` at the far end: the real docker CLI
    // there, pointed at berthd by the session's DOCKER_HOST.
    let config = d.dir.join("docker-config");
    let out = run_env(
        Path::new(DOCKER),
        &["exec", "sshexec", "echo", "docker-over-ssh"],
        &[
            ("PATH", &path),
            ("DOCKER_HOST", &host),
            ("DOCKER_CONFIG", config.to_str().unwrap()),
        ],
        None,
    );
    assert_eq!(
        ok(out, "docker exec over ssh", &sshd).trim(),
        "docker-over-ssh"
    );

    // A host that refuses the key: the client says so and fails.
    let wrong = format!("ssh://nobody-here@127.0.0.1:{}", sshd.port);
    let out = run_env(
        &berth_binary(),
        &["-H", &wrong, "ps"],
        &[("PATH", &path)],
        None,
    );
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("Permission denied"), "{e}");
}
