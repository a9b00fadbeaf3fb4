//! COPY/ADD sources: patterns resolved inside a source root (the build context as received, or a
//! directory: another stage's root filesystem) and the trees below them walked, for
//! [`crate::checksum`] and [`crate::copy`] alike. Both kinds of root give the same matches and
//! the same walk: [`dir`] reads a directory through descriptors, [`tree`] the context's index
//! and spool.
//!
//! A source is cleaned as dockerd does (a leading `/` or `./` is dropped, `..` cannot climb
//! above the root). Without wildcards it names one path, which must exist; its symlinks are
//! followed inside the root. With wildcards (`*`, `?`, `[`), every path component is matched
//! with Go's `filepath.Match` against the directory's names, in sorted order; a pattern that
//! matches nothing adds nothing, and only when no source gives anything is it an error. Below a
//! matched directory nothing is followed: symlinks are symlinks.

mod content;
mod dir;
mod tree;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Stat, Timespec};
use rustix::io::Errno;

use crate::checksum::FileStamp;
use crate::context::ContextFiles;
use crate::fsops::{self, Components, Xattr};
use crate::glob::{self, GlobError};
use crate::ignore::{IgnoreError, Matcher};

pub(crate) use content::Content;

/// Errors of source resolution; the texts are dockerd's classic builder's (the caller prefixes
/// `COPY failed: `).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("file not found in build context or excluded by .dockerignore: stat {path}: file does not exist")]
    NotFound { path: String },
    #[error("no source files were specified")]
    NoSources,
    #[error("{pattern}: {source}")]
    BadPattern {
        pattern: String,
        #[source]
        source: GlobError,
    },
    #[error("invalid --exclude pattern: {0}")]
    Exclude(#[from] IgnoreError),
    #[error("opening the source root {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &[OsString]) -> impl Fn(Errno) -> SourceError + '_ {
    move |e| SourceError::Io {
        path: fsops::display(path),
        source: e.into(),
    }
}

/// Where COPY/ADD read from.
#[derive(Debug, Clone, Copy)]
pub enum SourceRoot<'a> {
    /// A directory: another stage's or an image's root filesystem, or an extracted context.
    Dir(&'a Path),
    /// The build context as `POST /build` received it.
    Context(&'a ContextFiles),
}

/// A source root ready to read.
pub(crate) enum Opened<'a> {
    Dir(OwnedFd),
    Context(&'a ContextFiles),
}

impl<'a> SourceRoot<'a> {
    pub(crate) fn open(self) -> Result<Opened<'a>, SourceError> {
        match self {
            SourceRoot::Dir(path) => {
                fsops::open_top(path)
                    .map(Opened::Dir)
                    .map_err(|source| SourceError::Root {
                        path: path.display().to_string(),
                        source,
                    })
            }
            SourceRoot::Context(files) => Ok(Opened::Context(files)),
        }
    }
}

impl Opened<'_> {
    /// Resolves `patterns`. Errors when a plain path is missing or when nothing at all was
    /// selected.
    pub(crate) fn resolve(
        &self,
        patterns: &[String],
        excludes: &Matcher,
    ) -> Result<Vec<SourceMatch>, SourceError> {
        match self {
            Opened::Dir(fd) => resolve(&dir::Lookup(fd.as_fd()), patterns, excludes),
            Opened::Context(files) => resolve(files.tree(), patterns, excludes),
        }
    }

    /// Walks the tree of `m` in sorted order. `--exclude` patterns (`excludes`) match paths
    /// relative to the matched directory. Sockets, FIFOs and devices are left out.
    pub(crate) fn walk<E: From<SourceError>>(
        &self,
        m: &SourceMatch,
        excludes: &Matcher,
        visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Opened::Dir(fd) => dir::walk(fd.as_fd(), m, excludes, visit),
            Opened::Context(files) => tree::walk(files, m, excludes, visit),
        }
    }
}

/// One path a source pattern selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceMatch {
    /// The path inside the root, as matched (a final symlink not resolved).
    pub components: Components,
    /// Whether a wildcard selected it (then `--exclude` applies to its name too).
    pub wildcard: bool,
    /// `--parents`: how many leading components the `/./` pivot drops (0 without one).
    pub pivot: usize,
}

