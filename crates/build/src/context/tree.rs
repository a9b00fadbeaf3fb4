//! The context's index: every entry of the tar in memory (names, metadata, link targets), with
//! each regular file's content at an offset of the spool file and its sha256, both written and
//! computed as the tar streams in. Nothing is created on disk per entry: a build whose COPY
//! steps all hit the cache never writes the context's files out.
//!
//! Entries go in as [`crate::unpack`] would write them into an empty directory, with the same
//! refusals: a name climbing out with `..`, a symlink or a file on an entry's path, a hardlink
//! to anything but an earlier non-directory entry. A later entry replaces an earlier one, but a
//! directory stays a directory. Parents the tar does not list are directories 0755, root's.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::fs::Timespec;
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::fsops::{self, Components};
use crate::ignore::Matcher;
use crate::sources::{Lookup, SourceError};
use crate::unpack::{self, Meta, UnpackError, UnpackStats};

/// Index of the root directory.
pub(crate) const ROOT: usize = 0;

/// The most entries a context may hold: the index is in memory (about 200 bytes an entry).
pub const MAX_CONTEXT_ENTRIES: usize = 1_000_000;

/// How many symlinks one lookup follows at most (Linux's `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// What an entry is.
#[derive(Debug)]
pub(crate) enum Body {
    Dir(BTreeMap<OsString, usize>),
    File {
        offset: u64,
        size: u64,
        digest: [u8; 32],
    },
    Symlink(Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct Inode {
    pub(crate) meta: Meta,
    pub(crate) body: Body,
    /// How many names it has (more than one: hardlinks).
    pub(crate) links: u32,
}

/// The index.
#[derive(Debug)]
pub(crate) struct Tree {
    inodes: Vec<Inode>,
}

/// Appends file contents to the spool, hashing them.
pub(crate) struct SpoolWriter<W> {
    out: W,
    len: u64,
    buf: Vec<u8>,
}

impl<W: Write> SpoolWriter<W> {
    pub(crate) fn new(out: W) -> SpoolWriter<W> {
        SpoolWriter {
            out,
            len: 0,
            buf: vec![0; 256 << 10],
        }
    }

    /// Copies `reader` to the end of the spool: its offset, size and sha256. A failure to
    /// read is the archive's ([`UnpackError::Read`]), one to write the spool's (a full disk).
    fn append(
        &mut self,
        reader: &mut impl Read,
        name: &str,
    ) -> Result<(u64, u64, [u8; 32]), UnpackError> {
        let offset = self.len;
        let mut hasher = Sha256::new();
        loop {
            let n = match reader.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Read(e)),
            };
            let chunk = &self.buf[..n];
            hasher.update(chunk);
            self.out
                .write_all(chunk)
                .map_err(|source| UnpackError::Io {
                    entry: name.to_string(),
                    what: "writing the context's spool",
                    source,
                })?;
            self.len += n as u64;
        }
        Ok((offset, self.len - offset, hasher.finalize().into()))
    }

    pub(crate) fn into_inner(self) -> W {
        self.out
    }
}

impl Tree {
    pub(crate) fn new(now: Timespec) -> Tree {
        Tree {
            inodes: vec![Inode {
                meta: implicit_dir(now),
                body: Body::Dir(BTreeMap::new()),
                links: 1,
            }],
        }
    }

    pub(crate) fn inode(&self, id: usize) -> Option<&Inode> {
        self.inodes.get(id)
    }

    fn children(&self, id: usize) -> Option<&BTreeMap<OsString, usize>> {
        match self.inodes.get(id).map(|i| &i.body) {
            Some(Body::Dir(c)) => Some(c),
            _ => None,
        }
    }

    fn children_mut(&mut self, id: usize) -> Option<&mut BTreeMap<OsString, usize>> {
        match self.inodes.get_mut(id).map(|i| &mut i.body) {
            Some(Body::Dir(c)) => Some(c),
            _ => None,
        }
    }

    fn is_dir(&self, id: usize) -> bool {
        self.children(id).is_some()
    }

    fn push(&mut self, meta: Meta, body: Body) -> usize {
        self.inodes.push(Inode {
            meta,
            body,
            links: 0,
        });
        self.inodes.len() - 1
    }

