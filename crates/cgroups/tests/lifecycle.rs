//! Creation, hybrid placement, devices, blkio, hugetlb, unified and
//! destruction on the real kernel.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use berth_cgroups::{Manager, Mode};
use common::{read, Guard};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder,
    LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};

#[test]
fn destroy_removes_all_directories() {
    let name = "destroy";
    let path = format!("{}/{name}-{}", common::TEST_ROOT, std::process::id());
    let fresh = Manager::new(Path::new(&path)).expect("manager");
    assert!(
        fresh.dirs().iter().all(|d| !d.exists()),
        "new() creates nothing"
    );
    // The guard creates it (and cleans up should an assertion fail).
    let guard = Guard::new(name);
    let manager = &guard.manager;
    let dirs = manager.dirs();
    assert_eq!(dirs, fresh.dirs());
    assert!(!dirs.is_empty());
    for dir in &dirs {
        assert!(dir.is_dir(), "{} missing after create", dir.display());
    }
    // A child cgroup made by someone else goes too.
    let mem = manager.controller_dir("memory").expect("memory");
    std::fs::create_dir(mem.join("child")).expect("mkdir child");
    manager.destroy().expect("destroy");
    for dir in &dirs {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
    manager.destroy().expect("destroying again is fine");
}

#[test]
fn destroy_with_live_task_is_bounded_and_names_dir() {
    let mut guard = Guard::new("destroy-busy");
    let _task = guard.spawn_in_cgroup("exec sleep 30");
    let start = std::time::Instant::now();
    let err = guard.manager.destroy().expect_err("cgroup is busy");
    assert!(start.elapsed() < Duration::from_secs(10));
    let msg = err.to_string();
    assert!(msg.contains("Device or resource busy"), "{msg}");
    assert!(msg.contains("destroy-busy-"), "{msg}");
}

#[test]
fn relative_path_is_below_own_cgroup() {
    let rel = format!("berth-test-cgroups-rel-{}", std::process::id());
    let manager = Manager::new(Path::new(&rel)).expect("manager");
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    let own_mem = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()));
    let mem = manager.controller_dir("memory").expect("memory dir");
    if let Some(own_mem) = own_mem {
        let expected = Path::new("/sys/fs/cgroup/memory")
            .join(own_mem.trim_start_matches('/'))
            .join(&rel);
        if Path::new("/sys/fs/cgroup/memory").is_dir() {
            assert_eq!(mem, expected);
        }
    }
    assert!(mem.ends_with(&rel));
    assert_eq!(manager.path(), Path::new(&rel));
    // It can be created, joined and destroyed like an absolute one.
    let mut guard = Guard::at(&rel);
    assert!(mem.is_dir());
    let task = guard.spawn_in_cgroup("exec sleep 30");
    assert_eq!(guard.manager.pids().expect("pids"), vec![task.pid]);
    drop(guard);
    assert!(!mem.exists());
}

#[test]
fn devices_rules_written_in_order() {
    let guard = Guard::new("devices");
    let res = LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .expect("deny all"),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1)
                .minor(3)
                .access("rwm")
                .build()
                .expect("null"),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(136)
                .access("rw")
                .build()
                .expect("pts"),
        ])
        .build()
        .expect("resources");
    guard.manager.apply(&res).expect("apply");
    if let Some(dir) = guard.manager.controller_dir("devices") {
        assert_eq!(read(&dir, "devices.list"), "c 1:3 rwm\nc 136:* rw");
    }
}

#[test]
fn blkio_weight_and_throttle() {
    let guard = Guard::new("blkio");
    let dev = std::fs::read_to_string("/sys/block/vda/dev")
        .or_else(|_| std::fs::read_to_string("/sys/block/sda/dev"));
    let Ok(dev) = dev else {
        eprintln!("skipped: no vda/sda");
        return;
    };
    let (major, minor) = dev.trim().split_once(':').expect("major:minor");
    let (major, minor): (i64, i64) = (major.parse().expect("major"), minor.parse().expect("minor"));
    let resources = |weight: Option<u16>| {
        let mut blkio = LinuxBlockIoBuilder::default();
        if let Some(w) = weight {
            blkio = blkio.weight(w);
        }
        LinuxResourcesBuilder::default()
            .block_io(
                blkio
                    .throttle_read_bps_device(vec![LinuxThrottleDeviceBuilder::default()
                        .major(major)
                        .minor(minor)
                        .rate(1_048_576u64)
                        .build()
                        .expect("throttle")])
                    .build()
                    .expect("blkio"),
            )
            .build()
            .expect("resources")
    };
    let Some(dir) = guard.manager.controller_dir("blkio") else {
        eprintln!("skipped: no v1 blkio");
        return;
    };
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| dir.join(f).exists());
    match weight_file {
        Some(weight_file) => {
            guard.manager.apply(&resources(Some(500))).expect("apply");
            assert!(read(&dir, weight_file).ends_with("500"));
        }
        None => {
            // A kernel without a proportional I/O scheduler (no CFQ, no BFQ) has no weight
            // file: a weight asked for is an error naming both files.
            let msg = guard
                .manager
                .apply(&resources(Some(500)))
                .expect_err("no weight file")
                .to_string();
            assert!(
                msg.contains("blkio.weight") && msg.contains("blkio.bfq.weight"),
                "{msg}"
            );
            guard.manager.apply(&resources(None)).expect("apply");
        }
    }
    assert_eq!(
        read(&dir, "blkio.throttle.read_bps_device"),
        format!("{major}:{minor} 1048576")
    );
    // leafWeight needs CFQ (gone from modern kernels): asked for, so an error
    // naming the file.
    if !dir.join("blkio.leaf_weight").exists() {
        let res = LinuxResourcesBuilder::default()
            .block_io(
                LinuxBlockIoBuilder::default()
                    .leaf_weight(300u16)
                    .build()
                    .expect("blkio"),
            )
            .build()
            .expect("resources");
        let msg = guard
            .manager
            .apply(&res)
            .expect_err("no leaf weight")
            .to_string();
        assert!(msg.contains("blkio.leaf_weight"), "{msg}");
        assert!(msg.contains("blockIO.leafWeight"), "{msg}");
    }
}

