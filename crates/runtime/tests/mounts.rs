//! Mounts where the runtime spec and runc go further than the common case: propagation options
//! on any mount, `rootfsPropagation`, the recursive options of mount_setattr(2), idmapped mounts
//! with the container's own mappings, FIFOs in `linux.devices`, and proc refused on a symlink.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn sh(script: &str) -> Bundle {
    Bundle::new(RUNTIME, &["sh", "-c", script])
}

/// The optional fields of the mountinfo line of `mount_point` in `mountinfo` (`shared:12`...).
fn propagation_of(mountinfo: &str, mount_point: &str) -> String {
    mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mount_point))
        .and_then(|l| l.split_once(" - ").map(|(pre, _)| pre))
        .map(|pre| pre.split(' ').skip(6).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no mount on {mount_point} in:\n{mountinfo}"))
}

/// A tmpfs mounted on the host at `dir`, unmounted on drop.
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(dir: &Path) -> HostMount {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs on {}", dir.display());
        HostMount(dir.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn propagation_options_apply_to_any_mount() {
    let mut b = sh("cat /proc/self/mountinfo");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]}));
    mounts.push(json!({"destination": "/unbindable", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]}));
    b.save();
    let out = b.run().ok().stdout;
    assert!(propagation_of(&out, "/shared").contains("shared:"), "{out}");
    assert!(
        propagation_of(&out, "/unbindable").contains("unbindable"),
        "{out}"
    );
}

#[test]
fn rootfs_propagation_shared_and_unbindable_are_given_to_the_root() {
    for (name, expected) in [("shared", "shared:"), ("unbindable", "unbindable")] {
        let mut b = sh("cat /proc/self/mountinfo");
        b.config["linux"]["rootfsPropagation"] = name.into();
        b.save();
        let out = b.run();
        assert_eq!(out.code(), 0, "rootfsPropagation {name}: {out:?}");
        assert!(
            propagation_of(&out.stdout, "/").contains(expected),
            "rootfsPropagation {name}: {}",
            out.stdout
        );
    }
}

#[test]
fn recursive_options_reach_the_submounts_of_a_bind() {
    // A host directory with a tmpfs below it, bound with rbind: `ro` makes only the top mount
    // read-only, `rro` the tmpfs too; `rnoexec` likewise for exec.
    let host = tempfile::tempdir().unwrap();
    let _sub = HostMount::tmpfs(&host.path().join("sub"));
    std::fs::copy("/bin/busybox", host.path().join("sub/busybox")).unwrap();
    let script = "touch /plain/sub/w 2>&1; echo plain=$?; touch /rec/sub/w 2>&1; echo rec=$?; \
                  /rec/sub/busybox true 2>&1; echo exec=$?";
    let mut b = sh(script);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/plain", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}));
    mounts.push(json!({"destination": "/rec", "type": "bind", "source": host.path(), "options": ["rbind", "rro", "rnoexec"]}));
    b.save();
    let out = b.run().ok().stdout;
    assert!(out.contains("plain=0"), "{out}");
    assert!(out.contains("rec=1"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("exec=0"), "{out}");
    // The host's mounts are untouched.
    std::fs::write(host.path().join("sub/host-write"), "x").unwrap();
}

#[test]
fn idmap_option_without_mappings_takes_the_containers_user_namespace() {
    // A host directory owned by host root: in a container whose root is host uid 100000, its
    // files show as the overflow uid, unless the mount is idmapped with the container's maps.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "x").unwrap();
    let mut b = sh("stat -c %u /plain/f /mapped/f");
    let c = &mut b.config;
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/plain", "type": "bind", "source": host.path(), "options": ["rbind"]}));
    mounts.push(json!({"destination": "/mapped", "type": "bind", "source": host.path(), "options": ["rbind", "ridmap"]}));
    b.save();
    // The rootfs belongs to host root, which the container cannot write: the mount points
    // must be there already.
    for dir in ["plain", "mapped"] {
        std::fs::create_dir(b.rootfs().join(dir)).unwrap();
    }
    let out = b.run().ok().stdout;
    assert_eq!(out, "65534\n0\n");

    // Without a user namespace (nor mappings on the mount) there is nothing to map with.
    let mut b = sh("true");
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/mapped", "type": "bind", "source": host.path(), "options": ["rbind", "idmap"]}));
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("idmap option needs"), "{out:?}");
}

#[test]
fn fifo_devices_are_created_without_a_device_rule() {
    let mut b = sh("stat -c '%F %a' /dev/myfifo; (echo through > /dev/myfifo &); cat /dev/myfifo");
    b.config["linux"]["devices"] = json!([{"path": "/dev/myfifo", "type": "p", "fileMode": 0o640}]);
    b.save();
    let out = b.run().ok().stdout;
    assert_eq!(out, "fifo 640\nthrough\n");
}

#[test]
fn proc_on_a_symlink_is_refused() {
    let b = sh("true");
    let proc_dir = b.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).unwrap();
    std::os::unix::fs::symlink("/tmp", &proc_dir).unwrap();
    let out = b.create();
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(
        out.stderr.contains("must be mounted on ordinary directory"),
        "{out:?}"
    );
    assert!(!b.state_root().join(&b.id).exists());
}
