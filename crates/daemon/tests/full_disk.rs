#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! berthd on a full data root (a 200 MB ext4 on a loop device, filled by the test): changes that
//! need space fail with an error and leave nothing of themselves, in memory or on disk (a
//! rename keeps the old name, also across a restart; a create leaves no container); removals
//! (`rm -f`, `rmi`, `volume rm`) work and free space; the metadata store keeps answering; once
//! space is freed, `images` and `run` of the base image work at once, without a restart.
//!
//! Needs root, the docker CLI and `mkfs.ext4`: without them it says `skipped`, and under
//! `CI=true` it fails.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_tests::smallfs::{self, SmallFs};
use common::{text, Daemon, DOCKER};

const MB: u64 = 1 << 20;

fn prerequisites_missing() -> bool {
    if smallfs::skip(true) {
        return true;
    }
    if !Path::new(DOCKER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and there is no docker CLI at {DOCKER}"
        );
        eprintln!("skipped: no docker CLI at {DOCKER}");
        return true;
    }
    false
}

/// Whether `out` is a failure for lack of space.
fn no_space(out: &Output) -> bool {
    !out.status.success()
        && text(out)
            .1
            .to_lowercase()
            .contains("no space left on device")
}

/// Whether `cond` holds within `timeout` (checked every 100 ms).
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The container's name as inspect shows it, or the error.
fn name_of(d: &Daemon, container: &str) -> Result<String, String> {
    let out = d.docker(&["inspect", "-f", "{{.Name}}", container]);
    let (stdout, stderr) = text(&out);
    if out.status.success() {
        Ok(stdout.trim().to_string())
    } else {
        Err(stderr)
    }
}

