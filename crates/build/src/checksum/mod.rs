//! Content checksums of COPY/ADD sources, for cache keys (BuildKit's `contenthash`, in spirit):
//! a sha256 over what the sources select, the same whenever a copy would give the same result.
//!
//! ```no_run
//! # fn f() -> Result<(), berth_build::checksum::ChecksumError> {
//! use berth_build::checksum::{checksum, HashMemo};
//! let mut memo = HashMemo::new();                      // kept by the caller between builds
//! let root = berth_build::sources::SourceRoot::Dir("/ctx".as_ref());
//! let sum = checksum(root, &["src/".into(), "*.toml".into()], &[], Some(&mut memo))?;
//! println!("{}", sum.digest);                          // sha256:…
//! # Ok(()) }
//! ```
//!
//! Sources resolve as [`crate::sources`] says (and fail with the same errors). For each match,
//! in order, the digest takes its path in the root, then every entry of its tree in sorted order:
//! its kind, path below the match, permission bits, owner, and then a file's size, content sha256
//! and xattrs, a directory's xattrs, a symlink's target. Times are left out: touching a file does
//! not change its checksum. Every field is length-prefixed, so no two trees hash alike by
//! shifting bytes between fields.

mod memo;

use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;

use sha2::{Digest, Sha256};

use crate::fsops;
use crate::ignore::Matcher;
use crate::sources::{Attrs, Content, Node, SourceError, SourceRoot};

pub use memo::{FileStamp, HashMemo};

/// Errors of [`checksum`].
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A checksum and what computing it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// `sha256:` and 64 hex digits.
    pub digest: String,
    /// Regular files covered.
    pub files: u64,
    /// Bytes read and hashed (files whose digest the memo knew are not read).
    pub bytes_hashed: u64,
    /// Files whose digest came from the memo.
    pub memo_hits: u64,
}

/// The checksum of `sources` (patterns, already expanded) inside `root`, leaving out what the
/// `--exclude` patterns `excludes` match. With `memo`, unchanged files of a directory are not
/// read again; a received context's files are never read (the index knows their digests).
pub fn checksum(
    root: SourceRoot<'_>,
    sources: &[String],
    excludes: &[String],
    mut memo: Option<&mut HashMemo>,
) -> Result<Checksum, ChecksumError> {
    let top = root.open()?;
    let excludes = Matcher::new(excludes).map_err(SourceError::from)?;
    let matches = top.resolve(sources, &excludes)?;
    let mut hasher = Sha256::new();
    let mut out = Checksum {
        digest: String::new(),
        files: 0,
        bytes_hashed: 0,
        memo_hits: 0,
    };
    for m in &matches {
        field(&mut hasher, b"match");
        field(&mut hasher, &join(&m.components));
        top.walk::<ChecksumError>(m, &excludes, &mut |node| {
            match node {
                Node::File {
                    rel,
                    content,
                    attrs,
                    digest,
                } => {
                    entry(&mut hasher, b"file", rel, attrs);
                    // (as a signed number, as it always was: cache keys stay the same)
                    field(&mut hasher, &(attrs.size as i64).to_le_bytes());
                    let digest = file_digest(content, attrs, digest, &mut out, memo.as_deref_mut())
                        .map_err(|source| ChecksumError::Read {
                            path: display_in(&m.components, rel),
                            source,
                        })?;
                    field(&mut hasher, &digest);
                    out.files += 1;
                }
                Node::Dir { rel, attrs } => {
                    entry(&mut hasher, b"dir", rel, attrs);
                    hash_xattrs(&mut hasher, &attrs.xattrs);
                }
                Node::DirEnd { .. } => field(&mut hasher, b"end"),
                Node::Symlink { rel, target, attrs } => {
                    entry(&mut hasher, b"symlink", rel, attrs);
                    field(&mut hasher, &target);
                }
            }
            Ok(())
        })?;
    }
    out.digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    Ok(out)
}

/// A length-prefixed field.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn entry(hasher: &mut Sha256, kind: &[u8], rel: &[std::ffi::OsString], attrs: &Attrs) {
    field(hasher, kind);
    field(hasher, &join(rel));
    field(hasher, &attrs.mode.to_le_bytes());
    field(hasher, &attrs.owner.0.to_le_bytes());
    field(hasher, &attrs.owner.1.to_le_bytes());
}

fn hash_xattrs(hasher: &mut Sha256, xattrs: &[fsops::Xattr]) {
    field(hasher, &(xattrs.len() as u64).to_le_bytes());
    for (name, value) in xattrs {
        field(hasher, name.as_bytes());
        field(hasher, value);
    }
}

/// The raw bytes of a path, components joined with `/`.
fn join(components: &[std::ffi::OsString]) -> Vec<u8> {
    let parts: Vec<&[u8]> = components.iter().map(|c| c.as_bytes()).collect();
    parts.join(&b'/')
}

fn display_in(base: &[std::ffi::OsString], rel: &[std::ffi::OsString]) -> String {
    let mut all = base.to_vec();
    all.extend_from_slice(rel);
    fsops::display(&all)
}

/// The sha256 of a file's content and xattrs: the content's digest as the root knows it, else
/// from the memo when it knows this version, else read.
fn file_digest(
    mut file: Content<'_>,
    attrs: &Attrs,
    known: Option<[u8; 32]>,
    out: &mut Checksum,
    memo: Option<&mut HashMemo>,
) -> io::Result<Vec<u8>> {
    let mut combined = Sha256::new();
    hash_xattrs(&mut combined, &attrs.xattrs);
    let memo = memo.filter(|_| known.is_none());
    let remembered = match (&memo, attrs.stamp) {
        (Some(m), Some(stamp)) => m.get(&stamp).and_then(|d| hex::decode(d).ok()),
        _ => None,
    };
    let content = match (known, remembered) {
        (Some(digest), _) => digest.to_vec(),
        (None, Some(digest)) => {
            out.memo_hits += 1;
            digest
        }
        (None, None) => {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&buf[..n]);
                out.bytes_hashed += n as u64;
            }
            let digest = hasher.finalize().to_vec();
            if let (Some(memo), Some(stamp)) = (memo, attrs.stamp) {
                memo.insert(stamp, hex::encode(&digest));
            }
            digest
        }
    };
    field(&mut combined, &content);
    Ok(combined.finalize().to_vec())
}

#[cfg(test)]
pub(crate) mod tests;
