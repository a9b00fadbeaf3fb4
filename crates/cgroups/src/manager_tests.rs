//! Tests of [`Manager`] against fake cgroup trees in temporary directories
//! (pure v2 and legacy v1 with combined `cpu,cpuacct`), so that the
//! mappings of both versions are checked on any machine.

use super::*;

const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn rejects_bad_paths() {
    let layout = || Layout::parse(HYBRID, "4:memory:/a\n1:cpu:/\n0::/\n").expect("layout");
    for bad in ["", "/", "/a/../../etc", "..", "./"] {
        assert!(
            matches!(
                Manager::with_layout(Path::new(bad), layout()),
                Err(Error::InvalidPath(_))
            ),
            "{bad:?} must be rejected"
        );
    }
    let m = Manager::with_layout(Path::new("/berth/x"), layout()).expect("manager");
    assert_eq!(m.path(), Path::new("/berth/x"));
    assert_eq!(m.mode(), Mode::Hybrid);
    assert_eq!(
        m.controller_dir("memory"),
        Some(PathBuf::from("/sys/fs/cgroup/memory/berth/x"))
    );
    assert_eq!(
        m.controller_dir(""),
        Some(PathBuf::from("/sys/fs/cgroup/unified/berth/x"))
    );
    assert_eq!(m.dirs().len(), 3);
    let rel = Manager::with_layout(Path::new("berth/x"), layout()).expect("manager");
    assert_eq!(
        rel.controller_dir("memory"),
        Some(PathBuf::from("/sys/fs/cgroup/memory/a/berth/x"))
    );
}

#[test]
fn a_relative_path_keeps_the_directories_it_was_created_with() {
    // Created from /a in memory (/ elsewhere), then seen from another process's cgroup.
    let made = Manager::with_layout(
        Path::new("p/x"),
        Layout::parse(HYBRID, "4:memory:/a\n1:cpu:/\n0::/\n").expect("layout"),
    )
    .expect("manager");
    let elsewhere = || Layout::parse(HYBRID, "4:memory:/b\n1:cpu:/c\n0::/d\n").expect("layout");
    let moved = Manager::with_layout(Path::new("p/x"), elsewhere()).expect("manager");
    assert_eq!(
        moved.controller_dir("memory"),
        Some(PathBuf::from("/sys/fs/cgroup/memory/b/p/x"))
    );
    let kept = Manager::with_layout(Path::new("p/x"), elsewhere())
        .expect("manager")
        .keep_dirs(&made.dirs());
    assert_eq!(kept.dirs(), made.dirs());
    assert_eq!(
        kept.controller_dir("memory"),
        Some(PathBuf::from("/sys/fs/cgroup/memory/a/p/x"))
    );
    // A directory of no hierarchy, or one that climbs out, is not taken.
    let odd = Manager::with_layout(Path::new("p/x"), elsewhere())
        .expect("manager")
        .keep_dirs(&[
            PathBuf::from("/elsewhere/p/x"),
            PathBuf::from("/sys/fs/cgroup/cpu/../memory/p/x"),
        ]);
    assert_eq!(odd.dirs(), moved.dirs());
}

#[test]
fn missing_controller_is_named() {
    let layout = Layout::parse(HYBRID, "0::/\n").expect("layout");
    let m = Manager::with_layout(Path::new("/x"), layout).expect("manager");
    let err = m.require("pids", "pids").expect_err("no pids");
    assert_eq!(
        err.to_string(),
        "pids was requested but the pids controller is not mounted (neither cgroup v1 nor enabled in cgroup2)"
    );
}

/// Creates `dir/name` with `content` for every pair.
fn files(dir: &Path, entries: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, content) in entries {
        std::fs::write(dir.join(name), content).expect("write fake file");
    }
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_string()
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

const ALL_RESOURCES: &str = r#"{
    "memory": {"limit": 67108864, "reservation": 16777216, "swap": 100663296,
               "swappiness": 60, "disableOOMKiller": true},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000,
            "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 10},
    "blockIO": {"weight": 500,
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
    "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
    "devices": [{"allow": false, "access": "rwm"}],
    "unified": {"memory.high": "50331648"}
}"#;