/// Imports busybox with a file of `bytes` more as `name`: an image of its own (one layer).
fn fat_image(d: &Daemon, name: &str, bytes: usize) {
    let rootfs = tempfile::tempdir().unwrap();
    berth_tests::busybox_rootfs(rootfs.path()).unwrap();
    std::fs::write(rootfs.path().join("fat"), vec![0x3c; bytes]).unwrap();
    let tar = d.dir.join("fat.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    d.ok(&["import", tar.to_str().unwrap(), name]);
    std::fs::remove_file(&tar).unwrap();
}

/// Fills the disk again, runs `what` (which must succeed), and checks that at least `bytes`
/// come free within 30 s (removed files are deleted on threads).
fn frees(disk: &mut SmallFs, d: &Daemon, bytes: u64, what: &[&str]) {
    disk.fill().unwrap();
    let before = disk.free();
    d.ok(what);
    assert!(
        eventually(Duration::from_secs(30), || disk.free() >= before + bytes),
        "docker {what:?} freed {} bytes of {bytes}: {}",
        disk.free().saturating_sub(before),
        d.log()
    );
}

/// Tags `bb:local` under new names until a commit of the metadata store finds no space (it
/// writes new pages, mostly into blocks the file already has: a few dozen names are needed);
/// returns how many were made.
fn tag_until_no_space(d: &Daemon) -> usize {
    let long = "a-long-tag-that-makes-the-metadata-store-write-new-pages";
    for i in 0..400 {
        let out = d.docker(&["tag", "bb:local", &format!("bb:{long}-{i}")]);
        if !out.status.success() {
            assert!(no_space(&out), "tag on a full disk: {out:?}");
            return i;
        }
    }
    panic!("400 names committed on a full disk: {}", d.log());
}

fn image_names(d: &Daemon) -> Vec<String> {
    let out = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_full_data_root_refuses_changes_frees_space_and_recovers_without_a_restart() {
    if prerequisites_missing() {
        return;
    }
    // Dropped after the daemon (declared first): berthd's mounts go before the filesystem.
    let mut disk = SmallFs::ext4(200).expect("a 200 MB ext4 on a loop device");
    let data = disk.path().join("data");
    let mut d = Daemon::start_with_data_root(Some(&data));
    d.busybox("bb:local");
    fat_image(&d, "fat:local", 8 * MB as usize);
    d.ok(&["volume", "create", "vol"]);
    let fill_volume = "dd if=/dev/zero of=/v/data bs=1M count=8 && sync";
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "vol:/v",
        "bb:local",
        "sh",
        "-c",
        fill_volume,
    ]);
    let fill_layer = "dd if=/dev/zero of=/junk bs=1M count=8 && sync";
    d.ok(&[
        "run", "--name", "writer", "bb:local", "sh", "-c", fill_layer,
    ]);
    d.ok(&["create", "--name", "old", "bb:local", "true"]);
    d.ok(&[
        "run", "-d", "--name", "sleeper", "bb:local", "sleep", "1000",
    ]);

    disk.fill().unwrap();
    // What needs space fails, and nothing of it is seen.
    let out = d.docker(&["rename", "old", "new"]);
    assert!(no_space(&out), "rename on a full disk: {out:?}");
    assert_eq!(name_of(&d, "old").as_deref(), Ok("/old"));
    assert!(name_of(&d, "new").is_err(), "the new name is not seen");
    let out = d.docker(&["create", "--name", "nospace", "bb:local", "true"]);
    assert!(no_space(&out), "create on a full disk: {out:?}");
    assert!(name_of(&d, "nospace").is_err(), "no container was made");
    // An update that cannot be recorded leaves the running container's limits as they were.
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "sleeper"]);
    let limit = common::cgroup_value(pid.trim(), "memory", "memory.limit_in_bytes");
    let out = d.docker(&["update", "--memory", "100m", "sleeper"]);
    assert!(no_space(&out), "update on a full disk: {out:?}");
    assert_eq!(
        common::cgroup_value(pid.trim(), "memory", "memory.limit_in_bytes"),
        limit
    );
    // A build whose context does not fit fails, and leaves nothing in the store's tmp.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("big"), vec![7u8; 4 * MB as usize]).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb:local\nCOPY big /big\n",
    )
    .unwrap();
    let build = |d: &Daemon| {
        let dir = ctx.path().to_str().unwrap();
        let mut cmd = d.docker_command(&["build", "-t", "built:big", dir]);
        cmd.env("DOCKER_BUILDKIT", "0");
        berth_tests::run_with_timeout(&mut cmd, Duration::from_secs(120))
    };
    let out = build(&d);
    assert!(
        !out.status.success()
            && out
                .stderr
                .to_lowercase()
                .contains("no space left on device"),
        "build on a full disk: {out:?}"
    );
    let left: Vec<_> = std::fs::read_dir(data.join("image/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left in tmp: {left:?}");
    // A failed commit of the metadata store: it answers at once, it is not poisoned.
    let tags = tag_until_no_space(&d);
    assert_eq!(
        image_names(&d).len(),
        2 + tags,
        "images after a failed commit"
    );
    let out = d.docker(&["tag", "bb:local", "bb:one-more"]);
    assert!(
        out.status.success() || no_space(&out),
        "the next commit is tried (not refused for a previous error): {out:?}"
    );

    // Removals work on a full disk and free space.
    frees(&mut disk, &d, 6 * MB, &["rm", "-f", "writer"]);
    disk.fill().unwrap();
    d.ok(&["rm", "-f", "sleeper"]);
    frees(&mut disk, &d, 12 * MB, &["rmi", "fat:local"]);
    frees(&mut disk, &d, 6 * MB, &["volume", "rm", "vol"]);
    let names = image_names(&d);
    assert!(names.contains(&"bb:local".to_string()), "{names:?}");
    assert!(!names.contains(&"fat:local".to_string()), "{names:?}");
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "old", "containers on a full disk");

    // berthd restarted on the full disk finds its image's layers (its snapshotter is the one
    // the store was made with, whatever a check on a full disk says).
    disk.fill().unwrap();
    d.stop();
    d.spawn();
    assert!(image_names(&d).contains(&"bb:local".to_string()));
    assert_eq!(name_of(&d, "old").as_deref(), Ok("/old"));

    // Space again: everything works at once, without a restart.
    disk.unfill();
    assert!(image_names(&d).contains(&"bb:local".to_string()));
    let hello = d.ok(&["run", "--rm", "bb:local", "echo", "hello"]);
    assert_eq!(hello.trim(), "hello");
    d.ok(&["tag", "bb:local", "bb:one-more"]);
    d.ok(&["create", "--name", "later", "bb:local", "true"]);
    d.ok(&["rm", "later"]);
    let out = build(&d);
    assert!(out.status.success(), "build with space again: {out:?}");
    d.ok(&["rmi", "built:big"]);

    // The rename that failed was never written: after a restart the name is the old one.
    d.kill9();
    d.spawn();
    assert_eq!(name_of(&d, "old").as_deref(), Ok("/old"));
    d.ok(&["rename", "old", "new"]);
    assert_eq!(name_of(&d, "new").as_deref(), Ok("/new"));
    let again = d.ok(&["run", "--rm", "bb:local", "echo", "again"]);
    assert_eq!(again.trim(), "again");
}