fn hugepage_2mb_supported() -> bool {
    Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir()
}

#[test]
fn hugetlb_limit_on_whichever_hierarchy_has_it() {
    let guard = Guard::new("hugetlb");
    let Some(dir) = guard.manager.controller_dir("hugetlb") else {
        eprintln!("skipped: no hugetlb controller");
        return;
    };
    if !hugepage_2mb_supported() {
        eprintln!("skipped: no 2MB pages");
        return;
    }
    let res = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4 * 1024 * 1024i64)
            .build()
            .expect("hugepage")])
        .build()
        .expect("resources");
    guard.manager.apply(&res).expect("apply");
    let file = if dir.join("hugetlb.2MB.max").exists() {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    assert_eq!(read(&dir, file), "4194304");
    let stats = guard.manager.stats().expect("stats");
    assert!(stats.hugetlb.contains_key("2MB"), "{:?}", stats.hugetlb);
}

#[test]
fn unified_map_respects_hybrid_placement() {
    let guard = Guard::new("unified");
    let mut map = HashMap::new();
    match guard.manager.mode() {
        Mode::Legacy => {
            map.insert("memory.high".to_string(), "max".to_string());
            let res = LinuxResourcesBuilder::default()
                .unified(map)
                .build()
                .expect("res");
            assert!(guard.manager.apply(&res).is_err());
        }
        Mode::Hybrid => {
            map.insert("memory.high".to_string(), "max".to_string());
            let res = LinuxResourcesBuilder::default()
                .unified(map.clone())
                .build()
                .expect("res");
            let msg = guard
                .manager
                .apply(&res)
                .expect_err("memory is v1")
                .to_string();
            assert!(msg.contains("memory.high"), "{msg}");
            if guard.manager.controller_dir("hugetlb") == guard.manager.controller_dir("")
                && hugepage_2mb_supported()
            {
                map.clear();
                map.insert("hugetlb.2MB.max".to_string(), "2097152".to_string());
                let res = LinuxResourcesBuilder::default()
                    .unified(map)
                    .build()
                    .expect("res");
                guard.manager.apply(&res).expect("hugetlb is on v2");
                assert_eq!(read(&guard.dir(""), "hugetlb.2MB.max"), "2097152");
            }
        }
        Mode::Unified => {
            map.insert("memory.high".to_string(), "67108864".to_string());
            let res = LinuxResourcesBuilder::default()
                .unified(map)
                .build()
                .expect("res");
            guard.manager.apply(&res).expect("apply");
            assert_eq!(read(&guard.dir("memory"), "memory.high"), "67108864");
        }
    }
}

/// The levels above a v1 cpuset cgroup give their children their cpus and mems at creation
/// (`cgroup.clone_children`), so that no write of a child's is checked against its siblings.
#[test]
fn cpuset_parents_clone_their_values_to_children() {
    let guard = Guard::new("cpuset-clone");
    let Some(dir) = guard.manager.controller_dir("cpuset") else {
        assert!(
            std::env::var("CI").is_err(),
            "no v1 cpuset hierarchy under CI"
        );
        eprintln!("skipped: no v1 cpuset hierarchy");
        return;
    };
    let parent = dir.parent().expect("a parent level");
    assert_eq!(read(parent, "cgroup.clone_children").trim(), "1");
    assert_eq!(
        read(&dir, "cpuset.cpus").trim(),
        read(parent, "cpuset.cpus").trim()
    );
    assert!(!read(&dir, "cpuset.mems").trim().is_empty());
}
