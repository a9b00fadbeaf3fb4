//! Namespaces seen from inside a container: pid 1, hostname, network, mounts, user namespace.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn run_sh(script: &str) -> String {
    let b = Bundle::new(RUNTIME, &["sh", "-c", script]);
    b.run().ok().stdout
}

#[test]
fn pid_namespace_shows_only_the_container() {
    let out = run_sh("echo self=$$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("self=1"), "{out}");
    // pid 1 (sh), and the pipeline's own processes: no host process is visible.
    let pids: Vec<u32> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], 1, "{out}");
    assert!(pids.iter().all(|p| *p < 20), "host pids visible: {out}");
}

#[test]
fn uts_namespace_has_the_configured_hostname() {
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"],
    );
    b.config["hostname"] = "box-one".into();
    b.config["domainname"] = "example.test".into();
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(out, "box-one\nexample.test\n");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(host.to_str().unwrap(), "box-one");
}

#[test]
fn network_namespace_has_only_loopback() {
    let out = run_sh("ls /sys/class/net | tr '\\n' ' '");
    assert_eq!(out.trim(), "lo", "{out}");
}

#[test]
fn mount_namespace_has_its_own_table() {
    let out = run_sh("cat /proc/self/mounts");
    // The container's root is its own; the host's mounts (e.g. the cgroup v1 hierarchies' host
    // paths or /work) are not there.
    assert!(
        out.lines().any(|l| l.split(' ').nth(1) == Some("/proc")),
        "{out}"
    );
    assert!(!out.contains("/work"), "{out}");
    let host = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert_ne!(out, host);
}

#[test]
fn ipc_namespace_is_separate() {
    let host = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let out = run_sh("readlink /proc/self/ns/ipc; readlink /proc/self/ns/cgroup");
    let mut lines = out.lines();
    assert_ne!(lines.next().unwrap(), host.to_str().unwrap());
    let host_cg = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert_ne!(lines.next().unwrap(), host_cg.to_str().unwrap());
}

#[test]
fn joins_an_existing_network_namespace_by_path() {
    // A namespace made by the test, with a veth pair the container must see.
    let name = berth_tests::unique("berthns");
    let netns = NetNs::new(&name);
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"],
    );
    let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    for ns in namespaces.iter_mut() {
        if ns["type"] == "network" {
            ns["path"] = netns.path().into();
        }
    }
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(out.trim(), "lo vbt0 vbt1", "{out}");
}

#[test]
fn a_new_user_namespace_joins_a_network_namespace_of_the_hosts() {
    // The namespace is owned by the host's user namespace, over which the container's new one
    // gives no right: the runtime enters it before the fork. sysfs cannot be mounted there
    // either: the host's /sys is bound instead (as runc does).
    let name = berth_tests::unique("berthns");
    let netns = NetNs::new(&name);
    let mut b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort | tr '\\n' ' '; \
             cat /proc/self/uid_map; test -d /sys/class && echo sys",
        ],
    );
    let c = &mut b.config;
    for ns in c["linux"]["namespaces"].as_array_mut().unwrap().iter_mut() {
        if ns["type"] == "network" {
            ns["path"] = netns.path().into();
        }
    }
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["lo", "vbt0", "vbt1", "0", "100000", "65536", "sys"],
        "{out}"
    );
}

struct NetNs(String);

impl NetNs {
    fn new(name: &str) -> NetNs {
        let ip = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", name]);
        let ns = NetNs(name.to_string());
        ip(&[
            "-n", name, "link", "add", "vbt0", "type", "veth", "peer", "name", "vbt1",
        ]);
        ns
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_user() {
    let mut b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; touch /tmp/f && stat -c %u /tmp/f",
        ],
    );
    let c = &mut b.config;
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    c["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.save();
    // The rootfs must belong to the mapped root to be writable from inside.
    let st = std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    assert!(st.success());
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    assert_eq!(lines[2], "0");
    // On the host, the file belongs to the mapped uid.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(b.rootfs().join("tmp/f")).unwrap();
    assert_eq!(meta.uid(), 100000);
}

#[test]
fn time_namespace_offsets_the_clocks() {
    // A new time namespace whose monotonic and boot clocks are ten days ahead: /proc/uptime
    // (boottime) inside reads more than ten days; the host's does not.
    let mut b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "cut -d. -f1 /proc/uptime; readlink /proc/self/ns/time",
        ],
    );
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": 864000, "nanosecs": 0},
        "monotonic": {"secs": 864000}
    });
    b.save();
    let out = b.run().ok().stdout;
    let mut lines = out.lines();
    let uptime: u64 = lines.next().unwrap().parse().unwrap();
    assert!(uptime > 864_000, "{out}");
    let host_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(host_uptime < 864_000.0);
    let host_ns = std::fs::read_link("/proc/self/ns/time").unwrap();
    assert_ne!(lines.next().unwrap(), host_ns.to_str().unwrap());
}

