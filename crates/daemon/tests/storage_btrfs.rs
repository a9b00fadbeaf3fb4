//! Storage drivers by dockerd's names: berthd with `storage-driver: btrfs` on a data root on a
//! loop btrfs runs, commits and removes containers on subvolumes and leaves none behind; `btrfs`
//! elsewhere, an unknown driver, or another driver than the one whose layers the data root
//! holds, are refused at start with dockerd's words; `docker info` shows the driver.
//!
//! Needs root, the docker CLI and `mkfs.btrfs` (btrfs-progs); without them the tests say so and
//! pass, but fail under `CI=true`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::smallfs::SmallFs;
use common::Daemon;

/// The paths of the subvolumes below `mount` (`btrfs subvolume list -o`).
fn subvolumes(mount: &Path) -> Vec<String> {
    let out = Command::new("btrfs")
        .args(["subvolume", "list", "-o"])
        .arg(mount)
        .output()
        .expect("btrfs subvolume list");
    assert!(
        out.status.success(),
        "btrfs subvolume list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(" path ").nth(1))
        .map(str::to_owned)
        .collect()
}

/// Runs berthd on `data_root` with `args`, which must make it fail at start (within 30 s);
/// its output.
fn berthd_refuses(d: &Daemon, data_root: &Path, args: &[&str]) -> String {
    let exec_root = d.dir.join("refused-run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("-H")
        .arg(format!("unix://{}", d.dir.join("refused.sock").display()))
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(&exec_root)
        .arg("--config-file")
        .arg(d.dir.join("no-daemon.json"))
        .arg("--bridge")
        .arg(format!("{}r", d.bridge))
        .arg("--nft-table")
        .arg(format!("{}_r", d.table))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berthd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berthd {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!status.success(), "berthd {args:?} started: {text}");
    // (an exec root on a disk gets a tmpfs of its own)
    let _ = nix::mount::umount2(&exec_root, nix::mount::MntFlags::MNT_DETACH);
    text
}

#[test]
fn containers_run_commit_and_go_on_btrfs_subvolumes() {
    if common::skip() || berth_tests::smallfs::skip_btrfs() {
        return;
    }
    // Declared first, dropped last: unmounted (and its loop device freed) after berthd is gone.
    let small = SmallFs::btrfs(512).expect("a loop btrfs");
    let data = small.path().join("data");
    let d = Daemon::start_on(Some(&data), |dir| {
        std::fs::write(dir.join("daemon.json"), r#"{"storage-driver": "btrfs"}"#)
            .expect("daemon.json");
    });
    assert_eq!(d.ok(&["info", "--format", "{{.Driver}}"]).trim(), "btrfs");
    assert_eq!(
        d.ok(&["info", "--format", "{{json .DriverStatus}}"]).trim(),
        r#"[["Btrfs",""]]"#
    );
    assert!(d.ok(&["info"]).contains("Storage Driver: btrfs"));

    d.busybox("bb");
    assert_eq!(subvolumes(small.path()).len(), 1, "the busybox layer");
    d.ok(&[
        "run",
        "--name",
        "writer",
        "bb",
        "sh",
        "-c",
        "echo written > /greeting",
    ]);
    let layers = subvolumes(small.path());
    assert_eq!(layers.len(), 2, "and the container's: {layers:?}");
    assert!(layers
        .iter()
        .all(|p| p.starts_with("data/image/snapshots/btrfs/snapshots/")));
    d.ok(&["commit", "writer", "bb:written"]);
    let out = d.ok(&["run", "--rm", "bb:written", "cat", "/greeting"]);
    assert_eq!(out.trim(), "written");
    // The container's layer is a writable snapshot of the image's: the image is untouched.
    let out = d.docker(&["run", "--rm", "bb", "cat", "/greeting"]);
    assert!(!out.status.success(), "the base image has no /greeting");

    d.ok(&["rm", "writer"]);
    d.ok(&["rmi", "bb:written", "bb"]);
    assert_eq!(d.ok(&["images", "-q"]).trim(), "");
    let left = subvolumes(small.path());
    assert!(left.is_empty(), "subvolumes left: {left:?}");
    assert!(d.mounts_under().is_empty(), "{:?}", d.mounts_under());
}

#[test]
fn btrfs_elsewhere_than_on_btrfs_is_refused_at_start() {
    if common::skip() {
        return;
    }
    let d = Daemon::start();
    let tmpfs = SmallFs::tmpfs(64 << 20).expect("tmpfs");
    let data = tmpfs.path().join("data");
    let text = berthd_refuses(&d, &data, &["--storage-driver", "btrfs"]);
    assert!(
        text.contains(
            "error initializing graphdriver: prerequisites for driver not satisfied (wrong \
             filesystem?)"
        ),
        "dockerd's words: {text}"
    );
    assert!(!data.join("image/content").exists(), "no store made");
    let text = berthd_refuses(&d, &data, &["--storage-driver", "aufs"]);
    assert!(
        text.contains("error initializing graphdriver: driver not supported: aufs"),
        "{text}"
    );
}

#[test]
fn a_data_root_keeps_its_driver_and_refuses_another() {
    if common::skip() {
        return;
    }
    let mut d = Daemon::start_with(|dir| {
        std::fs::write(dir.join("daemon.json"), r#"{"storage-driver": "vfs"}"#)
            .expect("daemon.json");
    });
    assert_eq!(d.ok(&["info", "--format", "{{.Driver}}"]).trim(), "vfs");
    assert_eq!(
        d.ok(&["info", "--format", "{{json .DriverStatus}}"]).trim(),
        "null"
    );
    d.busybox("bb");
    d.ok(&["run", "--rm", "bb", "true"]);
    d.stop();
    let data = d.data_root.clone();
    let text = berthd_refuses(&d, &data, &["--storage-driver", "overlay2"]);
    assert!(
        text.contains("holds the layers of storage driver vfs")
            && text.contains("--storage-driver vfs"),
        "{text}"
    );
    // Without a driver named, the prior one.
    std::fs::remove_file(d.dir.join("daemon.json")).expect("rm daemon.json");
    d.spawn();
    assert_eq!(d.ok(&["info", "--format", "{{.Driver}}"]).trim(), "vfs");
    d.ok(&["run", "--rm", "bb", "true"]);
}