#[test]
fn fake_unified_tree_gets_v2_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    files(
        root,
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma",
            ),
            ("cgroup.subtree_control", ""),
        ],
    );
    let mountinfo = format!("26 22 0:24 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    let layout = Layout::parse(&mountinfo, "0::/\n").expect("layout");
    let m = Manager::with_layout(Path::new("/c"), layout).expect("manager");
    assert_eq!(m.mode(), Mode::Unified);
    m.create().expect("create");
    let subtree = read(root, "cgroup.subtree_control");
    assert!(
        subtree.contains("+memory") && subtree.contains("+hugetlb"),
        "{subtree}"
    );
    let dir = root.join("c");
    let names = [
        "memory.max",
        "memory.swap.max",
        "memory.low",
        "memory.high",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
        "io.max",
        "hugetlb.2MB.max",
        "cgroup.procs",
        "cgroup.freeze",
    ];
    files(&dir, &names.map(|n| (n, "")));
    // Devices need a real cgroup2 for the eBPF filter (tests/devices_bpf.rs).
    let mut all = resources(ALL_RESOURCES);
    all.set_devices(None);
    m.apply(&all).expect("apply");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.swap.max"), "33554432");
    assert_eq!(read(&dir, "memory.low"), "16777216");
    assert_eq!(read(&dir, "memory.high"), "50331648");
    assert_eq!(read(&dir, "cpu.weight"), "39");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpuset.cpus"), "0-1");
    assert_eq!(read(&dir, "cpuset.mems"), "0");
    assert_eq!(read(&dir, "pids.max"), "10");
    assert_eq!(read(&dir, "io.weight"), "default 4950");
    assert_eq!(read(&dir, "io.max"), "8:0 wiops=100");
    assert_eq!(read(&dir, "hugetlb.2MB.max"), "4194304");

    let err = m
        .apply(&resources(r#"{"cpu": {"realtimeRuntime": 1000}}"#))
        .expect_err("no rt on v2");
    assert!(
        err.to_string().contains("not supported on cgroup v2"),
        "{err}"
    );
    let err = m
        .apply(&resources(r#"{"network": {"classID": 1}}"#))
        .expect_err("no net_cls on v2");
    assert!(err.to_string().contains("net_cls"), "{err}");

    // Freezer: cgroup.freeze written, cgroup.events consulted.
    files(&dir, &[("cgroup.events", "populated 1\nfrozen 1\n")]);
    m.freeze().expect("freeze");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(m.is_frozen().expect("is_frozen"));

    // pids() is recursive.
    files(&dir, &[("cgroup.procs", "12\n34\n")]);
    files(&dir.join("sub"), &[("cgroup.procs", "56\n")]);
    assert_eq!(m.pids().expect("pids"), vec![12, 34, 56]);

    files(
        &dir,
        &[
            (
                "cpu.stat",
                "usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n",
            ),
            ("memory.stat", "anon 4096\nfile 8192\n"),
            ("memory.current", "12288\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "max\n"),
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 4\n"),
        ],
    );
    assert_eq!(m.oom_kill_count().expect("oom"), 1);
    let s = m.stats().expect("stats");
    assert_eq!(s.cpu.usage.total, 100_000);
    assert_eq!(s.cpu.usage.user, 60_000);
    assert_eq!(s.cpu.usage.kernel, 40_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 2);
    assert_eq!(s.cpu.throttling.throttled_time, 7_000);
    assert_eq!(s.memory.usage.usage, 12288);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.failcnt, 3);
    assert_eq!(s.memory.cache, 8192);
    assert_eq!(s.memory.swap.usage, 12288);
    assert_eq!(s.pids.current, 2);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert_eq!(s.blkio.io_serviced_recursive[1].value, 2);
    assert_eq!(s.hugetlb["2MB"].usage, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 4);

    std::fs::remove_dir_all(&dir).expect("clean fake");
}

#[test]
fn fake_legacy_tree_gets_v1_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let mount = |name: &str, opts: &str| {
        format!(
            "30 20 0:30 / {}/{name} rw - cgroup cgroup rw,{opts}\n",
            root.display()
        )
    };
    let mountinfo = [
        mount("cpu,cpuacct", "cpu,cpuacct"),
        mount("memory", "memory"),
        mount("cpuset", "cpuset"),
        mount("pids", "pids"),
        mount("blkio", "blkio"),
        mount("hugetlb", "hugetlb"),
        mount("devices", "devices"),
    ]
    .concat();
    let layout = Layout::parse(&mountinfo, "").expect("layout");
    let m = Manager::with_layout(Path::new("/c"), layout).expect("manager");
    assert_eq!(m.mode(), Mode::Legacy);
    assert_eq!(m.controller_dir("cpuacct"), m.controller_dir("cpu"));
    let dir = |c: &str| m.controller_dir(c).expect("dir");
    // cpuset inheritance on create.
    files(
        &root.join("cpuset"),
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
    files(&dir("cpuset"), &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
    m.create().expect("create");
    assert_eq!(read(&dir("cpuset"), "cpuset.cpus"), "0-3");
    assert_eq!(read(&dir("cpuset"), "cpuset.mems"), "0");

    files(
        &dir("memory"),
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", ""),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.swappiness", ""),
            ("memory.oom_control", ""),
        ],
    );
    let cpu_names = ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"];
    files(&dir("cpu"), &cpu_names.map(|n| (n, "")));
    files(&dir("pids"), &[("pids.max", "")]);
    let blkio_names = ["blkio.bfq.weight", "blkio.throttle.write_iops_device"];
    files(&dir("blkio"), &blkio_names.map(|n| (n, "")));
    files(&dir("hugetlb"), &[("hugetlb.2MB.limit_in_bytes", "")]);
    files(&dir("devices"), &[("devices.deny", "")]);

    let mut all = resources(ALL_RESOURCES);
    all.set_unified(None);
    m.apply(&all).expect("apply");
    let mem = dir("memory");
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(&mem, "memory.memsw.limit_in_bytes"), "100663296");
    assert_eq!(read(&mem, "memory.soft_limit_in_bytes"), "16777216");
    assert_eq!(read(&mem, "memory.swappiness"), "60");
    assert_eq!(read(&mem, "memory.oom_control"), "1");
    assert_eq!(read(&dir("cpu"), "cpu.shares"), "1024");
    assert_eq!(read(&dir("cpu"), "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&dir("cpu"), "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&dir("cpuset"), "cpuset.cpus"), "0-1");
    assert_eq!(read(&dir("pids"), "pids.max"), "10");
    assert_eq!(read(&dir("blkio"), "blkio.bfq.weight"), "500");
    assert_eq!(
        read(&dir("blkio"), "blkio.throttle.write_iops_device"),
        "8:0 100"
    );
    assert_eq!(
        read(&dir("hugetlb"), "hugetlb.2MB.limit_in_bytes"),
        "4194304"
    );
    assert_eq!(read(&dir("devices"), "devices.deny"), "a");

    // Unified is refused without cgroup2; kernel memory is ignored quietly
    // when the kernel lacks the files; a missing weight file is named.
    let err = m
        .apply(&resources(r#"{"unified": {"memory.high": "1"}}"#))
        .expect_err("v1 only");
    assert!(err.to_string().contains("memory.high"), "{err}");
    m.apply(&resources(
        r#"{"memory": {"kernel": 1048576, "kernelTCP": 1048576}}"#,
    ))
    .expect("kmem ignored");
    std::fs::remove_file(dir("blkio").join("blkio.bfq.weight")).expect("rm");
    let err = m
        .apply(&resources(r#"{"blockIO": {"weight": 100}}"#))
        .expect_err("no weight file");
    assert!(err.to_string().contains("blkio.bfq.weight"), "{err}");

    files(
        &dir("cpuacct"),
        &[
            ("cpuacct.usage", "1000\n"),
            ("cpuacct.usage_percpu", "600 400 \n"),
            ("cpuacct.stat", "user 10\nsystem 5\n"),
            (
                "cpu.stat",
                "nr_periods 9\nnr_throttled 1\nthrottled_time 77\n",
            ),
        ],
    );
    files(
        &mem,
        &[
            ("memory.stat", "cache 4096\nrss 8192\n"),
            ("memory.usage_in_bytes", "12288\n"),
            ("memory.max_usage_in_bytes", "20480\n"),
            ("memory.failcnt", "2\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 1\nunder_oom 0\noom_kill 5\n",
            ),
        ],
    );
    files(
        &dir("pids"),
        &[("pids.current", "3\n"), ("pids.max", "10\n")],
    );
    files(
        &dir("blkio"),
        &[
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 512\n8:0 Write 0\nTotal 512\n",
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:0 Read 1\n8:0 Write 0\nTotal 1\n",
            ),
        ],
    );
    files(
        &dir("hugetlb"),
        &[
            ("hugetlb.2MB.usage_in_bytes", "0\n"),
            ("hugetlb.2MB.max_usage_in_bytes", "2097152\n"),
            ("hugetlb.2MB.failcnt", "1\n"),
        ],
    );
    assert_eq!(m.oom_kill_count().expect("oom"), 5);
    let s = m.stats().expect("stats");
    assert_eq!(s.cpu.usage.total, 1000);
    assert_eq!(s.cpu.usage.percpu, vec![600, 400]);
    assert_eq!(s.cpu.usage.user, 100_000_000);
    assert_eq!(s.cpu.usage.kernel, 50_000_000);
    assert_eq!(s.cpu.throttling.periods, 9);
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.usage.usage, 12288);
    assert_eq!(s.memory.usage.max, 20480);
    assert_eq!(s.memory.usage.failcnt, 2);
    assert_eq!(s.memory.usage.limit, 67_108_864);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.pids.limit, 10);
    assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 512);
    assert_eq!(s.hugetlb["2MB"].max, 2_097_152);
    assert_eq!(s.hugetlb["2MB"].failcnt, 1);
}

#[test]
fn blkio_weight_zero_is_unset() {
    // Docker sends `"blockIO": {"weight": 0}` for "no weight": nothing may be written (here the
    // fake hierarchy has no blkio.weight file at all, so a write would fail).
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let mountinfo = format!(
        "30 20 0:30 / {}/blkio rw - cgroup cgroup rw,blkio\n",
        root.display()
    );
    let layout = Layout::parse(&mountinfo, "").expect("layout");
    let m = Manager::with_layout(Path::new("/c"), layout).expect("manager");
    m.create().expect("create");
    let resources: LinuxResources =
        serde_json::from_str(r#"{"blockIO": {"weight": 0, "leafWeight": 0}}"#).expect("json");
    m.apply(&resources).expect("weight 0 is not written");
    let resources: LinuxResources =
        serde_json::from_str(r#"{"blockIO": {"weight": 500}}"#).expect("json");
    let err = m
        .apply(&resources)
        .expect_err("a real weight needs the file");
    assert!(err.to_string().contains("blockIO.weight"), "{err}");
}
