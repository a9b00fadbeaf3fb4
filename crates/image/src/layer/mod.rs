//! Layers: OCI/Docker layer tars applied into snapshot directories, and the changes of an
//! overlay upper directory written back as a layer tar.
//!
//! A snapshot directory holds a layer in the form overlayfs reads: a deleted path (the tar's
//! `.wh.NAME` entry) is a 0/0 character device named `NAME`, and a directory whose lower contents
//! are hidden (`.wh..wh..opq`) carries the xattr `trusted.overlay.opaque=y`. [`apply`] turns a tar
//! into that form, [`diff_upper`] turns it back.
//!
//! Applying is the place where an image attacks the host, so every entry is created relative to a
//! descriptor of the layer directory: entry paths are normalised lexically and rejected if `..`
//! leads above the root (`paths`), parent directories are opened one component at a time with
//! `O_NOFOLLOW`, so a symlink written by the layer is never followed, and hardlink targets must lie
//! inside the layer.

mod apply;
mod compression;
mod diff;
mod paths;

use std::io;

pub use apply::{apply, apply_with, Whiteouts};
pub use compression::{decompress, detect, Compression};
pub use diff::{diff_upper, diff_upper_mapped, IdMap};

use crate::digest::Digest;

/// The name of the xattr overlayfs reads to make a directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The tar name prefix of a whiteout.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The tar name of an opaque-directory marker.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What [`apply`] found in a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The sha256 of the uncompressed tar: the image config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    /// The size of the uncompressed tar, in bytes.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer entry {entry:?} escapes the layer directory: `..` leads above its root")]
    PathEscape { entry: String },
    #[error(
        "layer entry {entry:?} goes through the symlink {symlink:?}; \
         symlinks are never followed while applying a layer"
    )]
    SymlinkInPath { entry: String, symlink: String },
    #[error("layer entry {entry:?} goes through {component:?}, which is not a directory")]
    NotADirectory { entry: String, component: String },
    #[error("hardlink {entry:?} points to {target:?}, outside the layer directory")]
    HardlinkEscape { entry: String, target: String },
    #[error("invalid whiteout entry {entry:?}")]
    InvalidWhiteout { entry: String },
    #[error("layer entry {entry:?} has an unsupported type ({kind})")]
    Unsupported { entry: String, kind: String },
    #[error("layer entry {entry:?}: {what}")]
    InvalidEntry { entry: String, what: String },
    #[error("layer entry {entry:?} is truncated: {got} of {expected} bytes")]
    Truncated {
        entry: String,
        expected: u64,
        got: u64,
    },
    #[error("reading the layer tar: {0}")]
    Read(#[source] io::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// An error-mapping closure that adds `context` to an I/O error (std, rustix or nix).
pub(crate) fn io_err<E: Into<io::Error>>(
    context: impl Into<String>,
) -> impl FnOnce(E) -> LayerError {
    let context = context.into();
    move |e| LayerError::Io {
        context,
        source: e.into(),
    }
}
