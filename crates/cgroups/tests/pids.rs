//! pids controller: the limit stops `sh` from forking, and `pids()` lists
//! the tasks that were added.

mod common;

use std::time::Duration;

use common::{read, Guard};
use oci_spec::runtime::{LinuxPidsBuilder, LinuxResourcesBuilder};

fn pids_limit(limit: i64) -> oci_spec::runtime::LinuxResources {
    LinuxResourcesBuilder::default()
        .pids(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .expect("pids"),
        )
        .build()
        .expect("resources")
}

#[test]
fn pids_limit_stops_forking() {
    let mut guard = Guard::new("pids-limit");
    guard.manager.apply(&pids_limit(5)).expect("apply");
    assert_eq!(read(&guard.dir("pids"), "pids.max"), "5");
    let mut task = guard.spawn_in_cgroup(
        "i=0; while [ $i -lt 20 ]; do sleep 30 2>/dev/null & i=$((i+1)); done; wait",
    );
    guard.start(&mut task);
    let (status, stderr) = guard.wait(&task, Duration::from_secs(20));
    assert!(!status.success(), "sh should fail to fork: {status:?}");
    assert!(stderr.to_lowercase().contains("fork"), "stderr: {stderr:?}");
    let pids = guard.manager.pids().expect("pids");
    assert_eq!(
        pids.len(),
        4,
        "4 sleeps fit beside sh under pids.max=5: {pids:?}"
    );
    let stats = guard.manager.stats().expect("stats");
    assert_eq!(stats.pids.limit, 5);
    assert_eq!(stats.pids.current, 4);
}

#[test]
fn unlimited_pids_writes_max() {
    let guard = Guard::new("pids-max");
    guard.manager.apply(&pids_limit(3)).expect("apply");
    guard.manager.apply(&pids_limit(-1)).expect("apply");
    assert_eq!(read(&guard.dir("pids"), "pids.max"), "max");
    assert_eq!(guard.manager.stats().expect("stats").pids.limit, 0);
}

#[test]
fn pids_lists_added_task() {
    let mut guard = Guard::new("pids-list");
    assert!(guard.manager.pids().expect("pids").is_empty());
    let task = guard.spawn_in_cgroup("exec sleep 30");
    let pids = guard.manager.pids().expect("pids");
    assert_eq!(pids, vec![task.pid]);
    // Every hierarchy got the task.
    for dir in guard.manager.dirs() {
        let procs = read(&dir, "cgroup.procs");
        assert!(
            procs.lines().any(|l| l == task.pid.to_string()),
            "{} lacks {}",
            dir.display(),
            task.pid
        );
    }
}
