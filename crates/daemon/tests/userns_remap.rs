#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! `berthd --userns-remap`: containers in a user namespace whose root is the first id of the
//! remap user's subordinate range, their image layers idmapped (no copy), and dockerd's
//! refusals and opt-out (`--userns=host`).
//!
//! Each test makes a user of its own (`useradd -r`) with a range it writes in /etc/subuid and
//! /etc/subgid; a guard removes both, also when the test fails.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{skip, Daemon};

/// useradd/userdel and the edits of /etc/sub[ug]id, one test at a time.
static ETC: Mutex<()> = Mutex::new(());

/// A user made for a test, with `size` subordinate ids from `start`; removed on drop.
struct RemapUser {
    name: String,
    start: u32,
}

const SUBID_FILES: [&str; 2] = ["/etc/subuid", "/etc/subgid"];

impl RemapUser {
    fn new(name: &str, start: u32) -> RemapUser {
        let _etc = ETC.lock().unwrap_or_else(|e| e.into_inner());
        let user = RemapUser {
            name: name.to_string(),
            start,
        };
        // A leftover of a killed run goes first.
        user.remove_locked();
        let status = Command::new("useradd")
            .args(["-r", "-s", "/bin/false", name])
            .status()
            .unwrap();
        assert!(status.success(), "useradd {name}");
        for file in SUBID_FILES {
            let mut text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{name}:{start}:65536\n"));
            std::fs::write(file, text).unwrap();
        }
        user
    }

    fn remove_locked(&self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        remove_subid_lines(&self.name);
    }
}

/// Drops the lines of `owner` from /etc/subuid and /etc/subgid.
fn remove_subid_lines(owner: &str) {
    for file in SUBID_FILES {
        if let Ok(text) = std::fs::read_to_string(file) {
            let kept: String = text
                .lines()
                .filter(|l| l.split(':').next() != Some(owner))
                .map(|l| format!("{l}\n"))
                .collect();
            if kept != text {
                let _ = std::fs::write(file, kept);
            }
        }
    }
}

impl Drop for RemapUser {
    fn drop(&mut self) {
        let _etc = ETC.lock().unwrap_or_else(|e| e.into_inner());
        self.remove_locked();
    }
}

