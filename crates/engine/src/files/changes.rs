//! `GET /containers/{id}/changes` (`docker diff`): what the container changed in its root
//! filesystem, from its writable layer (overlayfs' upper directory) compared with its image.
//!
//! An entry of the upper directory is deleted (`D`, 2) when it is a whiteout, else modified
//! (`C`, 0) when the image has that path, else added (`A`, 1); the image is asked through a
//! read-only view of it, with symlinks resolved inside it. Below an added directory every entry
//! is added; an opaque directory hides all the image had below it. The mount points the runtime
//! makes in the layer (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/proc`, `/sys`,
//! `/dev`), which dockerd keeps in an init layer of their own, are left out, and so is a
//! directory that changed only because of them. Sorted by path, as dockerd sorts them.

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use berth_api::models::{ChangeType, FilesystemChange};

use crate::error::{EngineError, Result};
use crate::files::view::View;
use crate::Engine;

/// What the runtime mounts over, made in the layer when the image lacks it.
const MOUNT_POINTS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/dev",
];

impl Engine {
    /// `GET /containers/{id}/changes`.
    pub fn changes(&self, key: &str) -> Result<Vec<FilesystemChange>> {
        let c = self.containers.get(key)?;
        let snapshots = &self.images.store.snapshots;
        let upper = match snapshots.upper_dir(&format!("container-{}", c.id)) {
            Ok(dir) => dir,
            // Never started: no layer yet, no change.
            Err(_) => return Ok(Vec::new()),
        };
        // (the copy snapshotter's layer is the whole tree, not its changes)
        if !snapshots.can_rebase() {
            return Err(EngineError::Internal(
                "docker diff needs the overlay snapshotter".to_string(),
            ));
        }
        let view = View::mount(&self.images.store, c.image_top.as_deref())?;
        let image = rustix::fs::open(
            &view.dir,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| EngineError::internal("opening the image's view", e))?;
        let mut out = Vec::new();
        walk(&upper, &mut Vec::new(), &image, false, &mut out)
            .map_err(|e| EngineError::internal("reading the container's changes", e))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// Whether `path` (components below the root) exists in the image, without following its last
/// component.
fn in_image(image: &std::os::fd::OwnedFd, path: &[OsString]) -> bool {
    let rel: std::path::PathBuf = path.iter().collect();
    rustix::fs::openat2(
        image,
        &rel,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
    .is_ok()
}

fn display(path: &[OsString]) -> String {
    let mut s = String::new();
    for c in path {
        s.push('/');
        s.push_str(&c.to_string_lossy());
    }
    s
}

/// Adds the changes of the upper directory `dir` (at `path` in the container); `added`: the
/// directory itself is new, so all below it is. Returns whether anything below `dir` was listed.
fn walk(
    dir: &Path,
    path: &mut Vec<OsString>,
    image: &std::os::fd::OwnedFd,
    added: bool,
    out: &mut Vec<FilesystemChange>,
) -> std::io::Result<bool> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut listed = false;
    for entry in entries {
        path.push(entry.file_name());
        let shown = display(path);
        let kind = entry.file_type()?;
        let whiteout =
            kind.is_char_device() && std::os::unix::fs::MetadataExt::rdev(&entry.metadata()?) == 0;
        let mount_point = MOUNT_POINTS
            .iter()
            .any(|m| shown == *m || shown.starts_with(&format!("{m}/")));
        if whiteout {
            out.push(change(&shown, ChangeType::_2));
            listed = true;
        } else if !mount_point {
            let new = added || !in_image(image, path);
            let opaque = kind.is_dir() && xattr_is(&entry.path(), "trusted.overlay.opaque", b"y");
            let below = if kind.is_dir() {
                walk(&entry.path(), path, image, new || opaque, out)?
            } else {
                false
            };
            // A directory of the image is in the layer when something below it changed (or
            // its own metadata did): shown when something below it is.
            if new || !kind.is_dir() || below || opaque {
                let kind = if new { ChangeType::_1 } else { ChangeType::_0 };
                out.push(change(&shown, kind));
                listed = true;
            }
        }
        path.pop();
    }
    Ok(listed)
}

fn change(path: &str, kind: ChangeType) -> FilesystemChange {
    FilesystemChange {
        path: path.to_string(),
        kind,
    }
}

fn xattr_is(path: &Path, name: &str, value: &[u8]) -> bool {
    let mut buf = [0u8; 8];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => buf.get(..n) == Some(value),
        Err(_) => false,
    }
}
