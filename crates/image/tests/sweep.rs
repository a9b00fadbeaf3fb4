//! The sweep at open with real mounts: what a killed build left mounted in the store's `tmp`
//! is unmounted, then removed, never removed through the mount.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::path::Path;

use berth_image::import::{Backend, ImageStore};

fn mounted(point: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(p) == point)
}

/// Detaches `point` on drop, also when the test fails.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_dead_builds_mounts_are_unmounted_before_its_directory_goes() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(std::env::var("CI").is_err(), "the sweep test needs root");
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    std::fs::create_dir(&lower).unwrap();
    std::fs::write(lower.join("keep"), "kept").unwrap();
    let store = ImageStore::open_with(&dir.path().join("store"), Backend::Overlay).unwrap();
    // A dead process's writable bind: an overlay over `lower`, and a tmpfs inside it.
    let left = store.tmp_dir().join(format!("rwbind-{}-1", u32::MAX));
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(left.join(d)).unwrap();
    }
    let merged = left.join("merged");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        left.join("upper").display(),
        left.join("work").display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let _overlay = Unmount(&merged);
    let inner = merged.join("inner");
    std::fs::create_dir(&inner).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &inner,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let _tmpfs = Unmount(&inner);

    let swept = store.sweep_leftovers().unwrap();
    assert_eq!(swept.temporary, vec![format!("rwbind-{}-1", u32::MAX)]);
    assert!(!mounted(&merged) && !mounted(&inner));
    assert!(!left.exists());
    assert_eq!(std::fs::read_to_string(lower.join("keep")).unwrap(), "kept");
}
