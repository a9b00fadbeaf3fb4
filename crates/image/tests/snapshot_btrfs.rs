//! The btrfs snapshotter's own tests (the conformance suite runs against it in `snapshot.rs`):
//! its snapshots are subvolumes, committed ones read-only, a snapshot costs no copy, what a crash
//! leaves is put right at open, nested subvolumes go with their snapshot, and a root elsewhere
//! than on btrfs is refused. Each test makes a loop btrfs of its own, freed on drop; `btrfs`
//! (btrfs-progs) is run to look at the subvolumes from outside.
//!
//! Needs root and `mkfs.btrfs`; without them every test says so and passes, but fails under
//! `CI=true`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use berth_image::snapshot::{BtrfsSnapshotter, Kind, SnapshotError, Snapshotter};
use berth_tests::smallfs::SmallFs;

fn skip() -> bool {
    berth_tests::smallfs::skip_btrfs()
}

fn btrfs() -> SmallFs {
    SmallFs::btrfs(512).expect("a loop btrfs")
}

/// `btrfs <args>`, which must succeed; its stdout.
fn btrfs_cmd(args: &[&str]) -> String {
    let out = Command::new("btrfs")
        .args(args)
        .output()
        .expect("run btrfs");
    assert!(
        out.status.success(),
        "btrfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The paths of the subvolumes below `mount` (`btrfs subvolume list`), sorted.
fn subvolumes(mount: &Path) -> Vec<String> {
    let list = btrfs_cmd(&["subvolume", "list", "-o", &mount.display().to_string()]);
    let mut paths: Vec<String> = list
        .lines()
        .filter_map(|l| l.split(" path ").nth(1))
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths
}

fn is_subvolume(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == 256)
}

fn read_only_property(path: &Path) -> String {
    btrfs_cmd(&["property", "get", &path.display().to_string(), "ro"])
        .trim()
        .to_owned()
}

#[test]
fn snapshots_are_subvolumes_and_committed_ones_are_read_only() {
    if skip() {
        return;
    }
    let small = btrfs();
    let s = BtrfsSnapshotter::new(small.path().join("root")).expect("open");
    s.prepare("base", None).expect("prepare");
    let base = s.upper_dir("base").expect("upper");
    assert!(is_subvolume(&base), "{} is a subvolume", base.display());
    assert_eq!(read_only_property(&base), "ro=false");
    fs::write(base.join("a.txt"), "a").expect("write");
    s.commit("A", "base").expect("commit");
    assert_eq!(read_only_property(&base), "ro=true");
    let err = fs::write(base.join("b.txt"), "b").expect_err("write into a committed snapshot");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    s.prepare("ctr", Some("A")).expect("prepare on A");
    let ctr = s.upper_dir("ctr").expect("upper");
    assert!(is_subvolume(&ctr));
    assert_eq!(read_only_property(&ctr), "ro=false");
    assert_eq!(fs::read_to_string(ctr.join("a.txt")).expect("read"), "a");
    fs::write(ctr.join("a.txt"), "changed").expect("write into the snapshot");
    assert_eq!(fs::read_to_string(base.join("a.txt")).expect("read"), "a");

    s.view("empty", None).expect("view");
    let view = s.mounts("empty").expect("mounts");
    assert_eq!(view[0].options, ["rbind", "ro"]);
    assert_eq!(read_only_property(Path::new(&view[0].source)), "ro=true");
    assert_eq!(
        subvolumes(small.path()).len(),
        3,
        "A, ctr and the empty view: {:?}",
        subvolumes(small.path())
    );
}

/// A snapshot shares its parent's extents: preparing on a 64 MB layer takes no 64 MB.
#[test]
fn a_snapshot_costs_no_copy() {
    if skip() {
        return;
    }
    let small = btrfs();
    let s = BtrfsSnapshotter::new(small.path().join("root")).expect("open");
    s.prepare("base", None).expect("prepare");
    let base = s.upper_dir("base").expect("upper");
    fs::write(base.join("big"), vec![0x5au8; 64 << 20]).expect("write big");
    s.commit("A", "base").expect("commit");
    btrfs_cmd(&["filesystem", "sync", &small.path().display().to_string()]);
    let before = small.free();
    for i in 0..4 {
        let key = format!("ctr-{i}");
        s.prepare(&key, Some("A")).expect("prepare");
        let upper = s.upper_dir(&key).expect("upper");
        assert_eq!(
            fs::metadata(upper.join("big")).expect("stat").len(),
            64 << 20
        );
    }
    btrfs_cmd(&["filesystem", "sync", &small.path().display().to_string()]);
    let used = before.saturating_sub(small.free());
    assert!(used < 16 << 20, "4 snapshots of 64 MB took {used} bytes");
}

/// What a crash leaves: a subvolume made but not recorded, a directory half made, a removal
/// recorded but not carried out, a commit made read-only but not recorded.
#[test]
fn what_a_crash_leaves_is_put_right_at_open() {
    if skip() {
        return;
    }
    let small = btrfs();
    let root = small.path().join("root");
    let (ctr, removed) = {
        let s = BtrfsSnapshotter::new(&root).expect("open");
        s.prepare("ctr", None).expect("prepare");
        s.prepare("gone", None).expect("prepare");
        let removed = s.upper_dir("gone").expect("upper");
        (s.upper_dir("ctr").expect("upper"), removed)
    };
    let snapshots = root.join("snapshots");
    // An unrecorded subvolume, a half-made directory.
    fs::create_dir(snapshots.join("98")).expect("mkdir");
    btrfs_cmd(&[
        "subvolume",
        "create",
        &snapshots.join("98/fs").display().to_string(),
    ]);
    fs::create_dir_all(snapshots.join("99/fs")).expect("mkdir");
    // "gone" removed from the metadata, its subvolume still there.
    let meta_path = root.join("metadata.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&fs::read(&meta_path).expect("read")).expect("json");
    meta["snapshots"]
        .as_object_mut()
        .expect("snapshots")
        .remove("gone");
    fs::write(&meta_path, serde_json::to_vec(&meta).expect("json")).expect("write");
    // A commit interrupted after the read-only flag.
    btrfs_cmd(&["property", "set", &ctr.display().to_string(), "ro", "true"]);

    let s = BtrfsSnapshotter::new(&root).expect("reopen");
    let keys: Vec<String> = s.list().expect("list").into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["ctr"]);
    assert!(!snapshots.join("98").exists() && !snapshots.join("99").exists());
    assert!(!removed.exists());
    assert_eq!(subvolumes(small.path()), ["root/snapshots/1/fs"]);
    fs::write(ctr.join("x"), "x").expect("the active snapshot is writable again");
    assert_eq!(s.stat("ctr").expect("stat").kind, Kind::Active);
}

/// A subvolume a container made in its root goes with its snapshot, also from a committed
/// (read-only) one.
#[test]
fn nested_subvolumes_go_with_their_snapshot() {
    if skip() {
        return;
    }
    let small = btrfs();
    let s = BtrfsSnapshotter::new(small.path().join("root")).expect("open");
    for (key, commit) in [("ctr", None), ("layer", Some("L"))] {
        s.prepare(key, None).expect("prepare");
        let upper = s.upper_dir(key).expect("upper");
        fs::create_dir(upper.join("dir")).expect("mkdir");
        btrfs_cmd(&[
            "subvolume",
            "create",
            &upper.join("dir/nested").display().to_string(),
        ]);
        fs::write(upper.join("dir/nested/file"), "x").expect("write");
        let key = match commit {
            Some(name) => {
                s.commit(name, key).expect("commit");
                name
            }
            None => key,
        };
        s.remove(key).expect("remove with a nested subvolume");
        assert!(!upper.exists());
    }
    assert!(subvolumes(small.path()).is_empty());
    assert!(s.list().expect("list").is_empty());
}

#[test]
fn a_root_not_on_btrfs_is_refused() {
    if skip() {
        return;
    }
    let tmpfs = SmallFs::tmpfs(1 << 20).expect("tmpfs");
    let err = BtrfsSnapshotter::new(tmpfs.path().join("root")).expect_err("not on btrfs");
    assert!(matches!(err, SnapshotError::NotBtrfs { .. }), "{err}");
    assert!(err.to_string().contains("not on btrfs"), "{err}");
}
