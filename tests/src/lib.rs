//! Fixtures shared by Berth's end-to-end tests: a busybox root filesystem built from Debian's
//! `busybox-static`, OCI bundles around it, and commands run with a time limit.
//!
//! Everything a fixture makes is removed by its `Drop`, so a failing assertion leaves nothing behind.
//! Image summaries for comparing built images with golden ones are in [`image_summary`].
//! The registries of the registry client's tests are in [`registry`]; host-side networking
//! helpers in [`net`]; a seccomp agent for `SCMP_ACT_NOTIFY` in [`seccomp_agent`]; small
//! filesystems to fill (a tmpfs, a loop ext4) in [`smallfs`].

pub mod image_summary;
pub mod net;
pub mod registry;
pub mod seccomp_agent;
pub mod smallfs;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The users of the fixture's /etc/passwd.
pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
user:x:1000:1000:user:/home/user:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";

/// Builds a busybox root filesystem in `dest`: the static binary, a link for every applet,
/// /etc/passwd and /etc/group with root and an unprivileged user, and the usual directories.
pub fn busybox_rootfs(dest: &Path) -> std::io::Result<()> {
    if !Path::new(BUSYBOX).exists() {
        return Err(std::io::Error::other(
            "/bin/busybox is missing: apt-get install busybox-static",
        ));
    }
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(dest.join(dir))?;
    }
    let tmp = dest.join("tmp");
    fs::create_dir_all(&tmp)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))?;
    fs::copy(BUSYBOX, dest.join("bin/busybox"))?;
    let list = Command::new(BUSYBOX).arg("--list-full").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = dest.join(applet);
        if applet == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link)?;
    }
    fs::write(dest.join("etc/passwd"), PASSWD)?;
    fs::write(dest.join("etc/group"), GROUP)?;
    fs::write(dest.join("etc/hostname"), "busybox\n")?;
    std::os::unix::fs::chown(dest.join("home/user"), Some(1000), Some(1000))?;
    Ok(())
}

/// A unique name for this test process: `prefix-PID-N`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics with everything the command printed unless it succeeded.
    pub fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "command failed ({}): stdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` with stdin closed, killing it after `timeout`; output goes through files so that
/// nothing can block on a full pipe.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    run_with_stdin(cmd, None, timeout)
}

