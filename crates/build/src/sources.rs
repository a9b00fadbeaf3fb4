//! COPY/ADD sources: patterns resolved inside a source root (the build context or another
//! stage's root filesystem) and the trees below them walked, for [`crate::checksum`] and
//! [`crate::copy`] alike.
//!
//! A source is cleaned as dockerd does (a leading `/` or `./` is dropped, `..` cannot climb
//! above the root). Without wildcards it names one path, which must exist; its symlinks are
//! followed inside the root. With wildcards (`*`, `?`, `[`), every path component is matched
//! with Go's `filepath.Match` against the directory's names, in sorted order; a pattern that
//! matches nothing adds nothing, and only when no source gives anything is it an error. Below a
//! matched directory nothing is followed: symlinks are symlinks.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::fsops::{self, Components, Resolve};
use crate::glob::{self, GlobError};
use crate::ignore::{IgnoreError, Matcher};

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

/// Resolves `patterns` inside `root`. Errors when a plain path is missing or when nothing at
/// all was selected.
pub(crate) fn resolve(
    root: BorrowedFd<'_>,
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
            match fsops::open_at(
                root,
                &fsops::to_path(&components),
                OFlags::PATH,
                Resolve::InRoot,
            ) {
                Ok(_) => out.push(SourceMatch {
                    components,
                    wildcard: false,
                    pivot,
                }),
                Err(Errno::NOENT | Errno::NOTDIR) => {
                    return Err(SourceError::NotFound {
                        path: trimmed.to_string(),
                    })
                }
                Err(e) => return Err(io_error(&components)(e)),
            }
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
    root: BorrowedFd<'_>,
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
            let Ok(dir) = fsops::open_dir(root, c, Resolve::InRoot) else {
                continue;
            };
            for name in fsops::list_dir(dir.as_fd()).map_err(io_error(c))? {
                if glob::matches(&text, &name.to_string_lossy()).unwrap_or(false) {
                    let mut found = c.clone();
                    found.push(name);
                    next.push(found);
                }
            }
        }
        candidates = next;
    }
    candidates.retain(|c| {
        fsops::open_at(root, &fsops::to_path(c), OFlags::PATH, Resolve::InRoot).is_ok()
    });
    Ok(candidates)
}

/// What a walk shows its visitor. `rel` is the path below the source match (empty for the
/// match itself).
pub(crate) enum Node<'a> {
    /// A regular file, open for reading.
    File {
        rel: &'a [OsString],
        file: File,
        stat: &'a Stat,
    },
    /// A directory, before its contents.
    Dir {
        rel: &'a [OsString],
        fd: BorrowedFd<'a>,
        stat: &'a Stat,
    },
    /// The same directory, after its contents.
    DirEnd { rel: &'a [OsString], stat: &'a Stat },
    /// A symlink below the match (the match itself is followed).
    Symlink {
        rel: &'a [OsString],
        target: Vec<u8>,
        stat: &'a Stat,
    },
}

/// Walks the tree of `m` in sorted order. `--exclude` patterns (`excludes`) match paths relative
/// to the matched directory. Sockets, FIFOs and devices are left out.
pub(crate) fn walk<E: From<SourceError>>(
    root: BorrowedFd<'_>,
    m: &SourceMatch,
    excludes: &Matcher,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let top = fsops::open_at(
        root,
        &fsops::to_path(&m.components),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        Resolve::InRoot,
    )
    .map_err(io_error(&m.components))?;
    let stat = rustix::fs::fstat(&top).map_err(io_error(&m.components))?;
    let mut rel = Vec::new();
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => walk_dir(top.as_fd(), &stat, &mut rel, excludes, visit),
        FileType::RegularFile => visit(Node::File {
            rel: &rel,
            file: File::from(top),
            stat: &stat,
        }),
        _ => Ok(()),
    }
}

fn walk_dir<E: From<SourceError>>(
    dir: BorrowedFd<'_>,
    stat: &Stat,
    rel: &mut Components,
    excludes: &Matcher,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    visit(Node::Dir { rel, fd: dir, stat })?;
    for name in fsops::list_dir(dir).map_err(io_error(rel))? {
        rel.push(name.clone());
        let path = fsops::display(rel);
        let child_stat = rustix::fs::statat(dir, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_error(rel))?;
        let kind = FileType::from_raw_mode(child_stat.st_mode);
        let excluded = excludes.matches(&path);
        match kind {
            FileType::Directory if !(excluded && excludes.can_skip_dir(&path)) => {
                let sub = open_child(dir, &name, OFlags::DIRECTORY).map_err(io_error(rel))?;
                walk_dir(sub.as_fd(), &child_stat, rel, excludes, visit)?;
            }
            _ if excluded => {}
            FileType::RegularFile => {
                let fd = open_child(dir, &name, OFlags::empty()).map_err(io_error(rel))?;
                visit(Node::File {
                    rel,
                    file: File::from(fd),
                    stat: &child_stat,
                })?;
            }
            FileType::Symlink => {
                let target =
                    rustix::fs::readlinkat(dir, &name, Vec::new()).map_err(io_error(rel))?;
                visit(Node::Symlink {
                    rel,
                    target: target.into_bytes(),
                    stat: &child_stat,
                })?;
            }
            _ => {}
        }
        rel.pop();
    }
    visit(Node::DirEnd { rel, stat })
}

fn open_child(dir: BorrowedFd<'_>, name: &OsString, extra: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        Path::new(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | extra,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names(root: &Path, patterns: &[&str]) -> Result<Vec<String>, SourceError> {
        let top = fsops::open_top(root).unwrap();
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        let found = resolve(top.as_fd(), &patterns, &Matcher::default())?;
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
        let found = resolve(top.as_fd(), &["src/*/*.txt".to_string()], &excludes).unwrap();
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
            top.as_fd(),
            &["./src/./a/x.txt".to_string()],
            &Matcher::default(),
        )
        .unwrap();
        assert_eq!(found[0].pivot, 1);
        assert_eq!(fsops::display(&found[0].components), "src/a/x.txt");
    }
}
