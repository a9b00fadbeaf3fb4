#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The namespaces a container shares (`--ipc`, `--pid`, `--uts`), its `--cgroup-parent`, and a
//! pod sandbox (`/dev/init --pause` on an empty rootfs), through the real docker CLI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

/// The namespace `typ` of this (host) process, as `readlink /proc/self/ns/TYP` says it.
fn host_ns(typ: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{typ}"))
        .unwrap()
        .display()
        .to_string()
}

/// `docker ARGS`, which must fail; its stderr.
fn fails(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(
        !out.status.success(),
        "docker {args:?} succeeded: {:?}",
        text(&out)
    );
    text(&out).1
}

/// `POST /v1.43/containers/create?name=NAME` with `body` through curl (the docker CLI refuses
/// these modes itself, or has no flag for them); the answer's body and status.
fn api_create(d: &Daemon, name: &str, body: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "30", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .args(["-H", "Content-Type: application/json", "-d", body])
        .arg(format!("http://x/v1.43/containers/create?name={name}"))
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = all.rsplit_once('\n').unwrap_or((&all, ""));
    (body.to_string(), code.to_string())
}

fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    d.ok(&["inspect", "--format", format, name])
        .trim()
        .to_string()
}

/// Waits (at most `timeout`) for `cond`.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// A file removed when the test ends, also when it fails.
struct RemoveFile(PathBuf);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn ipc_modes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let host_ipc = host_ns("ipc");

    // shareable, and a container:X joining it: X's namespace and X's /dev/shm.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "--shm-size",
        "8m",
        "bb:local",
        "sleep",
        "300",
    ]);
    assert_eq!(inspect(&d, "{{.HostConfig.IpcMode}}", "donor"), "shareable");
    d.ok(&["exec", "donor", "sh", "-c", "echo shared > /dev/shm/f"]);
    let donor_ipc = d.ok(&["exec", "donor", "readlink", "/proc/self/ns/ipc"]);
    assert_ne!(donor_ipc.trim(), host_ipc);
    let mounts = d.ok(&["exec", "donor", "cat", "/proc/mounts"]);
    let shm = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/dev/shm"))
        .unwrap_or_else(|| panic!("no /dev/shm in {mounts}"));
    assert!(shm.contains("size=8192k"), "{shm}");
    let out = d.ok(&[
        "run",
        "--rm",
        "--ipc",
        "container:donor",
        "bb:local",
        "sh",
        "-c",
        "cat /dev/shm/f; readlink /proc/self/ns/ipc",
    ]);
    assert_eq!(out, format!("shared\n{}", donor_ipc), "{out}");

    // The default (private) cannot be joined; a container that does not run neither.
    d.ok(&["run", "-d", "--name", "priv", "bb:local", "sleep", "300"]);
    assert_eq!(inspect(&d, "{{.HostConfig.IpcMode}}", "priv"), "private");
    let priv_ipc = d.ok(&["exec", "priv", "readlink", "/proc/self/ns/ipc"]);
    assert_ne!(priv_ipc.trim(), host_ipc);
    assert_ne!(priv_ipc, donor_ipc);
    let err = fails(
        &d,
        &["run", "--rm", "--ipc", "container:priv", "bb:local", "true"],
    );
    assert!(
        err.contains("can't join IPC of container priv: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"),
        "{err}"
    );
    d.ok(&[
        "create",
        "--name",
        "idle",
        "--ipc",
        "shareable",
        "bb:local",
        "true",
    ]);
    let err = fails(
        &d,
        &["run", "--rm", "--ipc", "container:idle", "bb:local", "true"],
    );
    assert!(
        err.contains("cannot join IPC of a non running container: idle"),
        "{err}"
    );
    let err = fails(
        &d,
        &[
            "run",
            "--rm",
            "--ipc",
            "container:nosuch",
            "bb:local",
            "true",
        ],
    );
    assert!(err.contains("No such container: nosuch"), "{err}");

    // host: the host's namespace and /dev/shm.
    let name = format!("berth-ns-test-{}", std::process::id());
    let host_file = RemoveFile(Path::new("/dev/shm").join(&name));
    std::fs::write(&host_file.0, "from the host").unwrap();
    let out = d.ok(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "bb:local",
        "sh",
        "-c",
        &format!("readlink /proc/self/ns/ipc; cat /dev/shm/{name}"),
    ]);
    assert_eq!(out, format!("{host_ipc}\nfrom the host"));
    drop(host_file);

    // none: a namespace of its own, no /dev/shm.
    let out = d.ok(&[
        "run",
        "--rm",
        "--ipc",
        "none",
        "bb:local",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc; grep -c ' /dev/shm ' /proc/mounts; ls -d /dev/shm 2>&1 || true",
    ]);
    let mut lines = out.lines();
    let ns = lines.next().unwrap();
    assert_ne!(ns, host_ipc);
    assert_eq!(lines.next(), Some("0"), "{out}");
    assert_eq!(
        lines.next(),
        Some("ls: /dev/shm: No such file or directory"),
        "{out}"
    );

    // An unknown mode is refused at create (the CLI refuses it itself: through the API).
    let (body, code) = api_create(
        &d,
        "bad",
        r#"{"Image":"bb:local","Cmd":["true"],"HostConfig":{"IpcMode":"bogus"}}"#,
    );
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("invalid IPC mode: bogus"), "{body}");

    // The donor's /dev/shm is unmounted when it stops, and its directory goes with it.
    let shm_mounts = |d: &Daemon| {
        d.mounts_under()
            .into_iter()
            .filter(|m| m.ends_with("/shm"))
            .collect::<Vec<_>>()
    };
    assert_eq!(shm_mounts(&d).len(), 1, "{:?}", d.mounts_under());
    d.ok(&["rm", "-f", "donor", "priv"]);
    assert!(shm_mounts(&d).is_empty(), "{:?}", d.mounts_under());
}

