//! The root filesystem: pivot_root, read-only root, mounts, /dev, masked and read-only paths,
//! and mount destinations that try to leave the rootfs through symlinks.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn sh(script: &str) -> Bundle {
    Bundle::new(RUNTIME, &["sh", "-c", script])
}

#[test]
fn readonly_root_refuses_writes() {
    let mut b = sh("touch /newfile 2>&1; echo rc=$?; touch /tmp/x 2>&1; echo tmp=$?");
    b.config["root"]["readonly"] = true.into();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}));
    b.save();
    let out = b.run().ok().stdout;
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    // The tmpfs mounted on /tmp stays writable.
    assert!(out.contains("tmp=0"), "{out}");
    assert!(!b.rootfs().join("newfile").exists());
}

#[test]
fn masked_paths_read_empty_and_readonly_paths_refuse_writes() {
    let mut b = sh("wc -c < /proc/cpuinfo; ls /proc/fs | wc -l; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1; echo rc=$?; cat /proc/self/mountinfo | grep ' /proc/sys ' | grep -c ' ro'");
    b.config["linux"]["maskedPaths"] = json!(["/proc/cpuinfo", "/proc/fs", "/proc/does-not-exist"]);
    b.config["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    b.save();
    let out = b.run().ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0", "{out}");
    assert_eq!(lines[1].trim(), "0", "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
}

#[test]
fn readonly_paths_keep_nosuid_nodev_noexec() {
    // runc's remount keeps the flags of the mount below (/proc's): the per-mount options of
    // /proc/sys read `ro,nosuid,nodev,noexec,relatime` as in a dockerd container.
    let mut b = sh("awk '$5 ~ /^\\/proc\\/(sys|fs|irq)$/ { print $5, $6 }' /proc/self/mountinfo");
    b.config["linux"]["readonlyPaths"] = json!(["/proc/fs", "/proc/irq", "/proc/sys"]);
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/proc" {
            m["options"] = json!(["nosuid", "noexec", "nodev"]);
        }
    }
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(
        out,
        "/proc/fs ro,nosuid,nodev,noexec,relatime\n\
         /proc/irq ro,nosuid,nodev,noexec,relatime\n\
         /proc/sys ro,nosuid,nodev,noexec,relatime\n"
    );
}

#[test]
fn mounts_honour_type_and_options() {
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("hello"), "from host\n").unwrap();
    let mut b = sh("cat /data/hello; touch /data/new 2>&1; grep ' /scratch ' /proc/self/mounts; grep ' /data ' /proc/self/mounts");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": host_dir.path(), "options": ["rbind", "ro"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "noexec", "size=1m", "mode=700"]}));
    b.save();
    let out = b.run().ok().stdout;
    assert!(out.starts_with("from host\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let scratch = out.lines().find(|l| l.contains(" /scratch ")).unwrap();
    assert!(scratch.starts_with("tmpfs /scratch tmpfs "), "{scratch}");
    assert!(
        scratch.contains("nosuid")
            && scratch.contains("noexec")
            && scratch.contains("size=1024k")
            && scratch.contains("mode=700"),
        "{scratch}"
    );
    let data = out.lines().find(|l| l.contains(" /data ")).unwrap();
    assert!(data.contains(" ro,"), "{data}");
    assert!(!host_dir.path().join("new").exists());
}

#[test]
fn symlinked_mount_destination_stays_inside_rootfs() {
    // The image has /escape -> /../../../<host dir>; a mount on /escape/target must land in the
    // rootfs, never in the host directory.
    let host_dir = tempfile::tempdir().unwrap();
    let b_dir_marker = host_dir.path().join("target");
    std::fs::create_dir(&b_dir_marker).unwrap();
    let mut b = sh("grep -c ' /escape-dir/target ' /proc/self/mounts; ls -d /escape-dir/target");
    let link_target = format!("/../../../../../..{}", host_dir.path().display());
    std::os::unix::fs::symlink(&link_target, b.rootfs().join("escape")).unwrap();
    std::os::unix::fs::symlink("/escape", b.rootfs().join("escape-dir")).unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/escape-dir/target", "type": "tmpfs", "source": "tmpfs"}));
    b.save();
    let out = b.run().ok().stdout;
    // The mount was made inside the rootfs, at the path the symlinks resolve to there.
    let inside = b
        .rootfs()
        .join(host_dir.path().strip_prefix("/").unwrap())
        .join("target");
    assert!(
        inside.is_dir(),
        "mount point not created inside the rootfs: {out}"
    );
    // Nothing was mounted on the host directory.
    let host_mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !host_mounts.contains(&b_dir_marker.display().to_string()),
        "{host_mounts}"
    );
}

