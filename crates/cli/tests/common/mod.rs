//! The daemon the CLI tests talk to: a private berthd (its own data root, exec root and socket
//! under /run), started on first use and shared by the tests of one binary that run at the same
//! time; it stops when the last of them drops it.
//!
//! `BERTH_TEST_DOCKERD=1` runs them against a private dockerd (Debian's docker.io: no bridge, no
//! iptables) instead, to check that berth speaks the API as Docker serves it;
//! `BERTH_TEST_HOST=unix://...` points them at a running daemon.
//!
//! Every daemon gets a busybox image imported as [`IMAGE`].

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use berth_tests::{run_with_stdin, run_with_timeout, Output};

pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const IMAGE: &str = "berth-test-bb:latest";
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Daemon {
    pub host: String,
    dir: Option<PathBuf>,
    child: Option<Child>,
    /// berthd's own default bridge and nftables table, removed on drop.
    net: Option<(String, String)>,
}

static SHARED: Mutex<Weak<Daemon>> = Mutex::new(Weak::new());

/// The shared daemon, or `None` (with a message) when the tests cannot run here.
pub fn daemon() -> Option<Arc<Daemon>> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = shared.upgrade() {
        return Some(d);
    }
    let d = Arc::new(Daemon::start()?);
    *shared = Arc::downgrade(&d);
    Some(d)
}

/// Skips the test (returns) when no daemon can be had.
#[macro_export]
macro_rules! daemon_or_skip {
    () => {
        match common::daemon() {
            Some(d) => d,
            None => return,
        }
    };
}

fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).status();
    }
}

impl Daemon {
    fn start() -> Option<Daemon> {
        if let Ok(host) = std::env::var("BERTH_TEST_HOST") {
            let d = Daemon {
                host,
                dir: None,
                child: None,
                net: None,
            };
            d.import_image();
            return Some(d);
        }
        if std::env::var("BERTH_TEST_DOCKERD").as_deref() != Ok("1") {
            return Self::start_berthd();
        }
        if !Path::new(DOCKERD).exists() {
            eprintln!("skipping: {DOCKERD} is missing (apt-get install docker.io)");
            return None;
        }
        if !nix_is_root() {
            eprintln!("skipping: dockerd needs root");
            return None;
        }
        let dir = PathBuf::from(format!("/tmp/{}", berth_tests::unique("berth-cli-dockerd")));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip6tables=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            host: format!("unix://{}", sock.display()),
            dir: Some(dir.clone()),
            child: Some(child),
            net: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = d.berth(&["version"]);
            if out.code() == 0 {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
                panic!("dockerd did not start: {}\n{log}", out.stderr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        d.import_image();
        Some(d)
    }

    /// A private berthd, from the binaries beside `berth` (built if this package's tests
    /// run alone).
    fn start_berthd() -> Option<Daemon> {
        if !nix_is_root() {
            eprintln!("skipping: berthd needs root");
            return None;
        }
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "berth-daemon", "-p", "berth-monitor"]);
        if bin.parent().is_some_and(|d| d.ends_with("release")) {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building berthd");
        // Short: monitor sockets live under the exec root and must fit in 108 bytes.
        let dir = PathBuf::from(format!("/run/{}", berth_tests::unique("bc")));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("berth.sock");
        let log = std::fs::File::create(dir.join("berthd.log")).unwrap();
        let pid = std::process::id();
        let (bridge, table) = (format!("bc{}", pid % 1_000_000), format!("bc_{pid}"));
        let child = Command::new(bin.with_file_name("berthd"))
            .arg("--bridge")
            .arg(&bridge)
            .arg("--bip")
            .arg(format!("10.{}.250.1/24", 20 + pid % 200))
            .arg("--nft-table")
            .arg(&table)
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("run"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--monitor")
            .arg(bin.with_file_name("berth-monitor"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon {
            host: format!("unix://{}", sock.display()),
            dir: Some(dir.clone()),
            child: Some(child),
            net: Some((bridge, table)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.berth(&["version"]).code() != 0 {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("berthd.log")).unwrap_or_default();
                panic!("berthd did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d.import_image();
        Some(d)
    }

    fn import_image(&self) {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        berth_tests::busybox_rootfs(&rootfs).unwrap();
        let tar = tmp.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        self.berth(&["import", tar.to_str().unwrap(), IMAGE]).ok();
    }

    /// `berth ARGS` against this daemon, stdin closed.
    pub fn berth(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.command(args), TIMEOUT)
    }

    /// `berth ARGS` with `input` on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_stdin(&mut self.command(args), Some(input), TIMEOUT)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.env("BERTH_HOST", &self.host)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("BERTH_API_VERSION")
            .args(args);
        c
    }

    /// Removes containers by name, ignoring errors (cleanup).
    pub fn remove(&self, names: &[&str]) {
        for n in names {
            let _ = self.berth(&["rm", "-f", n]);
        }
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq"]);
            for id in ids.stdout.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let (Some((bridge, table)), Some(dir)) = (self.net.take(), self.dir.as_ref()) {
            // berthd leaves its bridges and rules to the containers that may outlive it.
            let mut bridges = vec![bridge];
            let records = dir.join("data/network/networks");
            for entry in std::fs::read_dir(records).into_iter().flatten().flatten() {
                let v: serde_json::Value = std::fs::read(entry.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                if let Some(b) = v["bridge"].as_str() {
                    bridges.push(b.to_string());
                }
            }
            for b in bridges {
                let _ = Command::new("ip")
                    .args(["link", "del", &b])
                    .stderr(Stdio::null())
                    .status();
            }
            // berthd keeps an `ip6` table of the same name beside the `ip` one.
            for family in ["ip", "ip6"] {
                let _ = Command::new("nft")
                    .args(["delete", "table", family, &table])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if let Some(dir) = self.dir.take() {
            unmount_under(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
