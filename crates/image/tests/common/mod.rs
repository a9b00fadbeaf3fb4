//! Helpers the image tests share: small layer tars, and mounting snapshots for a while.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses some of these

use std::path::Path;

use berth_image::snapshot::Mount;

/// A tar of regular files (mode 0644, owned by root, mtime 0).
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Mounts `mounts` on `target`, runs `f`, and unmounts (also when `f` panics).
pub fn with_mounted<T>(mounts: &[Mount], target: &Path, f: impl FnOnce() -> T) -> T {
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    std::fs::create_dir_all(target).unwrap();
    for m in mounts {
        m.mount(target).unwrap();
    }
    let _guard = Unmount(target);
    f()
}