#[test]
fn pid_and_uts_modes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-d", "--name", "p1", "bb:local", "sleep", "301"]);
    let p1_pid = d.ok(&["exec", "p1", "readlink", "/proc/self/ns/pid"]);

    // container:X: X's processes, X's namespace.
    let out = d.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:p1",
        "bb:local",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; ps -o pid,args",
    ]);
    assert!(out.starts_with(&p1_pid), "{out}");
    assert!(
        out.lines().any(|l| l.trim() == "1 sleep 301"),
        "p1's sleep is not PID 1 there: {out}"
    );
    // host: the host's namespace and processes.
    let out = d.ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "bb:local",
        "sh",
        "-c",
        &format!(
            "readlink /proc/self/ns/pid; test -d /proc/{} && echo seen",
            std::process::id()
        ),
    ]);
    assert_eq!(out, format!("{}\nseen\n", host_ns("pid")));
    // Without a PID namespace of its own, what the container started goes with it (as runc):
    // its orphan, re-parented to p1's init, does not outlive it, nor does its cgroup.
    let id = d
        .ok(&[
            "run",
            "-d",
            "--pid",
            "container:p1",
            "bb:local",
            "sh",
            "-c",
            "sleep 302 & sleep 0.5",
        ])
        .trim()
        .to_string();
    let out = d.ok(&["wait", &id]);
    assert_eq!(out.trim(), "0");
    let gone = wait_for(Duration::from_secs(10), || {
        !d.ok(&["exec", "p1", "ps", "-o", "args"])
            .contains("sleep 302")
    });
    assert!(gone, "{}", d.ok(&["exec", "p1", "ps", "-o", "pid,args"]));
    let cgroup = Path::new("/sys/fs/cgroup/pids/berth").join(&id);
    assert!(
        wait_for(Duration::from_secs(10), || !cgroup.exists()),
        "{} is still there",
        cgroup.display()
    );
    d.ok(&["rm", &id]);
    d.ok(&["create", "--name", "idle", "bb:local", "true"]);
    let err = fails(
        &d,
        &["run", "--rm", "--pid", "container:idle", "bb:local", "true"],
    );
    assert!(
        err.contains("cannot join PID of a non running container: idle"),
        "{err}"
    );

    // UTS host: the host's name (left as it is), and no hostname of its own with it.
    let host_name = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let out = d.ok(&["run", "--rm", "--uts", "host", "bb:local", "hostname"]);
    assert_eq!(out.trim(), host_name);
    assert_eq!(
        nix::unistd::gethostname().unwrap().into_string().unwrap(),
        host_name
    );
    let err = fails(
        &d,
        &[
            "run", "--rm", "--uts", "host", "-h", "x", "bb:local", "true",
        ],
    );
    assert!(
        err.contains("conflicting options: hostname and the UTS mode"),
        "{err}"
    );
    // The engine's own `container:X` for UTS (the CRI's, not dockerd's): X's name.
    let (body, code) = api_create(
        &d,
        "u1",
        r#"{"Image":"bb:local","Cmd":["sleep","300"],"HostConfig":{"UTSMode":"container:p1"}}"#,
    );
    assert_eq!(code, "201", "{body}");
    d.ok(&["start", "u1"]);
    let p1_name = d.ok(&["exec", "p1", "hostname"]);
    assert_eq!(d.ok(&["exec", "u1", "hostname"]), p1_name);
    // Its record (and /etc/hostname, $HOSTNAME) says X's name too.
    assert_eq!(
        format!("{}\n", inspect(&d, "{{.Config.Hostname}}", "u1")),
        p1_name
    );
    assert_eq!(d.ok(&["exec", "u1", "cat", "/etc/hostname"]), p1_name);
    assert_eq!(
        d.ok(&["exec", "u1", "readlink", "/proc/self/ns/uts"]),
        d.ok(&["exec", "p1", "readlink", "/proc/self/ns/uts"])
    );
    // Unknown modes: 400 at create.
    for (field, mode, message) in [
        ("PidMode", "bogus", "invalid PID mode: bogus"),
        ("UTSMode", "bogus", "invalid UTS mode: bogus"),
        ("IpcMode", "container:", "invalid IPC mode: container:"),
    ] {
        let (body, code) = api_create(
            &d,
            "bad",
            &format!(
                r#"{{"Image":"bb:local","Cmd":["true"],"HostConfig":{{"{field}":"{mode}"}}}}"#
            ),
        );
        assert_eq!(code, "400", "{field}: {body}");
        assert!(body.contains(message), "{body}");
    }
    d.ok(&["rm", "-f", "u1", "p1", "idle"]);
}