/// Like [`run_with_timeout`], with `input` (if any) as the command's stdin.
pub fn run_with_stdin(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdin = match input {
        Some(data) => {
            let path = dir.path().join("in");
            fs::write(&path, data).expect("stdin file");
            Stdio::from(fs::File::open(&path).expect("stdin file"))
        }
        None => Stdio::null(),
    };
    let out_path = dir.path().join("out");
    let err_path = dir.path().join("err");
    let out = fs::File::create(&out_path).expect("stdout file");
    let err = fs::File::create(&err_path).expect("stderr file");
    let mut child = cmd
        .stdin(stdin)
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Output {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// The default time limit of one runtime command in tests.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// An OCI bundle with the busybox rootfs, a state root of its own, and a container id.
/// Dropping it force-deletes the container and removes the directories.
pub struct Bundle {
    pub runtime: PathBuf,
    pub id: String,
    dir: tempfile::TempDir,
    pub config: serde_json::Value,
}

impl Bundle {
    /// A bundle whose config is `berth-runtime spec`'s, running `args` without a terminal, with a
    /// writable root and the cgroup `/berth-test-<id>`.
    pub fn new(runtime: &str, args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .expect("tempdir");
        busybox_rootfs(&dir.path().join("rootfs")).expect("busybox rootfs");
        let id = unique("t");
        let mut bundle = Bundle {
            runtime: PathBuf::from(runtime),
            id,
            dir,
            config: serde_json::Value::Null,
        };
        bundle
            .cmd(&["spec", "--bundle", &bundle.path().display().to_string()])
            .ok();
        let text = fs::read_to_string(bundle.path().join("config.json")).expect("config.json");
        bundle.config = serde_json::from_str(&text).expect("config.json is JSON");
        let cgroup = format!("/berth-test-{}", bundle.id);
        let c = &mut bundle.config;
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = args
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .into();
        c["root"]["readonly"] = false.into();
        c["linux"]["cgroupsPath"] = cgroup.into();
        bundle.save();
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.path().join("rootfs")
    }

    /// The `--root` of this bundle's runtime invocations.
    pub fn state_root(&self) -> PathBuf {
        self.path().join("state")
    }

    /// Writes `self.config` to config.json.
    pub fn save(&self) {
        fs::write(
            self.path().join("config.json"),
            serde_json::to_string_pretty(&self.config).expect("serialize"),
        )
        .expect("write config.json");
    }

    /// `berth-runtime --root <state> ARGS`, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(self.state_root()).args(args);
        cmd
    }

    /// Runs `berth-runtime ARGS` with the default time limit.
    pub fn cmd(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.command(args), TIMEOUT)
    }

    /// `run` of this bundle in the foreground; returns what the container printed.
    pub fn run(&self) -> Output {
        let bundle = self.path().display().to_string();
        self.cmd(&["run", "--bundle", &bundle, &self.id])
    }

    /// `create` of this bundle.
    pub fn create(&self) -> Output {
        let bundle = self.path().display().to_string();
        self.cmd(&["create", "--bundle", &bundle, &self.id])
    }

    /// The `state` JSON of the container.
    pub fn state(&self) -> serde_json::Value {
        let out = self.cmd(&["state", &self.id]).ok();
        serde_json::from_str(&out.stdout).expect("state is JSON")
    }

    /// Waits until the container's status is `status`, up to the default time limit.
    pub fn wait_status(&self, status: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let state = self.state();
            if state["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container never became {status}: {state}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = run_with_timeout(&mut self.command(&["delete", "--force", &self.id]), TIMEOUT);
    }
}

/// Runs `cmd` like [`run_with_timeout`], on a thread of its own: for a command that only ends
/// once the test has done something (talked to its terminal, killed its container...). `join` the
/// handle for its output.
pub fn run_in_background(mut cmd: Command, timeout: Duration) -> std::thread::JoinHandle<Output> {
    std::thread::spawn(move || run_with_timeout(&mut cmd, timeout))
}

/// A listening Unix socket for `--console-socket`, in a directory of its own, removed on drop.
pub struct ConsoleSocket {
    dir: tempfile::TempDir,
    listener: std::os::unix::net::UnixListener,
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = tempfile::Builder::new()
            .prefix("berth-console-")
            .tempdir()
            .expect("tempdir");
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("console.sock")).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        ConsoleSocket { dir, listener }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("console.sock")
    }

    /// Accepts one connection and receives the pseudo-terminal master sent over it with
    /// SCM_RIGHTS; panics if none comes within `timeout`. Also returns the bytes sent with it
    /// (runc sends the slave's name).
    pub fn receive_master(&self, timeout: Duration) -> (std::os::fd::OwnedFd, String) {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "nobody connected to the console socket within {timeout:?}"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept on the console socket: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg on the console socket");
        let mut master = None;
        for cmsg in msg.cmsgs().expect("control messages") {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: SCM_RIGHTS just installed `fd` in this process; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    master.get_or_insert(owned);
                }
            }
        }
        let len = msg.bytes;
        let master = master.expect("no descriptor came with the console socket's message");
        (master, String::from_utf8_lossy(&buf[..len]).into_owned())
    }
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads `fd` (a terminal master, a pipe) until `done` holds for everything read so far, the other
/// end is closed, or `timeout` passes; returns everything read. Never blocks past `timeout`.
pub fn read_until(
    fd: &std::os::fd::OwnedFd,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        if done(&String::from_utf8_lossy(&out)) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => panic!("poll: {e}"),
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fd.as_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
            // A pty master reads EIO once every slave descriptor is closed.
            Err(nix::Error::EIO) => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes all of `data` to `fd`.
pub fn write_fd(fd: &std::os::fd::OwnedFd, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        match nix::unistd::write(fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// The directories of cgroup `cgroups_path` that exist now: in the unified hierarchy and in every
/// v1 hierarchy under /sys/fs/cgroup. Empty once the cgroup is removed.
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(rel)];
    if let Ok(entries) = fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| e.path().join(rel)));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}
