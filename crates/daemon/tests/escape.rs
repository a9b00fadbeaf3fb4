#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The escape suite: what a process in a default container (busybox, root, Docker's default
//! capabilities and seccomp profile, no user namespace) tries in order to reach the host, and
//! the exact refusal it meets. The probes live in three files: this one (what the container
//! sees of the host, kernel interfaces, devices, cgroup mounts), `escape_exec.rs` (the
//! runtime's and monitor's binaries, leaked descriptors, working directories) and
//! `escape_files.rs` (`docker cp`, volumes, image layers). A few classes are covered at a lower
//! level, named in the table with their test.
//!
//! dockerd's column was measured on this VM (Debian's docker.io 20.10.24 with runc 1.1.5,
//! started by hand on its own roots with `--iptables=false`, then stopped), with the same
//! busybox image, except where it says "not measured".
//!
//! | probe | berthd | dockerd 20.10 + runc 1.1.5 |
//! | --- | --- | --- |
//! | pids in `/proc` | `/proc/1` only; a host pid: `can't kill pid N: No such process` | same |
//! | network interfaces | `eth0`, `lo` | same |
//! | mount points | the container's own (`/`, `/proc`, `/dev/*`, `/sys`, cgroups, `/etc/{hosts,hostname,resolv.conf}`, masked and read-only paths); host paths only as the sources of the `/etc` binds | same (20.10 does not mask `/proc/interrupts`) |
//! | write `/proc/sys/vm/drop_caches` | `Read-only file system` (EROFS), exit 1 | same |
//! | options of `/proc/{bus,fs,irq,sys}` | `ro,nosuid,nodev,noexec,relatime` (was `ro,relatime`) | same |
//! | write `/sys/class/net/eth0/mtu`, `/sys/fs/cgroup/devices/devices.allow`, mkdir in `/sys/fs/cgroup/memory` | EROFS | same |
//! | `/proc/kcore`, `/proc/sysrq-trigger` | masked (`/dev/null`: 0 bytes) and read-only (EROFS) where the kernel has them; absent on this VM's kernel, inside too | same |
//! | `--read-only`: append to `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` | EROFS (was writable) | EROFS |
//! | `mknod /tmp/disk b MAJ MIN` (the host's root disk, 8:0) | made (CAP_MKNOD; was EPERM: runc's `m` rules were missing); opening it: `Operation not permitted` (devices cgroup); without CAP_MKNOD: EPERM | same |
//! | `mount -t cgroup -o memory` (default caps) | `permission denied (are you root?)` (EPERM), exit 1 | same |
//! | the same with `--cap-add SYS_ADMIN` | **succeeds**: the host's memory hierarchy and its `release_agent` are reachable (never written here). A known weakness, as with dockerd on a host without AppArmor; user-namespace remapping closes it | same |
//! | `docker exec C /evil`, `/evil` = `#!/proc/self/exe` (CVE-2019-5736) | exit 126, `exec: "/evil": no such file or directory` (this kernel refuses the exec child's own `/proc/self/exe` inside the container); the monitor (was: writable, in place) and the runtime run from a read-only detached bind of their binary; a loop in the container opening `/proc/PID/exe` of every new process never held either binary (the exec child is non-dumpable), any write it tries must fail (ETXTBSY or EROFS); both binaries unchanged (`escape_exec.rs`; runtime level: `crates/runtime/tests/security.rs`) | exit 1, `exec /evil: no such file or directory`; runc runs from a sealed memfd copy |
//! | descriptors of `run`, `run -i`, `exec`, `exec -i`, the init | `0 1 2` (`escape_exec.rs`; runtime level: `security.rs` `no_host_descriptor_leaks_into_the_container`) | `0 1 2` |
//! | `-w /proc/self/fd/N` (CVE-2024-21626) | `run`: 125, `exec`: 126, `process.cwd /proc/self/fd/N: Not a directory`; a host directory as cwd: `outside the container` (runtime level: `security.rs`) | `run`: 125 `mkdir /proc/self/fd/3: not a directory`; `exec`: 126 `chdir to cwd ... not a directory` (runc 1.1.5 predates the 1.1.12 fix) |
//! | `docker cp` of `/leak` -> `/etc/shadow` | the link; `-L`: `Could not find the file /etc/shadow in container leak` (`escape_files.rs`; more: `docker_files.rs` `cp_through_a_symlink_to_the_host_stays_in_the_container`) | same |
//! | a volume or tmpfs on `/esc/target`, `/esc` an image symlink to a host directory | mounted inside the rootfs, the host directory untouched (`escape_files.rs`; runtime: `filesystem.rs`; volume subpaths: `docker_mounts.rs`) | not measured (runc resolves in the root: same) |
//! | a layer with `../x` (`import`, `load`) | refused: `layer entry "../x" escapes the layer directory`; nothing written outside (`escape_files.rs`; layer level: `crates/image/tests/layer.rs`) | `import`: accepted, the entry written at the layer's root (`diff/x`); nothing outside |
//! | `PUT .../archive` with `../` | refused (`docker_archive.rs`) | same (not measured) |
//! | 100 MB `Content-Length` to `POST /containers/create` and ten bytes | 413 `request body too large: ...` at once, the rest unread (`hostile_http.rs` `a_declared_100_mb_body_is_answered_before_it_is_sent`) | no limit (not measured): the JSON decoder reads as the body comes |