/// Cgroup directories (full paths) removed when the test ends, also when it fails, in order.
struct CgroupDirs(Vec<PathBuf>);

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The directories of cgroup `path` in every v1 hierarchy and the cgroup2 one: from each
/// hierarchy's root when it is absolute, else below `pid`'s cgroup there.
fn cgroup_dirs(path: &str, pid: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(names), Some(own_path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let hierarchy = match names {
            "" => "unified".to_string(),
            n => n.strip_prefix("name=").unwrap_or(n).to_string(),
        };
        let root = Path::new("/sys/fs/cgroup").join(hierarchy);
        let base = if path.starts_with('/') {
            root
        } else {
            root.join(own_path.trim_start_matches('/'))
        };
        dirs.push(base.join(path.trim_start_matches('/')));
    }
    dirs
}

/// The path of `pid`'s cgroup in the v1 hierarchy of `controller`.
fn cgroup_of(pid: &str, controller: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.to_string())
        })
        .unwrap()
}

#[test]
fn cgroup_parent() {
    if skip() {
        return;
    }
    let memory_root = Path::new("/sys/fs/cgroup/memory");
    if !memory_root.is_dir() {
        assert!(
            std::env::var("CI").is_err(),
            "no cgroup v1 memory hierarchy"
        );
        eprintln!("skipped: no cgroup v1 memory hierarchy");
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let parent = format!("/bt-ns-{}", std::process::id());
    let relative = format!("bt-nsrel-{}", std::process::id());
    let daemon_memory = cgroup_of(&d.pid().to_string(), "memory");
    let relative_abs = Path::new(&daemon_memory)
        .join(&relative)
        .display()
        .to_string();
    let daemon_pid = d.pid().to_string();
    let mut made = cgroup_dirs(&parent, &daemon_pid);
    made.extend(cgroup_dirs(&relative, &daemon_pid));
    let _cleanup = CgroupDirs(made);

    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "cg",
            "--cgroup-parent",
            &parent,
            "-m",
            "64m",
            "bb:local",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    assert_eq!(inspect(&d, "{{.HostConfig.CgroupParent}}", "cg"), parent);
    let pid = inspect(&d, "{{.State.Pid}}", "cg");
    let expected = format!("{parent}/{id}");
    assert_eq!(cgroup_of(&pid, "memory"), expected);
    assert_eq!(cgroup_of(&pid, "pids"), expected);
    let inside = d.ok(&["exec", "cg", "cat", "/proc/self/cgroup"]);
    assert!(inside.contains(&format!(":memory:{expected}")), "{inside}");
    let dir = memory_root.join(expected.trim_start_matches('/'));
    let limit = || {
        std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(limit(), (64u64 << 20).to_string());
    // update, stats, top and pause find the cgroup there.
    d.ok(&["update", "-m", "96m", "--memory-swap", "-1", "cg"]);
    assert_eq!(limit(), (96u64 << 20).to_string());
    let stats = d.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "cg"]);
    assert!(stats.trim().ends_with("/ 96MiB"), "{stats}");
    let top = d.ok(&["top", "cg"]);
    assert!(top.contains("sleep 300"), "{top}");
    d.ok(&["pause", "cg"]);
    let freezer = Path::new("/sys/fs/cgroup/freezer")
        .join(expected.trim_start_matches('/'))
        .join("freezer.state");
    assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    d.ok(&["unpause", "cg"]);
    // The cgroup goes with the container.
    d.ok(&["rm", "-f", "cg"]);
    assert!(
        wait_for(Duration::from_secs(10), || !dir.exists()),
        "{} is still there",
        dir.display()
    );

    // A relative parent is below the daemon's own cgroup, as with dockerd's cgroupfs driver.
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "rel",
            "--cgroup-parent",
            &relative,
            "-m",
            "32m",
            "bb:local",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    let pid = inspect(&d, "{{.State.Pid}}", "rel");
    let expected = format!("{relative_abs}/{id}");
    assert_eq!(cgroup_of(&pid, "memory"), expected);
    let dir = memory_root.join(expected.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (32u64 << 20).to_string()
    );
    d.ok(&["update", "-m", "48m", "--memory-swap", "-1", "rel"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        (48u64 << 20).to_string()
    );
    d.ok(&["rm", "-f", "rel"]);
    assert!(
        wait_for(Duration::from_secs(10), || !dir.exists()),
        "{} is still there",
        dir.display()
    );
}

/// Processes whose parent is `ppid`, as (pid, state).
fn children_of(ppid: &str) -> Vec<(String, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = stat.rsplit_once(") ")?.1;
            let mut f = after.split_whitespace();
            let state = f.next()?.to_string();
            (f.next()? == ppid).then(|| (e.file_name().to_string_lossy().into_owned(), state))
        })
        .collect()
}

