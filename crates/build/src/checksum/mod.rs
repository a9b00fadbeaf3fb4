//! Content checksums of COPY/ADD sources, for cache keys (BuildKit's `contenthash`, in spirit):
//! a sha256 over what the sources select, the same whenever a copy would give the same result.
//!
//! ```no_run
//! # fn f() -> Result<(), berth_build::checksum::ChecksumError> {
//! use berth_build::checksum::{checksum, HashMemo};
//! let mut memo = HashMemo::new();                      // kept by the caller between builds
//! let sum = checksum("/ctx".as_ref(), &["src/".into(), "*.toml".into()], &[], Some(&mut memo))?;
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
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::Stat;
use sha2::{Digest, Sha256};

use crate::fsops;
use crate::ignore::Matcher;
use crate::sources::{self, Node, SourceError};

pub use memo::{FileStamp, HashMemo};

/// Errors of [`checksum`].
#[derive(Debug, thiserror::Error)]
pub enum ChecksumError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("opening the source root {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: io::Error,
    },
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
/// `--exclude` patterns `excludes` match. With `memo`, unchanged files are not read again.
pub fn checksum(
    root: &Path,
    sources: &[String],
    excludes: &[String],
    mut memo: Option<&mut HashMemo>,
) -> Result<Checksum, ChecksumError> {
    let top = fsops::open_top(root).map_err(|source| ChecksumError::Root {
        path: root.display().to_string(),
        source,
    })?;
    let excludes = Matcher::new(excludes).map_err(SourceError::from)?;
    let matches = sources::resolve(top.as_fd(), sources, &excludes)?;
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
        sources::walk::<ChecksumError>(top.as_fd(), m, &excludes, &mut |node| {
            match node {
                Node::File { rel, file, stat } => {
                    entry(&mut hasher, b"file", rel, stat);
                    field(&mut hasher, &stat.st_size.to_le_bytes());
                    let digest = file_digest(file, stat, &mut out, memo.as_deref_mut()).map_err(
                        |source| ChecksumError::Read {
                            path: display_in(&m.components, rel),
                            source,
                        },
                    )?;
                    field(&mut hasher, &digest);
                    out.files += 1;
                }
                Node::Dir { rel, fd, stat } => {
                    entry(&mut hasher, b"dir", rel, stat);
                    let xattrs = fsops::read_xattrs(fd).map_err(|e| ChecksumError::Read {
                        path: display_in(&m.components, rel),
                        source: e.into(),
                    })?;
                    hash_xattrs(&mut hasher, &xattrs);
                }
                Node::DirEnd { .. } => field(&mut hasher, b"end"),
                Node::Symlink { rel, target, stat } => {
                    entry(&mut hasher, b"symlink", rel, stat);
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

fn entry(hasher: &mut Sha256, kind: &[u8], rel: &[std::ffi::OsString], stat: &Stat) {
    field(hasher, kind);
    field(hasher, &join(rel));
    field(hasher, &(stat.st_mode & 0o7777).to_le_bytes());
    field(hasher, &stat.st_uid.to_le_bytes());
    field(hasher, &stat.st_gid.to_le_bytes());
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

/// The sha256 of a file's content and xattrs, from the memo when it knows this version.
fn file_digest(
    mut file: std::fs::File,
    stat: &Stat,
    out: &mut Checksum,
    memo: Option<&mut HashMemo>,
) -> io::Result<Vec<u8>> {
    let stamp = FileStamp::of(stat);
    let xattrs = fsops::read_xattrs(file.as_fd())?;
    let mut combined = Sha256::new();
    hash_xattrs(&mut combined, &xattrs);
    let known = memo
        .as_deref()
        .and_then(|m| m.get(&stamp))
        .and_then(|d| hex::decode(d).ok());
    let content = match known {
        Some(digest) => {
            out.memo_hits += 1;
            digest
        }
        None => {
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
            if let Some(memo) = memo {
                memo.insert(stamp, hex::encode(&digest));
            }
            digest
        }
    };
    field(&mut combined, &content);
    Ok(combined.finalize().to_vec())
}

#[cfg(test)]
mod tests;