#[test]
fn time_offsets_without_a_time_namespace_are_refused() {
    let mut b = Bundle::new(RUNTIME, &["true"]);
    b.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 5}});
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("linux.timeOffsets"), "{out:?}");
}

#[test]
fn net_devices_are_moved_in_and_renamed() {
    // The runtime runs in a network namespace of the test's (nsenter), where the test made a
    // veth pair; vbt0 goes into the container as eth5.
    let netns = NetNs::new(&berth_tests::unique("berthnd"));
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"],
    );
    b.config["linux"]["netDevices"] = json!({"vbt0": {"name": "eth5"}});
    b.save();
    let bundle = b.path().display().to_string();
    let root = b.state_root().display().to_string();
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.path()))
        .arg(RUNTIME)
        .args(["--root", &root, "run", "--bundle", &bundle, &b.id]);
    let out = berth_tests::run_with_timeout(&mut cmd, berth_tests::TIMEOUT).ok();
    assert_eq!(out.stdout.trim(), "eth5 lo", "{out:?}");
    // It left the runtime's namespace (and went away with the container's).
    let st = std::process::Command::new("ip")
        .args(["-n", &netns.0, "link", "show", "vbt0"])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
    // A device that does not exist is a clear error.
    b.config["linux"]["netDevices"] = json!({"nosuchdev0": {}});
    b.save();
    let out = b.run();
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("nosuchdev0") && out.stderr.contains("no such device"),
        "{out:?}"
    );
}

fn ns_of(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn own_ns(kind: &str) -> String {
    ns_of(i64::from(std::process::id()), kind)
}

/// The mount points at or below `dir` in this process's mount namespace.
fn mounts_below(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

#[test]
fn without_a_mount_namespace_the_runtimes_is_shared_and_left_clean() {
    let mut b = Bundle::new(RUNTIME, &["sleep", "30"]);
    let c = &mut b.config;
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    c["linux"]["maskedPaths"] = serde_json::json!([]);
    c["linux"]["readonlyPaths"] = serde_json::json!([]);
    b.save();
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    assert_eq!(ns_of(pid, "mnt"), own_ns("mnt"));
    // The process is in the rootfs all the same, and so is an exec'd one.
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, b.rootfs());
    let out = b
        .cmd(&[
            "exec",
            &b.id,
            "sh",
            "-c",
            "cat /etc/hostname; ls /proc/1/ns",
        ])
        .ok();
    assert!(out.stdout.starts_with("busybox\n"), "{out:?}");
    // Its mounts (proc, dev...) are the host's, below the rootfs, until delete.
    assert!(!mounts_below(&b.rootfs()).is_empty());
    b.cmd(&["delete", "--force", &b.id]).ok();
    assert_eq!(mounts_below(&b.rootfs()), Vec::<String>::new());

    // What would change the host's mount table is refused.
    let mut b = Bundle::new(RUNTIME, &["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    b.save();
    let out = b.create();
    assert!(
        out.stderr.contains("without a private MNT namespace"),
        "{out:?}"
    );
    assert_eq!(mounts_below(&b.rootfs()), Vec::<String>::new());
}

#[test]
fn joins_an_existing_mount_namespace_by_path() {
    // A mount namespace held by a sleeping process of the test.
    let mut holder = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = holder.id();
    let _kill = Kill(&mut holder);
    let own = own_ns("mnt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let path = format!("/proc/{pid}/ns/mnt");
    while ns_of(i64::from(pid), "mnt") == own {
        assert!(std::time::Instant::now() < deadline, "unshare never ran");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let target = ns_of(i64::from(pid), "mnt");
    let mut b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "readlink /proc/self/ns/mnt; cat /etc/hostname"],
    );
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "mount" {
            n["path"] = path.clone().into();
        }
    }
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(out, format!("{target}\nbusybox\n"));
}

#[test]
fn cgroup_v1_in_a_user_and_cgroup_namespace_is_the_containers_own() {
    // In a user namespace a v1 hierarchy cannot be mounted afresh (its superblock belongs to
    // the host's user namespace): the container's directory is bound instead.
    let mut b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /proc/self/cgroup | grep -c ':/$'",
        ],
    );
    let c = &mut b.config;
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.save();
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "67108864", "{out}");
    // Every hierarchy's path is "/" in the cgroup namespace.
    assert!(lines[1].parse::<u32>().unwrap() > 1, "{out}");
}