/// `docker ARGS`, which must fail; its stderr.
fn fails(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(
        !out.status.success(),
        "docker {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bytes used under `dir` (du -sb: hard links counted once).
fn disk_used(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(dir).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn upper_dir(d: &Daemon, container: &str) -> PathBuf {
    PathBuf::from(
        d.ok(&["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", container])
            .trim(),
    )
}

/// A host directory owned by root, mode 0755, removed on drop.
struct HostDir(tempfile::TempDir);

impl HostDir {
    fn new() -> HostDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        HostDir(dir)
    }
    fn path(&self) -> &str {
        self.0.path().to_str().unwrap()
    }
}

#[test]
fn remapped_root_is_an_unprivileged_host_user() {
    if skip() {
        return;
    }
    let user = RemapUser::new("btremap1", 1_100_000);
    let d = Daemon::start_with_args(&["--userns-remap", &user.name], |_| {});
    d.busybox("bb:local");
    let start = user.start.to_string();

    let info = d.ok(&["info", "-f", "{{json .SecurityOptions}}"]);
    assert!(info.contains("name=userns"), "{info}");

    // Root inside, the range's start outside.
    assert_eq!(
        d.ok(&["run", "--rm", "bb:local", "id"]).trim(),
        "uid=0(root) gid=0(root)"
    );
    let map = d.ok(&[
        "run",
        "--rm",
        "bb:local",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    let rows: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["0", start.as_str(), "65536"],
            ["0", start.as_str(), "65536"]
        ]
    );

    // A shareable /dev/shm (a tmpfs berthd mounts on the host) is the remapped root's, as
    // with dockerd, and a container joining it writes there.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "shm1",
        "--ipc",
        "shareable",
        "bb:local",
        "sleep",
        "600",
    ]);
    assert_eq!(
        d.ok(&["exec", "shm1", "stat", "-c", "%u:%g", "/dev/shm"]),
        "0:0\n"
    );
    d.ok(&[
        "run",
        "--rm",
        "--ipc",
        "container:shm1",
        "bb:local",
        "sh",
        "-c",
        "echo x > /dev/shm/f",
    ]);
    // Its PID namespace cannot be joined (berth-runtime does not share a user namespace).
    let out = d.docker(&["run", "--rm", "--pid", "container:shm1", "bb:local", "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot join PID of container shm1 with --userns-remap"),
        "{err}"
    );
    d.ok(&["rm", "-f", "shm1"]);

    // The image's files are root's inside; a file the container writes is the range's start's
    // on the host, in the container's layer, as is the layer's top.
    d.ok(&["run", "-d", "--name", "c1", "bb:local", "sleep", "600"]);
    assert_eq!(
        d.ok(&[
            "exec",
            "c1",
            "stat",
            "-c",
            "%u:%g",
            "/bin/busybox",
            "/",
            "/etc"
        ]),
        "0:0\n0:0\n0:0\n"
    );
    d.ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "echo hi > /newfile && chmod 600 /etc/passwd",
    ]);
    let upper = upper_dir(&d, "c1");
    for f in ["newfile", "etc/passwd", ""] {
        let m = std::fs::metadata(upper.join(f)).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (user.start, user.start),
            "{f:?} in {upper:?}"
        );
    }
    assert_eq!(
        d.ok(&["inspect", "-f", "[{{.HostConfig.UsernsMode}}]", "c1"])
            .trim(),
        "[]"
    );

    // exec is in the container's user namespace too.
    let exec_map = d.ok(&["exec", "c1", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        exec_map.split_whitespace().collect::<Vec<_>>(),
        ["0", start.as_str(), "65536"]
    );
    // The container's processes are the range's start's on the host.
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "c1"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        [start.as_str(); 4]
    );

    // No copy of the layers: the container's layer holds only what it wrote.
    let layer = upper.parent().unwrap();
    assert!(
        disk_used(layer) < 64 * 1024,
        "the container's layer is {} bytes",
        disk_used(layer)
    );
    // docker cp speaks the container's ids: in, a file is root's inside (the range's start's
    // on the host); out, the tar has the container's owners.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("in.txt"), "in").unwrap();
    let from = format!("{}/in.txt", src.path().display());
    d.ok(&["cp", &from, "c1:/in.txt"]);
    assert_eq!(
        d.ok(&["exec", "c1", "stat", "-c", "%u:%g", "/in.txt"]),
        "0:0\n"
    );
    assert_eq!(
        std::fs::metadata(upper.join("in.txt")).unwrap().uid(),
        user.start
    );
    let out = d.docker(&["cp", "c1:/newfile", "-"]);
    assert!(out.status.success());
    let mut tar = tar::Archive::new(&out.stdout[..]);
    let entry = tar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (entry.header().uid().unwrap(), entry.header().gid().unwrap()),
        (0, 0)
    );

    // Another remapped container in c1's network namespace (which berthd made, owned by the
    // host's user namespace).
    // (Told by the namespace itself: `hostname -i` fails when the 12 hex digits of the
    // container's id happen to be all decimal, which the resolver takes for an address.)
    let netns = d.ok(&["exec", "c1", "readlink", "/proc/self/ns/net"]);
    assert!(netns.starts_with("net:["), "{netns}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "container:c1",
            "bb:local",
            "readlink",
            "/proc/self/ns/net"
        ]),
        netns
    );

    // So does docker export.
    let out = d.docker(&["export", "c1"]);
    assert!(out.status.success());
    let mut tar = tar::Archive::new(&out.stdout[..]);
    let mut owners = std::collections::BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if ["newfile", "bin/busybox", "in.txt"].contains(&path.as_str()) {
            owners.insert(
                path,
                (entry.header().uid().unwrap(), entry.header().gid().unwrap()),
            );
        }
    }
    assert_eq!(
        owners,
        [
            ("bin/busybox", (0, 0)),
            ("in.txt", (0, 0)),
            ("newfile", (0, 0))
        ]
        .map(|(p, o)| (p.to_string(), o))
        .into()
    );

    // A commit writes the layer with the container's ids, not the host's.
    d.ok(&["commit", "c1", "committed:1"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--userns=host",
            "committed:1",
            "stat",
            "-c",
            "%u:%g",
            "/newfile",
            "/etc/passwd"
        ]),
        "0:0\n0:0\n"
    );
    d.ok(&["rm", "-f", "c1"]);

    // A build's RUN step runs remapped too, and its layer has the container's ids.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb:local\nRUN cat /proc/self/uid_map > /built && chown 5:6 /built\n",
    )
    .unwrap();
    let out = d
        .docker_command(&["build", "-q", "-t", "built:1", ctx.path().to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = d.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "built:1",
        "sh",
        "-c",
        "stat -c %u:%g /built; cat /built",
    ]);
    let mut lines = built.lines();
    assert_eq!(lines.next(), Some("5:6"));
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["0", start.as_str(), "65536"]
    );

    // A named volume's data is the remapped root's; a bind of a root-owned host directory is
    // not writable by the container's root (nothing is chowned), as with dockerd.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "bb:local",
            "sh",
            "-c",
            "stat -c %u:%g /data && touch /data/x"
        ]),
        "0:0\n"
    );
    let data = PathBuf::from(
        d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol1"])
            .trim(),
    );
    for p in [data.clone(), data.join("x")] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (user.start, user.start), "{p:?}");
    }
    // A new volume on an image directory gets the image's files, root's inside too.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "-v",
            "vol3:/bin",
            "bb:local",
            "stat",
            "-c",
            "%u:%g",
            "/bin/busybox"
        ]),
        "0:0\n"
    );
    // The rest of a container's setup works in the user namespace.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/run",
            "--init",
            "bb:local",
            "sh",
            "-c",
            "touch /run/x && stat -c %u /run/x && ! touch /y 2>/dev/null && echo ro"
        ]),
        "0\nro\n"
    );
    d.ok(&["volume", "create", "vol2"]);
    let m = std::fs::metadata(d.data_root.join("volumes/vol2/_data")).unwrap();
    assert_eq!(m.uid(), user.start);

    let host = HostDir::new();
    let bind = format!("{}:/b", host.path());
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "bb:local",
        "sh",
        "-c",
        "stat -c %u:%g /b; touch /b/x",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "65534:65534\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "touch: /b/x: Permission denied\n"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!host.0.path().join("x").exists());

    // --userns=host: the host's namespace, and the bind is root's to write.
    let out = d.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "-v",
        &bind,
        "bb:local",
        "sh",
        "-c",
        "touch /b/x && cat /proc/self/uid_map",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    assert_eq!(std::fs::metadata(host.0.path().join("x")).unwrap().uid(), 0);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--userns=host",
            "--privileged",
            "bb:local",
            "id",
            "-u"
        ])
        .trim(),
        "0"
    );
}

