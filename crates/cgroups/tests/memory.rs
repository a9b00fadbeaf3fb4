//! Memory controller on the real kernel: limits read back, OOM kill under a
//! small limit, and memory usage in `stats()`.

mod common;

use std::time::Duration;

use berth_cgroups::Mode;
use common::{read, Guard};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};

const MIB: i64 = 1024 * 1024;

fn memory_resources(limit: i64, reservation: Option<i64>) -> oci_spec::runtime::LinuxResources {
    let mut mem = LinuxMemoryBuilder::default().limit(limit);
    if let Some(r) = reservation {
        mem = mem.reservation(r);
    }
    LinuxResourcesBuilder::default()
        .memory(mem.build().expect("memory"))
        .build()
        .expect("resources")
}

#[test]
fn memory_limit_and_reservation_read_back() {
    let guard = Guard::new("memory-limit");
    guard
        .manager
        .apply(&memory_resources(64 * MIB, Some(16 * MIB)))
        .expect("apply");
    let dir = guard.dir("memory");
    if guard.manager.mode() == Mode::Unified {
        assert_eq!(read(&dir, "memory.max"), (64 * MIB).to_string());
        assert_eq!(read(&dir, "memory.low"), (16 * MIB).to_string());
    } else {
        assert_eq!(read(&dir, "memory.limit_in_bytes"), (64 * MIB).to_string());
        assert_eq!(
            read(&dir, "memory.soft_limit_in_bytes"),
            (16 * MIB).to_string()
        );
    }
    // Shrinking and growing again both work (write order vs memsw).
    guard
        .manager
        .apply(&memory_resources(32 * MIB, None))
        .expect("shrink");
    guard
        .manager
        .apply(&memory_resources(128 * MIB, None))
        .expect("grow");
}

#[test]
fn memory_and_swap_in_both_orders() {
    let guard = Guard::new("memory-swap");
    let dir = guard.dir("memory");
    if guard.manager.mode() != Mode::Unified && !dir.join("memory.memsw.limit_in_bytes").exists() {
        eprintln!("skipped: no memsw accounting");
        return;
    }
    for (limit, swap) in [(64, 128), (32, 48), (256, 512), (16, 16)] {
        let res = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(limit * MIB)
                    .swap(swap * MIB)
                    .build()
                    .expect("memory"),
            )
            .build()
            .expect("resources");
        guard
            .manager
            .apply(&res)
            .unwrap_or_else(|e| panic!("limit {limit}M swap {swap}M: {e}"));
        if guard.manager.mode() != Mode::Unified {
            assert_eq!(
                read(&dir, "memory.memsw.limit_in_bytes"),
                (swap * MIB).to_string()
            );
            assert_eq!(
                read(&dir, "memory.limit_in_bytes"),
                (limit * MIB).to_string()
            );
        }
    }
}

#[test]
fn child_exceeding_limit_is_oom_killed() {
    let mut guard = Guard::new("memory-oom");
    guard
        .manager
        .apply(&memory_resources(32 * MIB, None))
        .expect("apply");
    assert_eq!(guard.manager.oom_kill_count().expect("oom count"), 0);
    let mut task = guard.spawn_in_cgroup("head -c 200M /dev/zero | tail");
    guard.start(&mut task);
    let (status, _) = guard.wait(&task, Duration::from_secs(60));
    assert!(
        !status.success(),
        "tail should have been killed: {status:?}"
    );
    let kills = guard.manager.oom_kill_count().expect("oom count");
    assert!(kills > 0, "oom_kill_count() = {kills}");
    let stats = guard.manager.stats().expect("stats");
    assert!(stats.memory.usage.failcnt > 0 || guard.manager.mode() == Mode::Unified);
}

#[test]
fn stats_show_memory_usage_of_running_process() {
    let mut guard = Guard::new("memory-stats");
    let mut task = guard.spawn_in_cgroup("exec sleep 30");
    guard.start(&mut task);
    assert!(common::wait_until(Duration::from_secs(5), || {
        guard
            .manager
            .stats()
            .map(|s| s.memory.usage.usage > 0)
            .unwrap_or(false)
    }));
    let stats = guard.manager.stats().expect("stats");
    assert!(stats.memory.usage.usage > 0, "{stats:?}");
    assert!(!stats.memory.raw.is_empty());
    assert_eq!(stats.pids.current, 1);
    let json = serde_json::to_value(&stats).expect("json");
    assert!(json["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0);
}
