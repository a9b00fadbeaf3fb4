//! Freezer: a running process stops accumulating CPU time while frozen and
//! resumes after thaw; the kernel's state agrees with `is_frozen()`.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{read, Guard};

/// utime + stime of `pid`, in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = stat.rsplit_once(')').expect("comm").1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is the state (field 3); utime and stime are fields 14, 15.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn proc_state(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .expect("State line")
        .trim()
        .to_string()
}

fn kernel_says_frozen(guard: &Guard) -> bool {
    match guard.manager.controller_dir("freezer") {
        Some(dir) => read(&dir, "freezer.state") == "FROZEN",
        None => read(&guard.dir(""), "cgroup.events").contains("frozen 1"),
    }
}

#[test]
fn freeze_and_thaw_running_processes() {
    let mut guard = Guard::new("freezer");
    let mut busy = guard.spawn_in_cgroup("while :; do :; done");
    guard.start(&mut busy);
    let mut sleeper = guard.spawn_in_cgroup("exec sleep 30");
    guard.start(&mut sleeper);
    assert!(common::wait_until(Duration::from_secs(5), || cpu_ticks(
        busy.pid
    ) > 0));
    assert!(!guard.manager.is_frozen().expect("is_frozen"));

    guard.manager.freeze().expect("freeze");
    assert!(guard.manager.is_frozen().expect("is_frozen"));
    assert!(kernel_says_frozen(&guard));
    let frozen_at = cpu_ticks(busy.pid);
    sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(busy.pid), frozen_at, "busy loop ran while frozen");
    let state = proc_state(sleeper.pid);
    assert!(!state.starts_with('R'), "frozen sleep is {state}");

    guard.manager.thaw().expect("thaw");
    assert!(!guard.manager.is_frozen().expect("is_frozen"));
    assert!(!kernel_says_frozen(&guard));
    assert!(
        common::wait_until(Duration::from_secs(5), || cpu_ticks(busy.pid) > frozen_at),
        "busy loop did not resume after thaw"
    );
    assert!(proc_state(sleeper.pid).starts_with('S'));
    // Freezing twice, or thawing a thawed cgroup, is fine.
    guard.manager.thaw().expect("thaw again");
    guard.manager.freeze().expect("freeze");
    guard.manager.freeze().expect("freeze again");
    assert!(guard.manager.is_frozen().expect("is_frozen"));
}