mod common;

use std::path::Path;

use common::{skip, text, Daemon};

/// `docker run --rm ARGS`: (stdout, stderr, exit code).
fn run(d: &Daemon, args: &[&str]) -> (String, String, i32) {
    let mut all = vec!["run", "--rm"];
    all.extend(args);
    let out = d.docker(&all);
    let (o, e) = text(&out);
    (o, e, out.status.code().unwrap_or(-1))
}

/// `sh -c SCRIPT` in a default busybox container: (stdout, stderr, exit code).
fn sh(d: &Daemon, script: &str) -> (String, String, i32) {
    run(d, &["bb:local", "sh", "-c", script])
}

#[test]
fn the_container_sees_only_its_own_pids_interfaces_and_mounts() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // The shell expands the glob itself: no other process exists in the container.
    let (out, err, code) = sh(&d, "echo /proc/[0-9]*; kill -0 1; kill -0 2 2>&1; exit 0");
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/proc/1"), "{out}");
    // A host pid (berthd's, 1 on the host is too) is not there to signal.
    let (out, _, _) = sh(&d, &format!("kill -0 {} 2>&1", d.pid()));
    assert_eq!(
        out.trim(),
        format!("sh: can't kill pid {}: No such process", d.pid())
    );

    let (out, _, _) = sh(
        &d,
        "ls /sys/class/net; cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort",
    );
    assert_eq!(out, "eth0\nlo\neth0\nlo\n", "{out}");

    // Every mount point is the container's own; none of the host's shows through.
    let (out, _, _) = sh(&d, "cut -d' ' -f5 /proc/self/mountinfo");
    let own = [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/mqueue",
        "/dev/shm",
        "/sys",
        "/sys/fs/cgroup",
        "/etc/resolv.conf",
        "/etc/hostname",
        "/etc/hosts",
    ];
    let masked_or_readonly = |p: &str| {
        [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/asound",
            "/proc/acpi",
            "/proc/interrupts",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ]
        .contains(&p)
    };
    for point in out.lines() {
        assert!(
            own.contains(&point)
                || point.starts_with("/sys/fs/cgroup/")
                || masked_or_readonly(point),
            "a mount point that is not the container's: {point}\n{out}"
        );
    }
    // Host paths show only as the sources of the engine's binds (mountinfo's fourth field),
    // as dockerd's `/var/lib/docker/containers/ID/hosts` do.
    let (out, _, _) = sh(&d, "cut -d' ' -f4,5 /proc/self/mountinfo");
    let sources: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&*d.dir.to_string_lossy()))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        sources,
        ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"],
        "{out}"
    );
}

