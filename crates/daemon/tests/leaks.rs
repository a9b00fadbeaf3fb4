#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! 100 `docker run --rm` cycles leave nothing behind: no mount, cgroup, network namespace,
//! monitor process, container record or snapshot; and a descriptor berthd inherits does not
//! reach the monitors, which outlive it.

mod common;

use std::path::Path;

use common::{skip, Daemon};

/// Entries of `dir` (none if it does not exist).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn monitors_under(dir: &Path) -> usize {
    let needle = dir.display().to_string();
    entries(Path::new("/proc"))
        .iter()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    // argv[0] is the monitor (berthd's own command line names it too).
                    let c = String::from_utf8_lossy(&c);
                    let argv0 = c.split('\0').next().unwrap_or_default();
                    argv0.ends_with("berth-monitor") && c.contains(&needle)
                })
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn a_hundred_run_rm_cycles_leave_nothing_behind() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let mut ids = Vec::new();
    for i in 0..100 {
        let cidfile = d.dir.join(format!("cid-{i}"));
        let out = d.ok(&[
            "run",
            "--rm",
            "--cidfile",
            cidfile.to_str().unwrap(),
            "bb:local",
            "echo",
            &i.to_string(),
        ]);
        assert_eq!(out.trim(), i.to_string());
        ids.push(std::fs::read_to_string(&cidfile).unwrap());
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // Monitors exit on the daemon's shutdown request, shortly after their container.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while monitors_under(&d.dir) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "monitor processes are left"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ours = d.mounts_under();
    assert!(ours.is_empty(), "mounts left: {ours:?}");
    assert!(entries(&d.dir.join("run/c")).is_empty());
    assert!(entries(&d.dir.join("run/netns")).is_empty());
    // A removed container's files are deleted in the background, right after its removal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !entries(&d.dir.join("data/containers")).is_empty()
        || common::snapshot_keys(&d.dir)
            .iter()
            .any(|k| k.starts_with("container-"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "container records or layers left: {:?}",
            entries(&d.dir.join("data/containers"))
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Only the runtime's cache of compiled seccomp filters, which outlives containers.
    let state = entries(&d.dir.join("run/runtime"));
    assert!(state.iter().all(|e| e == "@seccomp-cache"), "{state:?}");
    for controller in [
        "memory",
        "pids",
        "cpu,cpuacct",
        "freezer",
        "devices",
        "blkio",
        "cpuset",
    ] {
        let dir = Path::new("/sys/fs/cgroup").join(controller).join("berth");
        let left: Vec<&String> = ids.iter().filter(|id| dir.join(id).exists()).collect();
        assert!(left.is_empty(), "cgroups left in {controller}: {left:?}");
    }
    let dirs = entries(&d.dir.join("data/image/snapshots/overlay/snapshots"));
    let recorded = common::snapshot_keys(&d.dir);
    assert_eq!(
        dirs.len(),
        recorded.len(),
        "snapshot directories {dirs:?}, records {recorded:?}"
    );
}

#[test]
fn descriptors_berthd_inherits_do_not_reach_the_monitors() {
    if skip() {
        return;
    }
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // A pipe without close-on-exec, as a shell or a CI runner leaves one: berthd inherits it.
    let (read, write) = nix::unistd::pipe().unwrap();
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", write.as_raw_fd()))
        .unwrap()
        .ino();
    let d = Daemon::start();
    drop(read);
    d.busybox("bb");
    let berthd_has_it = |pid: &str| {
        entries(Path::new(&format!("/proc/{pid}/fd")))
            .iter()
            .any(|fd| {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                    .is_ok_and(|l| l.to_string_lossy() == format!("pipe:[{inode}]"))
            })
    };
    let id = d.ok(&["run", "-d", "bb", "sleep", "300"]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", id.trim()]);
    // The monitor is the container process's parent.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let monitor = after_name.split_whitespace().nth(1).unwrap().to_string();
    let comm = std::fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap();
    assert_eq!(comm.trim(), "berth-monitor");
    assert!(
        !berthd_has_it(&monitor),
        "the monitor holds berthd's inherited pipe"
    );
    assert!(
        !berthd_has_it(pid.trim()),
        "the container holds berthd's inherited pipe"
    );
    drop(write);
}

/// A client that goes takes what served it along: `docker run -d` asks for the container's
/// wait and leaves, as do a `docker wait` and a `docker events` that are killed. berthd's
/// live tasks (`NGoroutines` of `docker info`, as dockerd counts its goroutines) come back to
/// one per running container (its exit watch), and `NEventsListener` to none.
#[test]
fn clients_that_leave_leave_no_task_behind() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb");
    let info = || {
        let s = d.ok(&[
            "info",
            "--format",
            "{{.NGoroutines}} {{.NEventsListener}} {{.NFd}}",
        ]);
        let v: Vec<usize> = s.split_whitespace().map(|n| n.parse().unwrap()).collect();
        (v[0], v[1], v[2])
    };
    let settles_at = |tasks: usize, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (now, listeners, _) = info();
            if now == tasks && listeners == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {now} tasks (expected {tasks}), {listeners} event listeners"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let (idle, _, fds) = info();
    for _ in 0..5 {
        d.ok(&["run", "-d", "--network", "none", "bb", "sleep", "1000"]);
    }
    settles_at(idle + 5, "after five `run -d`");
    let id = d.ok(&["ps", "-q", "--latest"]).trim().to_string();
    // Clients killed while they wait: each adds a task, gone once it is.
    for args in [
        vec!["wait", id.as_str()],
        vec!["events", "--filter", "container=nothing-matches"],
    ] {
        let mut child = std::process::Command::new(common::DOCKER)
            .args(&args)
            .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while info().0 <= idle + 5 {
            assert!(std::time::Instant::now() < deadline, "{args:?} never came");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        settles_at(idle + 5, &format!("after a killed {args:?}"));
    }
    // And a descriptor per running container at most (its monitor's connection).
    assert!(
        info().2 <= fds + 5,
        "{} descriptors, {fds} before",
        info().2
    );
    let all = d.ok(&["ps", "-aq"]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(all.split_whitespace());
    d.ok(&rm);
}

/// berthd raises its soft limit of open files to the hard one (it holds one descriptor per
/// running container), as Go's runtime raises dockerd's: started with a soft limit of 1000,
/// it runs with the hard limit.
#[test]
fn berthd_raises_its_open_files_limit() {
    if skip() {
        return;
    }
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap();
    assert!(hard > 1000, "hard limit {hard}");
    // The test's own soft limit, which berthd inherits; 1000 leaves the other tests enough.
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(1000),
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let d = Daemon::start();
    setrlimit(Resource::Nofile, limit).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let values: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(values[3..5], [hard.to_string(), hard.to_string()], "{line}");
}
