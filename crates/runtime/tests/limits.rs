//! Control groups enforced by the kernel: memory (OOM kill reported), pids, cpu, and the freezer
//! behind pause and resume.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn start(b: &Bundle) {
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let mut b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "head -c 300m /dev/zero | tail; echo status=$?; sleep 2",
        ],
    );
    b.config["linux"]["resources"] =
        json!({"memory": {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}});
    b.save();
    b.create().ok();
    // `events` streams until the container stops; it must report the OOM kill.
    let mut events = b
        .command(&["events", "--interval", "100ms", &b.id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    b.cmd(&["start", &b.id]).ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = events.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = events.kill();
            panic!("events did not end when the container stopped");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut events.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.lines().any(|l| l.contains(r#""type":"oom""#)), "{out}");
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth-test-{}/memory.limit_in_bytes",
        b.id
    ))
    .unwrap();
    assert_eq!(limit.trim(), (32 * 1024 * 1024).to_string());
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    // A subshell forks until the kernel refuses (busybox sh then exits), and pid 1 waits.
    let mut b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "(while true; do sleep 30 & done) 2>/dev/null; echo done > /tmp/done; exec sleep 30",
        ],
    );
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    b.save();
    start(&b);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.rootfs().join("tmp/done").exists() {
        assert!(Instant::now() < deadline, "the fork loop never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
    let dir = format!("/sys/fs/cgroup/pids/berth-test-{}", b.id);
    let current: u32 = std::fs::read_to_string(format!("{dir}/pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        (2..=10).contains(&current),
        "{current} processes under a limit of 10"
    );
    // The kernel counted the forks it refused.
    let events = std::fs::read_to_string(format!("{dir}/pids.events")).unwrap();
    let refused: u64 = events.trim().strip_prefix("max ").unwrap().parse().unwrap();
    assert!(refused > 0, "{events}");
}

#[test]
fn cpu_settings_reach_the_cgroup_and_are_visible_inside() {
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpuset/cpuset.cpus; cat /proc/self/cgroup | grep -c ':/$'"],
    );
    let c = &mut b.config;
    c["linux"]["resources"] =
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}});
    // The default spec mounts the container's cgroups read-only on /sys/fs/cgroup.
    b.save();
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["512", "50000", "100000", "0"], "{out}");
    // In its cgroup namespace, every hierarchy's root is the container's own cgroup.
    let lines_in_proc_cgroup = lines[4].parse::<usize>().unwrap();
    assert!(lines_in_proc_cgroup >= 8, "{out}");
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; usleep 5000; done",
        ],
    );
    start(&b);
    let count = || -> u64 {
        std::fs::read_to_string(b.rootfs().join("tmp/count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < 3 {
        assert!(Instant::now() < deadline, "container never counted");
        std::thread::sleep(Duration::from_millis(10));
    }
    b.cmd(&["pause", &b.id]).ok();
    assert_eq!(b.state()["status"], "paused");
    let freezer = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/berth-test-{}/freezer.state",
        b.id
    ))
    .unwrap();
    assert_eq!(freezer.trim(), "FROZEN");
    let frozen_at = count();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(), frozen_at, "the container ran while paused");
    // A paused container cannot be paused again, nor resumed twice.
    assert_ne!(b.cmd(&["pause", &b.id]).code(), 0);
    b.cmd(&["resume", &b.id]).ok();
    assert_eq!(b.state()["status"], "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() <= frozen_at {
        assert!(Instant::now() < deadline, "container did not resume");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(b.cmd(&["resume", &b.id]).code(), 0);
}

#[test]
fn ps_lists_the_containers_processes() {
    let b = Bundle::new(RUNTIME, &["sh", "-c", "sleep 30 & sleep 31 & wait"]);
    start(&b);
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids: Vec<i32> = loop {
        let out = b.cmd(&["ps", "--format", "json", &b.id]).ok();
        let pids: Vec<i32> = serde_json::from_str(&out.stdout).unwrap();
        if pids.len() == 3 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(pids.len(), 3, "{pids:?}");
    let init = b.state()["pid"].as_i64().unwrap() as i32;
    assert!(pids.contains(&init));
    let table = b.cmd(&["ps", &b.id]).ok().stdout;
    assert!(
        table.starts_with("UID") && table.lines().count() == 4,
        "{table}"
    );
    // Deleting with --force kills them all.
    b.cmd(&["delete", "--force", &b.id]).ok();
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists() || zombie(pid),
            "{pid} survived"
        );
    }
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/pids/berth-test-{}", b.id)).exists());
}