#[test]
fn pause_sandbox_on_an_empty_rootfs() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // An image with no files at all, as a pod sandbox needs none.
    let tar = d.dir.join("empty.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .args(["-T", "/dev/null"])
        .status()
        .unwrap();
    assert!(status.success());
    d.ok(&["import", &tar.display().to_string(), "empty:local"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sandbox",
        "--init",
        "--ipc",
        "shareable",
        "--entrypoint",
        "/dev/init",
        "empty:local",
        "--pause",
    ]);
    assert_eq!(
        inspect(&d, "{{.State.Running}} {{.Path}} {{.Args}}", "sandbox"),
        "true /dev/init [--pause]"
    );
    let pause_pid = inspect(&d, "{{.State.Pid}}", "sandbox");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pause_pid}/cmdline")).unwrap(),
        "/dev/init\0--pause\0"
    );
    // A pod's container in its namespaces: the pause process is PID 1 there.
    let out = d.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:sandbox",
        "--ipc",
        "container:sandbox",
        "bb:local",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; sleep 1 & echo orphaned",
    ]);
    assert_eq!(out, "/dev/init --pause \norphaned\n");
    // The orphaned sleep went to the pause process, which reaps it when it exits.
    let gone = wait_for(Duration::from_secs(15), || {
        children_of(&pause_pid).is_empty()
    });
    assert!(gone, "not reaped: {:?}", children_of(&pause_pid));
    // SIGTERM (docker stop) ends it with 0, at once.
    let t0 = Instant::now();
    d.ok(&["stop", "-t", "30", "sandbox"]);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "sandbox"), "0");
    d.ok(&["rm", "sandbox"]);
}
