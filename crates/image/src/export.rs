//! `export`: a container's filesystem as one tar (Docker's `docker export`), written from its
//! mounted root. Through an overlay mount whiteouts and opaque markers are invisible, so the
//! layer writer of `layer::diff_upper` gives exactly the merged tree.

use std::io::Write;
use std::path::Path;

use crate::digest::Digest;
use crate::layer::{self, LayerError};

/// Writes the tree at `root` (a mounted container root filesystem) as a tar into `out`;
/// returns the tar's digest.
pub fn export(root: &Path, out: impl Write) -> Result<Digest, LayerError> {
    layer::diff_upper(root, out)
}

/// [`export`], the owners written through `ids` (a remapped container's root, in host ids).
pub fn export_mapped(
    root: &Path,
    out: impl Write,
    ids: Option<&layer::IdMap>,
) -> Result<Digest, LayerError> {
    layer::diff_upper_mapped(root, out, ids)
}
