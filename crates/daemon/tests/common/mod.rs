//! A private berthd for the end-to-end tests, driven by the real docker CLI
//! (`/usr/local/bin/docker`, client only) through `DOCKER_HOST`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test file uses some of these

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where the docker CLI is.
pub const DOCKER: &str = "/usr/local/bin/docker";

/// Whether a prerequisite (root, the docker CLI) is missing: the test is skipped then, but
/// under `CI=true` a missing prerequisite fails it instead of passing silently.
pub fn skip() -> bool {
    let missing = if !nix::unistd::Uid::effective().is_root() {
        "root"
    } else if !Path::new(DOCKER).exists() {
        "the docker CLI at /usr/local/bin/docker"
    } else {
        return false;
    };
    assert!(
        std::env::var("CI").is_err(),
        "berthd's tests need {missing} (CI=true: no skipping)"
    );
    eprintln!("skipped: berthd's tests need {missing}");
    true
}

/// `berth-monitor` beside `berthd` in the target directory, brought up to date once per test
/// binary (`cargo test -p berth-daemon` alone does not build another package's binary), with
/// `berth-init`, which berthd finds beside itself for `--init`.
fn monitor_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let berthd = PathBuf::from(env!("CARGO_BIN_EXE_berthd"));
    let monitor = berthd.with_file_name("berth-monitor");
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = berthd.parent().is_some_and(|d| d.ends_with("release"));
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "berth-monitor", "-p", "berth-init"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("cargo build -p berth-monitor -p berth-init");
        assert!(status.success());
    });
    monitor
}

/// The project's CLI, `berth`, beside `berthd` in the target directory, built once per test
/// binary that uses it (as [`monitor_binary`]).
pub fn berth_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let berthd = PathBuf::from(env!("CARGO_BIN_EXE_berthd"));
    let berth = berthd.with_file_name("berth");
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "berth-cli"]);
        if berthd.parent().is_some_and(|d| d.ends_with("release")) {
            cmd.arg("--release");
        }
        assert!(cmd.status().expect("cargo build -p berth-cli").success());
    });
    berth
}