#[test]
fn refusals_restarts_and_opt_out() {
    if skip() {
        return;
    }
    let user = RemapUser::new("btremap2", 1_200_000);
    let mut d = Daemon::start_with_args(
        &["--userns-remap", &format!("{}:{}", user.name, user.name)],
        |_| {},
    );
    d.busybox("bb:local");
    let err = fails(&d, &["run", "--rm", "--privileged", "bb:local", "true"]);
    assert!(
        err.contains("Error response from daemon: privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode"),
        "{err}"
    );
    let err = fails(
        &d,
        &["run", "--rm", "--network", "host", "bb:local", "true"],
    );
    assert!(
        err.contains("cannot share the host's network namespace when user namespaces are enabled"),
        "{err}"
    );
    let err = fails(&d, &["run", "--rm", "--pid", "host", "bb:local", "true"]);
    assert!(
        err.contains("cannot share the host PID namespace when user namespaces are enabled"),
        "{err}"
    );
    // A remapped container stopped and started again, then across a restart of berthd.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "r1",
        "bb:local",
        "sh",
        "-c",
        "echo x >> /log; sleep 600",
    ]);
    d.ok(&["restart", "-t", "0", "r1"]);
    d.kill9();
    d.spawn();
    let out = d.ok(&[
        "exec",
        "r1",
        "sh",
        "-c",
        "cat /log; stat -c %u /log; cat /proc/self/uid_map",
    ]);
    let start = user.start.to_string();
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["x", "x", "0", "0", start.as_str(), "65536"]
    );
    d.ok(&["rm", "-f", "r1"]);

    // Opting out allows them.
    d.ok(&[
        "run",
        "--rm",
        "--userns=host",
        "--network",
        "host",
        "--pid",
        "host",
        "bb:local",
        "true",
    ]);
}

