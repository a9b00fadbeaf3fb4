//! cpu and cpuset: shares, quota/period and cpus/mems read back, and
//! nested cpuset cgroups accept tasks (inherited cpus/mems).

mod common;

use std::path::Path;

use berth_cgroups::{Manager, Mode};
use common::{read, Guard};
use oci_spec::runtime::{LinuxCpuBuilder, LinuxResourcesBuilder};

#[test]
fn cpu_shares_quota_and_cpuset_read_back() {
    let mut guard = Guard::new("cpu");
    let res = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .expect("cpu"),
        )
        .build()
        .expect("resources");
    guard.manager.apply(&res).expect("apply");
    let cpu = guard.dir("cpu");
    if guard.manager.mode() == Mode::Unified {
        assert_eq!(read(&cpu, "cpu.weight"), "20");
        assert_eq!(read(&cpu, "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read(&cpu, "cpu.shares"), "512");
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    }
    let cpuset = guard.dir("cpuset");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    // A task can join and runs only on CPU 0.
    let task = guard.spawn_in_cgroup("exec sleep 30");
    let status = std::fs::read_to_string(format!("/proc/{}/status", task.pid)).expect("status");
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list")
        .trim()
        .to_string();
    assert_eq!(allowed, "0");
    // Unlimited quota.
    let unlimited = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(-1i64)
                .build()
                .expect("cpu"),
        )
        .build()
        .expect("resources");
    guard.manager.apply(&unlimited).expect("apply");
    if guard.manager.mode() == Mode::Unified {
        assert!(read(&cpu, "cpu.max").starts_with("max"));
    } else {
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "-1");
    }
}

#[test]
fn nested_cpuset_levels_inherit_cpus_and_mems() {
    let top = format!("{}/nested-{}", common::TEST_ROOT, std::process::id());
    // The guard owns the top level; destroying it removes a/b/c too.
    let mut guard = Guard::at(&top);
    let deep = Manager::new(Path::new(&format!("{top}/a/b/c"))).expect("manager");
    deep.create().expect("create nested");
    let cpuset = deep.controller_dir("cpuset").expect("cpuset");
    if guard.manager.mode() != Mode::Unified {
        let top_dir = guard.dir("cpuset");
        let mut dir = cpuset.clone();
        while dir != top_dir {
            assert!(!read(&dir, "cpuset.cpus").is_empty(), "{}", dir.display());
            assert!(!read(&dir, "cpuset.mems").is_empty(), "{}", dir.display());
            assert!(dir.pop());
        }
    }
    let task = guard.spawn_into(&deep, "exec sleep 30");
    assert_eq!(deep.pids().expect("pids"), vec![task.pid]);
    // pids() of the parent is recursive.
    assert_eq!(guard.manager.pids().expect("pids"), vec![task.pid]);
}

#[test]
fn write_errors_name_file_and_value() {
    let guard = Guard::new("cpu-errors");
    let res = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().cpus("999").build().expect("cpu"))
        .build()
        .expect("resources");
    let err = guard
        .manager
        .apply(&res)
        .expect_err("cpu 999 does not exist");
    let path = guard.dir("cpuset").join("cpuset.cpus");
    // The kernel says ERANGE or EINVAL depending on the version.
    let msg = err.to_string();
    let prefix = format!("writing \"999\" to {}: ", path.display());
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(!msg.contains("os error"), "{msg}");
}