/// What resolving patterns asks of a root. Symlinks resolve inside the root, as
/// `RESOLVE_IN_ROOT` has it.
pub(crate) trait Lookup {
    /// Whether `path` exists (a final symlink followed).
    fn exists(&self, path: &[OsString]) -> Result<bool, SourceError>;
    /// The names in the directory `path`, sorted; `None` when it is not a directory.
    fn list(&self, path: &[OsString]) -> Result<Option<Vec<OsString>>, SourceError>;
}

fn resolve(
    root: &dyn Lookup,
    patterns: &[String],
    excludes: &Matcher,
) -> Result<Vec<SourceMatch>, SourceError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let trimmed = pattern.strip_prefix('/').unwrap_or(pattern);
        let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
        let pivot = match trimmed.split_once("/./") {
            Some((before, _)) => fsops::components(before.as_bytes(), true).map_or(0, |c| c.len()),
            None => 0,
        };
        let components = fsops::components(trimmed.as_bytes(), true).unwrap_or_default();
        if !glob::has_meta(trimmed) {
            if !root.exists(&components)? {
                return Err(SourceError::NotFound {
                    path: trimmed.to_string(),
                });
            }
            out.push(SourceMatch {
                components,
                wildcard: false,
                pivot,
            });
            continue;
        }
        for found in expand(root, &components, pattern)? {
            let name = found.last().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| excludes.matches(&n)) {
                continue;
            }
            out.push(SourceMatch {
                components: found,
                wildcard: true,
                pivot,
            });
        }
    }
    if out.is_empty() {
        return Err(SourceError::NoSources);
    }
    Ok(out)
}

/// The existing paths that match `pattern`'s components, in sorted order.
fn expand(
    root: &dyn Lookup,
    pattern: &[OsString],
    original: &str,
) -> Result<Vec<Components>, SourceError> {
    let mut candidates: Vec<Components> = vec![Vec::new()];
    for part in pattern {
        let text = part.to_string_lossy();
        if !glob::has_meta(&text) {
            for c in &mut candidates {
                c.push(part.clone());
            }
            continue;
        }
        glob::validate(&text).map_err(|source| SourceError::BadPattern {
            pattern: original.to_string(),
            source,
        })?;
        let mut next = Vec::new();
        for c in &candidates {
            let Some(names) = root.list(c)? else {
                continue;
            };
            for name in names {
                if glob::matches(&text, &name.to_string_lossy()).unwrap_or(false) {
                    let mut found = c.clone();
                    found.push(name);
                    next.push(found);
                }
            }
        }
        candidates = next;
    }
    let mut out = Vec::new();
    for c in candidates {
        if root.exists(&c)? {
            out.push(c);
        }
    }
    Ok(out)
}

/// The metadata of a walked entry, whichever root it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Attrs {
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub owner: (u32, u32),
    pub mtime: Timespec,
    /// A regular file's size.
    pub size: u64,
    /// For an entry with more than one name in the root: the same key for every name.
    pub link: Option<(u64, u64)>,
    /// A file of a directory root: what the hash memo knows it by.
    pub stamp: Option<FileStamp>,
    /// Sorted by name (overlayfs' own left out).
    pub xattrs: Vec<Xattr>,
}

impl Attrs {
    pub(crate) fn of(st: &Stat, xattrs: Vec<Xattr>) -> Attrs {
        let regular = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
        #[allow(clippy::unnecessary_cast)]
        Attrs {
            mode: st.st_mode & 0o7777,
            owner: (st.st_uid, st.st_gid),
            mtime: Timespec {
                tv_sec: st.st_mtime as i64,
                tv_nsec: st.st_mtime_nsec as _,
            },
            size: u64::try_from(st.st_size).unwrap_or(0),
            link: (regular && st.st_nlink > 1).then_some((st.st_dev, st.st_ino)),
            stamp: regular.then(|| FileStamp::of(st)),
            xattrs,
        }
    }
}

