//! A dead monitor or a dead daemon never orphans a container: after a `kill -9` of a
//! container's monitor, or of berthd in the middle of starts, every container ends up either
//! running and watched, or stopped with nothing left of it; everything can be removed, and
//! nothing stays: no process, no cgroup, no runtime state.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::time::{Duration, Instant};

use common::{skip, Daemon};

/// Pids of the processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// What is left of container `id` below the engine: its monitors, its cgroup directories, the
/// runtime's state.
fn leftovers(d: &Daemon, id: &str) -> Vec<String> {
    let mut found: Vec<String> = processes_with(&format!("--id {id}"))
        .into_iter()
        .map(|p| format!("process {p}"))
        .collect();
    found.extend(
        berth_tests::cgroup_dirs(&format!("/berth/{id}"))
            .into_iter()
            .map(|d| format!("cgroup {}", d.display())),
    );
    let state = d.dir.join("run/runtime").join(id);
    if state.exists() {
        found.push(format!("runtime state {}", state.display()));
    }
    found
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_monitor_ends_its_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let id = d.ok(&["run", "-d", "--name", "watched", "busybox", "sleep", "300"]);
    let id = id.trim().to_string();
    let monitors = processes_with(&format!("berth-monitor --id {id}"));
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitors[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the container stopped", Duration::from_secs(30), || {
        d.ok(&["inspect", "-f", "{{.State.Running}}", "watched"])
            .trim()
            == "false"
    });
    let code = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "watched"]);
    assert_eq!(code.trim(), "137");
    assert_eq!(leftovers(&d, &id), Vec::<String>::new());
    // It starts again, and goes without a trace.
    d.ok(&["start", "watched"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "watched"])
            .trim(),
        "true"
    );
    d.ok(&["rm", "-f", "watched"]);
    assert_eq!(leftovers(&d, &id), Vec::<String>::new());
}

#[test]
fn a_daemon_killed_during_a_burst_of_runs_leaves_nothing_behind() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("busybox");
    // 20 `run -d` at once; berthd dies while they are under way.
    let runs: Vec<_> = (0..20)
        .map(|n| {
            let mut cmd = d.docker_command(&[
                "run",
                "-d",
                "--name",
                &format!("burst{n}"),
                "busybox",
                "sleep",
                "300",
            ]);
            std::thread::spawn(move || {
                berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(60))
            })
        })
        .collect();
    // Once some have begun starting (their monitors run), kill the daemon.
    let run_dir = d.dir.join("run/c").display().to_string();
    wait_for("a start began", Duration::from_secs(30), || {
        !processes_with(&run_dir).is_empty()
    });
    d.kill9();
    for r in runs {
        let _ = r.join();
    }
    d.spawn();
    // Every container is either running (watched again) or not, and then nothing of a start
    // is left; each can be started and removed.
    let ids = d.ok(&["ps", "-aq", "--no-trunc"]);
    let ids: Vec<String> = ids.split_whitespace().map(str::to_string).collect();
    assert!(!ids.is_empty());
    for id in &ids {
        let running = d.ok(&["inspect", "-f", "{{.State.Running}}", id]);
        if running.trim() != "true" {
            assert_eq!(
                leftovers(&d, id),
                Vec::<String>::new(),
                "{id} is not running"
            );
            let out = d.docker(&["start", id]);
            assert!(out.status.success(), "start {id}: {:?}\n{}", out, d.log());
        }
    }
    for id in &ids {
        d.ok(&["rm", "-f", id]);
        assert_eq!(leftovers(&d, id), Vec::<String>::new(), "after rm -f {id}");
    }
    assert!(processes_with(&run_dir).is_empty(), "monitors left");
    // No runtime state left; only the runtime's cache of compiled seccomp filters.
    let state: Vec<String> = std::fs::read_dir(d.dir.join("run/runtime"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "@seccomp-cache")
        .collect();
    assert_eq!(state, Vec::<String>::new());
}

#[test]
fn what_killed_operations_left_on_disk_is_removed_at_start() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("busybox");
    d.kill9();
    // As a `load`, an unpack and a `volume rm` killed half way leave them: a temporary
    // directory and an active snapshot of a process that is gone, a committed layer no image
    // uses, a volume directory renamed away.
    let dead = u32::MAX;
    let data = d.dir.join("data");
    let tmp = data.join(format!("image/tmp/archive-{dead}-1"));
    std::fs::create_dir_all(tmp.join("blobs")).unwrap();
    std::fs::write(tmp.join("blobs/big"), vec![0u8; 1 << 20]).unwrap();
    let trash = data.join("volumes/.removed-0123");
    std::fs::create_dir_all(&trash).unwrap();
    std::fs::write(trash.join("data"), b"x").unwrap();
    // A volume create cut before its rename into place.
    let half_made = data.join("volumes/.new-4567");
    std::fs::create_dir_all(half_made.join("_data")).unwrap();
    let keys_before = {
        let store = berth_image::import::ImageStore::open(&data.join("image")).unwrap();
        let keys: Vec<String> = store
            .snapshots
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        store
            .snapshots
            .prepare(&format!("unpack-{dead}-aa"), None)
            .unwrap();
        store
            .snapshots
            .prepare("unpack-key-of-a-layer", None)
            .unwrap();
        store
            .snapshots
            .commit("sha256:orphan-layer", "unpack-key-of-a-layer")
            .unwrap();
        keys
    };
    d.spawn();
    assert!(!tmp.exists());
    assert!(!trash.exists());
    assert!(!half_made.exists());
    d.kill9();
    let keys_after: Vec<String> = {
        let store = berth_image::import::ImageStore::open(&data.join("image")).unwrap();
        store
            .snapshots
            .list()
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect()
    };
    assert_eq!(keys_after, keys_before);
    d.spawn();
    // The image is whole.
    d.ok(&["run", "--rm", "busybox", "true"]);
}