fn zombie(pid: i32) -> bool {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("grep State /proc/{pid}/status"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("zombie")
}

#[test]
fn events_stats_reports_usage() {
    let mut b = Bundle::new(RUNTIME, &["sleep", "30"]);
    b.config["linux"]["resources"] =
        json!({"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 50}});
    b.save();
    start(&b);
    let out = b.cmd(&["events", "--stats", &b.id]).ok().stdout;
    let ev: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], b.id.as_str());
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 64 * 1024 * 1024);
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert_eq!(ev["data"]["pids"]["limit"], 50);
}

#[test]
fn devices_cgroup_allows_the_defaults_and_denies_the_rest() {
    // The default spec denies every device; /dev/null and the configured /dev/mydev are allowed,
    // /dev/loop-control (created by the test, not in linux.devices) is not.
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "echo x > /dev/null && echo null-ok; head -c1 /dev/mydev | wc -c; (echo x > /tmp/lc) 2>&1; echo rc=$?"],
    );
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666}]);
    b.save();
    nix::sys::stat::mknod(
        &b.rootfs().join("tmp/lc"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(10, 237),
    )
    .unwrap();
    let out = b.run().ok().stdout;
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("\n1\n"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
}

#[test]
fn any_device_node_can_be_made_but_only_allowed_ones_opened() {
    // runc's default rules allow mknod (`m`) of any character or block device: with CAP_MKNOD
    // a node of the host's disk is made, and opening it is what the cgroup refuses.
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "mknod /tmp/sda b 8 0 && mknod /tmp/lc c 10 237 && echo made; head -c1 /tmp/sda; head -c1 /tmp/lc"],
    );
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_MKNOD".into());
    }
    b.save();
    let out = b.run();
    assert_eq!(out.stdout, "made\n", "{out:?}");
    assert_eq!(
        out.stderr,
        "head: /tmp/sda: Operation not permitted\nhead: /tmp/lc: Operation not permitted\n"
    );
}

#[test]
fn init_is_in_the_container_cgroup_in_every_hierarchy() {
    // The init moves itself into the v1 hierarchies and is created in the cgroup2 one
    // (CLONE_INTO_CGROUP): from the host, every line of its /proc/PID/cgroup names the container.
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    start(&b);
    let pid = b.state()["pid"].as_i64().unwrap();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!(":/berth-test-{}", b.id);
    let hierarchies: Vec<&str> = text.lines().collect();
    assert!(hierarchies.len() >= 2, "{text}");
    for line in hierarchies {
        assert!(
            line.ends_with(&want),
            "{line} not in the container's cgroup:\n{text}"
        );
    }
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    start(&b);
    let dir = |c: &str| format!("/sys/fs/cgroup/{c}/berth-test-{}", b.id);
    b.cmd(&[
        "update",
        "--memory",
        "67108864",
        "--pids-limit",
        "20",
        "--cpu-shares",
        "256",
        &b.id,
    ])
    .ok();
    let read = |p: String| std::fs::read_to_string(p).unwrap().trim().to_string();
    assert_eq!(
        read(format!("{}/memory.limit_in_bytes", dir("memory"))),
        "67108864"
    );
    assert_eq!(read(format!("{}/pids.max", dir("pids"))), "20");
    assert_eq!(read(format!("{}/cpu.shares", dir("cpu"))), "256");
    // The same as JSON on stdin.
    let update = |json: &[u8]| {
        let mut cmd = b.command(&["update", "--resources", "-", &b.id]);
        berth_tests::run_with_stdin(&mut cmd, Some(json), berth_tests::TIMEOUT)
    };
    update(br#"{"memory": {"limit": 33554432}, "pids": {"limit": 7}}"#).ok();
    assert_eq!(
        read(format!("{}/memory.limit_in_bytes", dir("memory"))),
        "33554432"
    );
    assert_eq!(read(format!("{}/pids.max", dir("pids"))), "7");
    // Bad JSON names the field; a stopped container cannot be updated.
    let out = update(br#"{"pids": {"limit": "x"}}"#);
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("pids.limit"), "{out:?}");
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    assert_ne!(b.cmd(&["update", "--memory", "1000000", &b.id]).code(), 0);
}