/// What a walk shows its visitor. `rel` is the path below the source match (empty for the
/// match itself).
pub(crate) enum Node<'a> {
    /// A regular file, open for reading; `digest` is its content's sha256 when the root knows it.
    File {
        rel: &'a [OsString],
        content: Content<'a>,
        attrs: &'a Attrs,
        digest: Option<[u8; 32]>,
    },
    /// A directory, before its contents.
    Dir {
        rel: &'a [OsString],
        attrs: &'a Attrs,
    },
    /// The same directory, after its contents.
    DirEnd {
        rel: &'a [OsString],
        attrs: &'a Attrs,
    },
    /// A symlink below the match (the match itself is followed).
    Symlink {
        rel: &'a [OsString],
        target: Vec<u8>,
        attrs: &'a Attrs,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(root: &Path, patterns: &[&str]) -> Result<Vec<String>, SourceError> {
        let top = fsops::open_top(root).unwrap();
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        let found = resolve(&dir::Lookup(top.as_fd()), &patterns, &Matcher::default())?;
        Ok(found
            .iter()
            .map(|m| fsops::display(&m.components))
            .collect())
    }

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        fs::create_dir_all(r.join("src/a")).unwrap();
        fs::create_dir_all(r.join("src/b")).unwrap();
        fs::write(r.join("src/a/x.txt"), "x").unwrap();
        fs::write(r.join("src/b/y.txt"), "y").unwrap();
        fs::write(r.join("src/b/z.md"), "z").unwrap();
        fs::write(r.join("top.txt"), "t").unwrap();
        fs::write(r.join(".hidden.txt"), "h").unwrap();
        std::os::unix::fs::symlink("/", r.join("up")).unwrap();
        tmp
    }

    #[test]
    fn plain_paths_and_wildcards() {
        let t = tree();
        let r = t.path();
        assert_eq!(names(r, &["/src/a/x.txt"]).unwrap(), ["src/a/x.txt"]);
        assert_eq!(names(r, &["."]).unwrap(), [""]);
        assert_eq!(
            names(r, &["src/*/*.txt"]).unwrap(),
            ["src/a/x.txt", "src/b/y.txt"]
        );
        assert_eq!(names(r, &["*.txt"]).unwrap(), [".hidden.txt", "top.txt"]);
        assert_eq!(names(r, &["src/[ab]"]).unwrap(), ["src/a", "src/b"]);
        assert_eq!(names(r, &["nomatch*", "top.txt"]).unwrap(), ["top.txt"]);
    }

    #[test]
    fn errors_in_dockerd_words() {
        let t = tree();
        let r = t.path();
        assert_eq!(
            names(r, &["/missing"]).unwrap_err().to_string(),
            "file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
        );
        assert_eq!(
            names(r, &["nomatch*"]).unwrap_err().to_string(),
            "no source files were specified"
        );
        assert!(matches!(
            names(r, &["src/[a"]),
            Err(SourceError::BadPattern { .. })
        ));
    }

    #[test]
    fn resolution_never_leaves_the_root() {
        let t = tree();
        let r = t.path();
        // `up -> /` is the root itself; `../` clamps at the root.
        assert_eq!(names(r, &["up/top.txt"]).unwrap(), ["up/top.txt"]);
        assert!(matches!(
            names(r, &["up/etc/passwd"]),
            Err(SourceError::NotFound { .. })
        ));
        assert!(matches!(
            names(r, &["../../../../etc/passwd"]),
            Err(SourceError::NotFound { .. })
        ));
        assert!(matches!(
            names(r, &["up/etc/pass*"]),
            Err(SourceError::NoSources)
        ));
    }

    #[test]
    fn wildcard_matches_honour_excludes() {
        let t = tree();
        let top = fsops::open_top(t.path()).unwrap();
        let excludes = Matcher::new(["y.txt"]).unwrap();
        let found = resolve(
            &dir::Lookup(top.as_fd()),
            &["src/*/*.txt".to_string()],
            &excludes,
        )
        .unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|m| fsops::display(&m.components))
            .collect();
        assert_eq!(names, ["src/a/x.txt"]);
    }

    #[test]
    fn parents_pivot() {
        let t = tree();
        let top = fsops::open_top(t.path()).unwrap();
        let found = resolve(
            &dir::Lookup(top.as_fd()),
            &["./src/./a/x.txt".to_string()],
            &Matcher::default(),
        )
        .unwrap();
        assert_eq!(found[0].pivot, 1);
        assert_eq!(fsops::display(&found[0].components), "src/a/x.txt");
    }
}