#[test]
fn kernel_interfaces_refuse_writes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let (out, _, _) = sh(
        &d,
        "echo 3 > /proc/sys/vm/drop_caches; echo rc=$?; \
         echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?",
    );
    let (_, err, _) = sh(&d, "echo 3 > /proc/sys/vm/drop_caches");
    assert_eq!(
        err.trim(),
        "sh: can't create /proc/sys/vm/drop_caches: Read-only file system"
    );
    assert_eq!(out, "rc=1\nrc=1\n", "{out}");
    // runc's options on the read-only /proc paths: read-only, and nosuid, nodev, noexec kept.
    let (out, _, _) = sh(
        &d,
        "awk '$5 ~ /^\\/proc\\/(bus|fs|irq|sys)$/ { print $5, $6 }' /proc/self/mountinfo",
    );
    let expected: String = ["bus", "fs", "irq", "sys"]
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .map(|p| format!("/proc/{p} ro,nosuid,nodev,noexec,relatime\n"))
        .collect();
    assert_eq!(out, expected);

    // sysfs is read-only, the cgroup files too.
    let (_, err, code) = sh(&d, "echo 9000 > /sys/class/net/eth0/mtu");
    assert_eq!(
        (err.trim(), code),
        (
            "sh: can't create /sys/class/net/eth0/mtu: Read-only file system",
            1
        )
    );
    let (_, err, code) = sh(&d, "echo a > /sys/fs/cgroup/devices/devices.allow");
    assert_eq!(
        (err.trim(), code),
        (
            "sh: can't create /sys/fs/cgroup/devices/devices.allow: Read-only file system",
            1
        )
    );
    let (_, err, code) = sh(&d, "mkdir /sys/fs/cgroup/memory/escape");
    assert_eq!(
        (err.trim(), code),
        (
            "mkdir: can't create directory '/sys/fs/cgroup/memory/escape': Read-only file system",
            1
        )
    );

    // /proc/kcore is masked (empty), /proc/sysrq-trigger read-only, where the kernel has them
    // (this VM's has neither: then they are absent inside too).
    let (out, err, _) = sh(&d, "wc -c < /proc/kcore");
    if Path::new("/proc/kcore").exists() {
        assert_eq!(out.trim(), "0", "{err}");
    } else {
        assert_eq!(err.trim(), "sh: can't open /proc/kcore: no such file");
    }
    let (_, err, code) = sh(&d, "echo h > /proc/sysrq-trigger");
    let why = if Path::new("/proc/sysrq-trigger").exists() {
        "Read-only file system"
    } else {
        "nonexistent directory" // busybox's words for ENOENT
    };
    assert_eq!(
        (err.trim(), code),
        (
            format!("sh: can't create /proc/sysrq-trigger: {why}").as_str(),
            1
        )
    );
}

#[test]
fn read_only_root_makes_the_etc_files_read_only_too() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    for file in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        let (_, err, code) = run(
            &d,
            &[
                "--read-only",
                "bb:local",
                "sh",
                "-c",
                &format!("echo x >> {file}"),
            ],
        );
        assert_eq!(
            (err.trim(), code),
            (
                format!("sh: can't create {file}: Read-only file system").as_str(),
                1
            )
        );
        // Without --read-only they stay writable, as dockerd's.
        let (_, err, code) = sh(&d, &format!("echo x >> {file}"));
        assert_eq!(code, 0, "{file}: {err}");
    }
}

#[test]
fn a_host_disk_made_with_mknod_cannot_be_opened() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // The host's root filesystem's block device, and sda (8:0).
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/").unwrap());
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    for (major, minor) in [(major, minor), (8, 0)] {
        let (out, err, code) = sh(
            &d,
            &format!(
                "mknod /tmp/disk b {major} {minor} && echo made; head -c 1 /tmp/disk; echo rc=$?"
            ),
        );
        assert_eq!(out, "made\nrc=1\n", "{err}");
        assert_eq!(err.trim(), "head: /tmp/disk: Operation not permitted");
        assert_eq!(code, 0);
    }
    // Without CAP_MKNOD not even the node is made.
    let (_, err, code) = run(
        &d,
        &[
            "--cap-drop",
            "MKNOD",
            "bb:local",
            "mknod",
            "/tmp/disk",
            "b",
            "8",
            "0",
        ],
    );
    assert_eq!(
        (err.trim(), code),
        ("mknod: /tmp/disk: Operation not permitted", 1)
    );
}

#[test]
fn cgroup_mounts_need_cap_sys_admin_which_is_a_known_weakness() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // The release_agent escape starts by mounting a cgroup v1 hierarchy. The memory one is
    // already mounted on the host: mounting it again reaches the host's root of it. Nothing
    // is ever written there.
    let probe = "mkdir /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg; echo rc=$?; \
                 test -e /tmp/cg/release_agent && echo reachable; umount /tmp/cg 2>/dev/null; true";
    let (out, err, _) = sh(&d, probe);
    assert_eq!(out, "rc=1\n", "{err}");
    assert_eq!(err.trim(), "mount: permission denied (are you root?)");
    // With CAP_SYS_ADMIN the mount succeeds, as under dockerd on a host without AppArmor: the
    // host's hierarchy and its release_agent are reachable (root in the container is root on
    // the host). User-namespace remapping closes this; nothing else here does.
    let (out, err, _) = run(
        &d,
        &["--cap-add", "SYS_ADMIN", "bb:local", "sh", "-c", probe],
    );
    assert_eq!(out, "rc=0\nreachable\n", "{err}");
}
