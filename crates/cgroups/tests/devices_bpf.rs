//! cgroup v2 device control with the eBPF filter, on the real kernel: runs
//! on the cgroup2 hierarchy of hybrid or pure v2 machines.

mod common;

use std::time::Duration;

use common::Guard;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

fn rule(allow: bool, typ: Option<LinuxDeviceType>, major: i64, minor: i64) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access("rwm");
    if let Some(t) = typ {
        b = b.typ(t).major(major).minor(minor);
    }
    b.build().expect("rule")
}

/// Runs `script` in the cgroup and returns (success, stderr).
fn run(guard: &mut Guard, script: &str) -> (bool, String) {
    let mut task = guard.spawn_in_cgroup(script);
    guard.start(&mut task);
    let (status, stderr) = guard.wait(&task, Duration::from_secs(10));
    (status.success(), stderr)
}

#[test]
fn ebpf_device_filter_enforces_and_replaces_rules() {
    let mut guard = Guard::new("devices-bpf");
    if guard.manager.controller_dir("").is_none() {
        eprintln!("skipped: no cgroup2 hierarchy");
        return;
    }
    // Deny everything but /dev/zero (c 1:5).
    let rules = [
        rule(false, None, 0, 0),
        rule(true, Some(LinuxDeviceType::C), 1, 5),
    ];
    guard
        .manager
        .apply_device_filter(&rules)
        .expect("attach filter");
    let (ok, stderr) = run(&mut guard, "head -c 1 /dev/zero");
    assert!(ok, "/dev/zero must stay readable: {stderr}");
    let (ok, stderr) = run(&mut guard, "head -c 1 /dev/null");
    assert!(!ok, "/dev/null must be denied");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");

    // Re-applying replaces the old program instead of stacking on it.
    guard
        .manager
        .apply_device_filter(&[rule(true, None, 0, 0)])
        .expect("replace filter");
    let (ok, stderr) = run(&mut guard, "head -c 1 /dev/null");
    assert!(ok, "/dev/null allowed after replacing the filter: {stderr}");
}