/// A berthd with its own data root, exec root and socket, and its own default bridge,
/// subnet and nftables table (test daemons run in parallel); stopped and cleaned on drop.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    /// `--data-root`: `<dir>/data`, or a directory the test chose (on a filesystem of its own).
    pub data_root: PathBuf,
    pub socket: PathBuf,
    /// The default bridge's interface.
    pub bridge: String,
    /// The default bridge's gateway and prefix (`--bip`).
    pub bip: String,
    /// The daemon's nftables table.
    pub table: String,
    /// More berthd flags (`--add-runtime ...`).
    pub args: Vec<String>,
    /// A command berthd is started through (`sh -c '... exec "$@"' sh`), with berthd and its
    /// arguments after it; empty: berthd itself.
    pub launcher: Vec<String>,
    /// A descriptor berthd gets as its descriptor 3 (a socket for `-H fd://`).
    pub fd3: Option<std::os::fd::RawFd>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_on(None, |_| {})
    }

    /// [`Daemon::start`], with `prepare` run on the daemon's directory first (its data root
    /// will be `DIR/data`: a test may mount something there; whatever is mounted under the
    /// directory is unmounted on drop, also when the test fails).
    pub fn start_with(prepare: impl FnOnce(&Path)) -> Daemon {
        Daemon::start_on(None, prepare)
    }

    /// [`Daemon::start`] with `--data-root` at `data_root` (else `<dir>/data`); the test
    /// removes what it made there.
    pub fn start_with_data_root(data_root: Option<&Path>) -> Daemon {
        Daemon::start_on(data_root, |_| {})
    }

    /// [`Daemon::start_with_data_root`] and [`Daemon::start_with`] at once.
    pub fn start_on(data_root: Option<&Path>, prepare: impl FnOnce(&Path)) -> Daemon {
        Daemon::start_full(data_root, &[], prepare)
    }

    /// [`Daemon::start_with_args`], berthd started as systemd's socket activation starts it:
    /// `listener` as its descriptor 3, `LISTEN_FDS=1` and `LISTEN_PID` set to its pid.
    pub fn start_activated(listener: std::os::fd::RawFd, args: &[&str]) -> Daemon {
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/run/bt-{pid}-{seq}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            child: None,
            socket: dir.join("berth.sock"),
            data_root: dir.join("data"),
            dir,
            bridge: format!("bt{}x{seq}", pid % 1_000_000),
            bip: format!("10.{}.{}.1/24", 20 + pid % 200, seq % 256),
            table: format!("bt_{pid}_{seq}"),
            args: args.iter().map(|a| a.to_string()).collect(),
            launcher: ["sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"", "sh"]
                .map(str::to_string)
                .to_vec(),
            fd3: Some(listener),
        };
        d.spawn();
        d
    }

    /// [`Daemon::start_with`], berthd given `args` too.
    pub fn start_with_args(args: &[&str], prepare: impl FnOnce(&Path)) -> Daemon {
        Daemon::start_full(None, args, prepare)
    }

    fn start_full(data_root: Option<&Path>, args: &[&str], prepare: impl FnOnce(&Path)) -> Daemon {
        // Short: the monitor sockets live under the exec root and must fit in 108 bytes.
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/run/bt-{pid}-{seq}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            child: None,
            socket: dir.join("berth.sock"),
            data_root: data_root.map_or_else(|| dir.join("data"), Path::to_path_buf),
            dir,
            // At most 15 characters; unique per test process and daemon.
            bridge: format!("bt{}x{seq}", pid % 1_000_000),
            // 10.20-219.x.0/24: one /24 per daemon, the second octet from the process.
            bip: format!("10.{}.{}.1/24", 20 + pid % 200, seq % 256),
            table: format!("bt_{pid}_{seq}"),
            args: args.iter().map(|a| a.to_string()).collect(),
            launcher: Vec::new(),
            fd3: None,
        };
        prepare(&d.dir);
        d.spawn();
        d
    }

    /// Where this berthd looks for legacy plugins (`<dir>/plugins`: `NAME.sock`, `NAME.spec`,
    /// `NAME.json`), instead of dockerd's directories.
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.join("plugins")
    }

    /// berthd's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("berthd runs").id()
    }

    /// Starts berthd on the same roots (again, after [`Daemon::kill9`]).
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("berthd.log"))
            .unwrap();
        let mut cmd = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_berthd"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_berthd")),
        };
        if let Some(fd) = self.fd3 {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec only dup2(2) or fcntl(2), async-signal-safe, run; `fd` is the
            // test's open listener, and the copy at 3 is not close-on-exec.
            unsafe {
                cmd.pre_exec(move || {
                    if fd == 3 {
                        if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(self.dir.join("run"))
            .arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--monitor")
            .arg(monitor_binary())
            .arg("--bridge")
            .arg(&self.bridge)
            .arg("--bip")
            .arg(&self.bip)
            .arg("--nft-table")
            .arg(&self.table)
            .args(&self.args)
            // Legacy plugins: the test's own (see `plugins_dir`), never the host's.
            .arg("--plugins-dir")
            .arg(self.plugins_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "berthd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops berthd with SIGTERM, as a service manager does (containers go on), and waits
    /// (20 s at most) for it to exit; SIGKILL after that.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("berthd did not stop on SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How berthd ended, if it has (it is not waited for).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILLs berthd (containers and their monitors go on).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Mount points under this daemon's directory, but for the exec root's own tmpfs (berthd
    /// mounts one there when it is not on a tmpfs) and what berthd keeps in `<exec-root>/bin`
    /// while it lives: the read-only view of the monitor's binary and the mount template.
    pub fn mounts_under(&self) -> Vec<String> {
        let exec_root = self.dir.join("run").display().to_string();
        // The monitor's binary and the mount template's pin.
        let monitor_view = format!("{exec_root}/bin/");
        let prefix = format!("{}/", self.dir.display());
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix) && *p != exec_root && !p.starts_with(&monitor_view))
            .map(str::to_string)
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("berthd.log")).unwrap_or_default()
    }

    /// Runs the docker CLI against this daemon, with a time limit.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None)
    }

    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg("-k")
            .arg("5")
            .arg("60")
            .arg(DOCKER)
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"));
        output_with_stdin(&mut cmd, stdin)
    }

    /// Runs the project's CLI (`berth -H unix://SOCKET ARGS`) against this daemon, with a time
    /// limit.
    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("-k")
            .arg("5")
            .arg("60")
            .arg(berth_binary())
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A `docker ARGS` command against this daemon, to spawn and watch (stdin null, stdout and
    /// stderr piped); the caller bounds its waits and kills it.
    pub fn docker_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `docker ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The address of `container` on `network`.
    pub fn ip_on(&self, container: &str, network: &str) -> String {
        let ip = self.ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            container,
        ]);
        let ip = ip.trim().to_string();
        assert!(ip.parse::<Ipv4Addr>().is_ok(), "no address: {ip:?}");
        ip
    }

    /// What `nc IP PORT` in a new container on `network` reads, tried until it is `expected`
    /// or 20 s pass (the server in the other container may not listen yet).
    pub fn nc_from(&self, network: &str, ip: &str, port: &str, expected: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut answer = String::new();
        while Instant::now() < deadline && answer.trim() != expected {
            let out = self.docker(&[
                "run",
                "--rm",
                "--network",
                network,
                "bb:local",
                "nc",
                "-w",
                "2",
                ip,
                port,
            ]);
            answer = text(&out).0;
        }
        answer
    }

    /// Imports the busybox fixture as `name` (through `docker import`).
    pub fn busybox(&self, name: &str) {
        self.busybox_with_changes(name, &[]);
    }

    /// The busybox image imported as `name` with `docker import --change` for each of
    /// `changes` (`ENV ...`, `CMD [...]`).
    pub fn busybox_with_changes(&self, name: &str, changes: &[&str]) {
        let rootfs = tempfile::tempdir().unwrap();
        berth_tests::busybox_rootfs(rootfs.path()).unwrap();
        let tar = self.dir.join("busybox.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let mut args = vec!["import"];
        for c in changes {
            args.extend(["--change", c]);
        }
        let tar = tar.to_str().unwrap();
        args.extend([tar, name]);
        self.ok(&args);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            // The CRI's pods and containers, which `ps` does not list.
            let records = self.data_root.join("containers");
            for entry in std::fs::read_dir(&records).into_iter().flatten().flatten() {
                if let Some(id) = entry.file_name().to_str() {
                    let _ = self.docker(&["rm", "-f", id]);
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        // The daemon's bridges (the default one and those of networks the test made; berthd
        // keeps them, as containers may outlive it) and its nftables table.
        let records = self.data_root.join("network/networks");
        let mut bridges = vec![self.bridge.clone()];
        for entry in std::fs::read_dir(&records).into_iter().flatten().flatten() {
            let record: serde_json::Value = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            if let Some(b) = record["bridge"].as_str() {
                bridges.push(b.to_string());
            }
        }
        bridges.sort();
        bridges.dedup();
        for bridge in &bridges {
            let _ = Command::new("ip")
                .args(["link", "del", bridge])
                .stderr(Stdio::null())
                .status();
        }
        for family in ["ip", "ip6"] {
            let _ = Command::new("nft")
                .args(["delete", "table", family, &self.table])
                .stderr(Stdio::null())
                .status();
        }
        // Whatever is still mounted under the roots (a failed test), deepest first.
        let prefix = format!("{}/", self.dir.display());
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `program ARGS` with `env` set (and `DOCKER_HOST`, `BERTH_HOST` removed unless `env`
/// sets them), `stdin` fed to it, with a time limit (60 s): a client pointed elsewhere than the
/// fixture's socket (TCP, TLS, SSH, a context).
pub fn run_env(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg("60")
        .arg(program)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("BERTH_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .envs(env.iter().copied());
    output_with_stdin(&mut cmd, stdin)
}

/// Runs `cmd` to its end, with `stdin` written to it (then closed), or no input; its output.
pub fn output_with_stdin(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Text of an output's stdout and stderr.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An HTTP GET of `/` on 127.0.0.1:`port`, tried until it answers or 20 s pass (the server
/// in the container starts after `docker run -d` returns).
pub fn http_get(port: u16) -> Option<String> {
    http_get_at(Ipv4Addr::LOCALHOST, port)
}

/// [`http_get`] on `ip`:`port`.
pub fn http_get_at(ip: Ipv4Addr, port: u16) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = SocketAddr::from((ip, port));
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let sent = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut body = String::new();
            if sent.is_ok() && s.read_to_string(&mut body).is_ok() && !body.is_empty() {
                return Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[allow(unused_imports)] // each test file uses some of these
pub use berth_tests::net::{free_port, host_address, portmap_rules};

/// The Python SDK (`pip install docker`), a client the tests did not write.
pub fn python_sdk(d: &Daemon, script: &str) -> String {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var("CI").is_err(),
            "the Python SDK is missing: python3 -m pip install docker"
        );
        eprintln!("skipped: no Python SDK (python3 -m pip install docker)");
        return String::new();
    }
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["-c", script])
        .env("DOCKER_HOST", format!("unix://{}", d.socket.display()));
    let out = berth_tests::run_with_timeout(&mut cmd, std::time::Duration::from_secs(120));
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// The value of `file` in the v1 cgroup `controller` of process `pid`.
pub fn cgroup_value(pid: &str, controller: &str, file: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup in {cgroups}"));
    let dir = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.split(',').any(|c| c == controller))
        })
        .unwrap_or_else(|| panic!("no {controller} hierarchy"));
    std::fs::read_to_string(dir.join(path.trim_start_matches('/')).join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// The snapshot keys the overlay snapshotter of the daemon in `dir` has recorded: its
/// checkpoint (`metadata.json`) with the changes logged since (`metadata.log`) replayed, read
/// here on their own as a second reader of the format.
#[allow(dead_code)] // not every test binary looks at snapshots
pub fn snapshot_keys(dir: &Path) -> std::collections::BTreeSet<String> {
    let root = dir.join("data/image/snapshots/overlay");
    let mut keys = std::collections::BTreeSet::new();
    let mut seq = 0;
    if let Ok(bytes) = std::fs::read(root.join("metadata.json")) {
        let meta: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        seq = meta["seq"].as_u64().unwrap_or(0);
        if let Some(snapshots) = meta["snapshots"].as_object() {
            keys.extend(snapshots.keys().cloned());
        }
    }
    let log = std::fs::read_to_string(root.join("metadata.log")).unwrap_or_default();
    for line in log.lines() {
        let Ok(change) = serde_json::from_str::<serde_json::Value>(line) else {
            break;
        };
        if change["seq"].as_u64().unwrap_or(0) <= seq {
            continue;
        }
        let key = change["key"].as_str().unwrap_or_default().to_string();
        match change["op"].as_str() {
            Some("insert") => {
                keys.insert(key);
            }
            Some("commit") => {
                keys.remove(&key);
                keys.insert(change["name"].as_str().unwrap_or_default().to_string());
            }
            _ => {
                keys.remove(&key);
            }
        }
    }
    keys
}