    fn link(&mut self, parent: usize, name: &OsString, id: usize) {
        if let Some(children) = self.children_mut(parent) {
            children.insert(name.clone(), id);
        }
        if let Some(inode) = self.inodes.get_mut(id) {
            inode.links += 1;
        }
    }

    fn unlink(&mut self, parent: usize, name: &OsString) {
        let gone = self.children_mut(parent).and_then(|c| c.remove(name));
        if let Some(inode) = gone.and_then(|id| self.inodes.get_mut(id)) {
            inode.links = inode.links.saturating_sub(1);
        }
    }

    /// The directory `path` below the root, missing ones created; `None` when a component is not
    /// a directory (symlinks are not followed).
    fn make_dirs(&mut self, path: &[OsString], now: Timespec) -> Option<usize> {
        let mut current = ROOT;
        for name in path {
            current = match self.children(current)?.get(name) {
                Some(&child) => {
                    if !self.is_dir(child) {
                        return None;
                    }
                    child
                }
                None => {
                    let id = self.push(implicit_dir(now), Body::Dir(BTreeMap::new()));
                    self.link(current, name, id);
                    id
                }
            };
        }
        Some(current)
    }

    /// Adds one tar entry (its content to `spool`).
    pub(crate) fn add<R: Read, W: Write>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        spool: &mut SpoolWriter<W>,
        stats: &mut UnpackStats,
        now: Timespec,
    ) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if !unpack::is_written(kind, stats) {
            return Ok(());
        }
        let components = fsops::components(&raw, false).ok_or_else(|| UnpackError::Escape {
            entry: name.clone(),
        })?;
        let Some((base, parents)) = components.split_last() else {
            return Ok(());
        };
        if self.inodes.len() >= MAX_CONTEXT_ENTRIES {
            return Err(UnpackError::InvalidEntry {
                entry: name,
                what: format!("the build context has more than {MAX_CONTEXT_ENTRIES} entries"),
            });
        }
        let mut meta = unpack::read_meta(entry, &name)?;
        meta.xattrs
            .retain(|(k, _)| !fsops::is_overlay_xattr(k.as_bytes()));
        meta.xattrs.sort();
        let Some(parent) = self.make_dirs(parents, now) else {
            return Err(UnpackError::NotADirectory { entry: name });
        };
        let existing = self.children(parent).and_then(|c| c.get(base)).copied();
        let keep_dir = match existing {
            Some(id) if kind.is_dir() && self.is_dir(id) => Some(id),
            Some(_) => {
                self.unlink(parent, base);
                None
            }
            None => None,
        };
        stats.entries += 1;
        match kind {
            EntryType::Directory => match keep_dir {
                Some(id) => {
                    if let Some(inode) = self.inodes.get_mut(id) {
                        let mut xattrs = std::mem::take(&mut inode.meta.xattrs);
                        for (k, v) in meta.xattrs.drain(..) {
                            xattrs.retain(|(old, _)| *old != k);
                            xattrs.push((k, v));
                        }
                        xattrs.sort();
                        meta.xattrs = xattrs;
                        inode.meta = meta;
                    }
                }
                None => {
                    let id = self.push(meta, Body::Dir(BTreeMap::new()));
                    self.link(parent, base, id);
                }
            },
            EntryType::Symlink => {
                let target = unpack::link_name(entry, &name)?;
                let id = self.push(meta, Body::Symlink(target));
                self.link(parent, base, id);
            }
            EntryType::Link => {
                let target = unpack::link_name(entry, &name)?;
                let id = self.hardlink_target(&target).ok_or(UnpackError::Hardlink {
                    entry: name,
                    target: String::from_utf8_lossy(&target).into_owned(),
                })?;
                self.link(parent, base, id);
            }
            _ => {
                let expected = entry.size();
                let (offset, size, digest) = spool.append(entry, &name)?;
                if size != expected {
                    return Err(UnpackError::InvalidEntry {
                        entry: name,
                        what: format!("truncated: {size} of {expected} bytes"),
                    });
                }
                stats.bytes += size;
                let id = self.push(
                    meta,
                    Body::File {
                        offset,
                        size,
                        digest,
                    },
                );
                self.link(parent, base, id);
            }
        }
        Ok(())
    }

    /// The earlier entry a hardlink names: inside the root, no symlink on its path, not a
    /// directory (a symlink is linked itself).
    fn hardlink_target(&self, target: &[u8]) -> Option<usize> {
        let components = fsops::components(target, false)?;
        let (base, parents) = components.split_last()?;
        let mut dir = ROOT;
        for name in parents {
            dir = *self.children(dir)?.get(name)?;
        }
        let id = *self.children(dir)?.get(base)?;
        (!self.is_dir(id)).then_some(id)
    }

    /// The entry `path` names, symlinks followed inside the root (the last one too when
    /// `follow_last`), as `openat2(RESOLVE_IN_ROOT)` resolves: an absolute target starts again
    /// at the root, `..` stops there.
    pub(crate) fn lookup(&self, path: &[OsString], follow_last: bool) -> Result<usize, Errno> {
        let mut dirs = vec![ROOT];
        let mut current = ROOT;
        let mut queue: VecDeque<OsString> = path.iter().cloned().collect();
        let mut hops = 0;
        while let Some(name) = queue.pop_front() {
            let Some(children) = self.children(current) else {
                return Err(Errno::NOTDIR);
            };
            match name.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    if dirs.len() > 1 {
                        dirs.pop();
                    }
                    current = *dirs.last().unwrap_or(&ROOT);
                    continue;
                }
                _ => {}
            }
            let child = *children.get(&name).ok_or(Errno::NOENT)?;
            if let Some(Body::Symlink(target)) = self.inodes.get(child).map(|i| &i.body) {
                if follow_last || !queue.is_empty() {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(Errno::LOOP);
                    }
                    if target.starts_with(b"/") {
                        dirs.truncate(1);
                    }
                    current = *dirs.last().unwrap_or(&ROOT);
                    for part in target.split(|b| *b == b'/').rev() {
                        queue.push_front(OsString::from_vec(part.to_vec()));
                    }
                    continue;
                }
            }
            if self.is_dir(child) {
                dirs.push(child);
            }
            current = child;
        }
        Ok(current)
    }

    /// Removes every path `ignore` matches, as [`super::prune`] does on disk: a directory that
    /// is ignored but may hold re-included paths is kept and searched. Returns how many paths
    /// were removed.
    pub(crate) fn remove_ignored(&mut self, ignore: &Matcher) -> u64 {
        if ignore.patterns().is_empty() {
            return 0;
        }
        let mut removed = 0;
        let mut prefix = Vec::new();
        self.prune(ROOT, &mut prefix, ignore, &mut removed);
        removed
    }

    fn prune(&mut self, dir: usize, prefix: &mut Components, ignore: &Matcher, removed: &mut u64) {
        let entries: Vec<(OsString, usize)> = match self.children(dir) {
            Some(c) => c.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            None => return,
        };
        for (name, id) in entries {
            prefix.push(name.clone());
            let rel = fsops::display(prefix);
            if self.is_dir(id) {
                if ignore.can_skip_dir(&rel) {
                    self.unlink(dir, &name);
                    *removed += 1;
                } else {
                    self.prune(id, prefix, ignore, removed);
                }
            } else if ignore.matches(&rel) {
                self.unlink(dir, &name);
                *removed += 1;
            }
            prefix.pop();
        }
    }

    /// The names in directory `id`, sorted.
    pub(crate) fn names(&self, id: usize) -> Option<impl Iterator<Item = (&OsString, usize)>> {
        self.children(id).map(|c| c.iter().map(|(k, v)| (k, *v)))
    }
}

impl Lookup for Tree {
    fn exists(&self, path: &[OsString]) -> Result<bool, SourceError> {
        match self.lookup(path, true) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(false),
            Err(e) => Err(SourceError::Io {
                path: fsops::display(path),
                source: e.into(),
            }),
        }
    }

    fn list(&self, path: &[OsString]) -> Result<Option<Vec<OsString>>, SourceError> {
        let Ok(id) = self.lookup(path, true) else {
            return Ok(None);
        };
        Ok(self
            .children(id)
            .map(|c| c.keys().cloned().collect::<Vec<_>>()))
    }
}

fn implicit_dir(now: Timespec) -> Meta {
    Meta {
        owner: (0, 0),
        mode: 0o755,
        mtime: now,
        xattrs: Vec::new(),
    }
}