/// The probe of CVE-2022-0492's first step: mounting a cgroup v1 hierarchy (whose
/// `release_agent` the attack would then write). It only mounts, looks and unmounts: it never
/// writes a `release_agent`.
const CGROUP_PROBE: &str = "mkdir /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg && \
     echo mounted && ls /tmp/cg/release_agent && umount /tmp/cg";

#[test]
fn cgroup_v1_release_agent_escape_fails_with_remapping() {
    if skip() {
        return;
    }
    let user = RemapUser::new("btremap3", 1_300_000);
    let d = Daemon::start_with_args(&["--userns-remap", &user.name], |_| {});
    d.busybox("bb:local");
    let probe = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--cap-add", "SYS_ADMIN"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["bb:local", "sh", "-c", CGROUP_PROBE]);
        let out = d.docker(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // In the host's user namespace, CAP_SYS_ADMIN mounts the host's memory hierarchy, the
    // escape's first step (the seccomp profile lets mount through with that capability).
    assert_eq!(
        probe(&["--userns=host"]),
        (
            Some(0),
            "mounted\n/tmp/cg/release_agent\n".into(),
            String::new()
        )
    );
    // In the remapped one, the same capability is over the container's user namespace only:
    // cgroup v1 cannot be mounted there (EPERM).
    assert_eq!(
        probe(&[]),
        (
            Some(1),
            String::new(),
            "mount: permission denied (are you root?)\n".into()
        )
    );
}

/// daemon.json's `"userns-remap": "default"`: the user `dockremap` (made when missing, with
/// the first free range from 100000 in /etc/subuid and /etc/subgid), whose first range
/// containers' root maps to.
#[test]
fn default_remaps_to_dockremap() {
    if skip() {
        return;
    }
    struct Dockremap {
        existed: bool,
    }
    impl Drop for Dockremap {
        fn drop(&mut self) {
            if !self.existed {
                let _etc = ETC.lock().unwrap_or_else(|e| e.into_inner());
                let _ = Command::new("userdel").arg("dockremap").output();
                remove_subid_lines("dockremap");
            }
        }
    }
    let (d, _dockremap) = {
        let _etc = ETC.lock().unwrap_or_else(|e| e.into_inner());
        let existed = Command::new("id")
            .arg("dockremap")
            .output()
            .unwrap()
            .status
            .success();
        let guard = Dockremap { existed };
        let d = Daemon::start_with(|dir| {
            std::fs::write(dir.join("daemon.json"), r#"{"userns-remap": "default"}"#).unwrap();
        });
        d.ok(&["version"]);
        (d, guard)
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("dockremap:")));
    let first = |file: &str| -> (String, String) {
        let text = std::fs::read_to_string(file).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("dockremap:"))
            .unwrap_or_else(|| panic!("no dockremap range in {file}: {text}"));
        let mut f = line.split(':').skip(1);
        (f.next().unwrap().into(), f.next().unwrap().into())
    };
    let (uid_start, uid_size) = first("/etc/subuid");
    let (gid_start, gid_size) = first("/etc/subgid");
    d.busybox("bb:local");
    let maps = d.ok(&[
        "run",
        "--rm",
        "bb:local",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/gid_map",
    ]);
    let rows: Vec<Vec<&str>> = maps
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [["0", &uid_start, &uid_size], ["0", &gid_start, &gid_size]]
    );
}