#[test]
fn dev_has_default_devices_links_and_configured_devices() {
    let mut b = sh("for d in null zero full random urandom tty mydev; do stat -c '%n %F %t:%T %a' /dev/$d; done; readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx; echo x > /dev/null && echo null-ok; ls -d /dev/pts /dev/shm /dev/mqueue");
    b.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600, "uid": 0, "gid": 0}]);
    b.save();
    let out = b.run().ok().stdout;
    for expected in [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
        "/dev/mydev character special file 1:3 600",
        "/proc/self/fd\n/proc/self/fd/0\npts/ptmx",
        "null-ok",
        "/dev/mqueue\n/dev/pts\n/dev/shm",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn no_pivot_uses_chroot_and_still_isolates() {
    let b = sh("ls / | tr '\\n' ' '; cat /etc/hostname");
    let bundle = b.path().display().to_string();
    let out = b
        .cmd(&["run", "--no-pivot", "--bundle", &bundle, &b.id])
        .ok()
        .stdout;
    assert!(
        out.contains("bin") && out.contains("etc") && out.contains("busybox"),
        "{out}"
    );
    assert!(!out.contains("work"), "{out}");
}

#[test]
fn sysctl_is_set_in_the_container() {
    let mut b = sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"});
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(out, "1\n4096\n");
}

#[test]
fn rslave_bind_mount_sees_later_host_mounts() {
    // A host directory bound with rslave propagation: a mount the host makes there after the
    // container started shows up inside (the container waits for it, then exits).
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(host_dir.path().join("sub")).unwrap();
    let mut b = sh("while [ ! -e /data/sub/marker ]; do usleep 10000; done; echo seen");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": host_dir.path(), "options": ["rbind", "rslave"]}));
    b.config["linux"]["rootfsPropagation"] = "private".into();
    b.save();
    // The host directory must be a shared mount for events to propagate from it.
    let sh_host = |cmd: String| {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
            .unwrap();
        assert!(st.success(), "{cmd}");
    };
    let dir = host_dir.path().display().to_string();
    sh_host(format!(
        "mount --bind {dir} {dir} && mount --make-shared {dir}"
    ));
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-R", &self.0])
                .status();
        }
    }
    let _guard = Unmount(dir.clone());
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    sh_host(format!(
        "mount -t tmpfs marker {dir}/sub && touch {dir}/sub/marker"
    ));
    // Without propagation the container would wait forever and this would time out.
    b.wait_status("stopped");
}

#[test]
fn idmapped_bind_mount_shows_files_through_its_mappings() {
    // A host directory owned by root, bound with uid/gid mappings 0 -> 100000: inside, its
    // files show the mapped owner; on the host nothing changed.
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("f"), "x").unwrap();
    let mut b = sh("stat -c '%u %g' /data/f; stat -c '%u' /data");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({
        "destination": "/data", "type": "bind", "source": host_dir.path(), "options": ["rbind"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
    }));
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(out, "100000 100000\n100000\n");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(host_dir.path().join("f")).unwrap().uid(),
        0
    );
}

#[test]
fn idmapped_mount_needs_both_mappings() {
    let mut b = sh("true");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({
        "destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
    }));
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("uidMappings and gidMappings"),
        "{out:?}"
    );
}
