//! The archive endpoints of `docker cp`: a path's stat (Docker's `X-Docker-Container-Path-Stat`),
//! a tar of a path, and a tar extracted into a directory. Paths are resolved inside the
//! container's root with `openat2(RESOLVE_IN_ROOT)`; below the resolved path, the tree is walked
//! with descriptors and `O_NOFOLLOW`, and extraction goes through `berth_image::layer::apply`,
//! which never follows a symlink.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_image::inside::open_in_root;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::Serialize;

use super::Rootfs;
use crate::error::{EngineError, Result};

/// What `HEAD /containers/{id}/archive` tells of a path (Docker's `PathStat`).
#[derive(Debug, Clone, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// A Go `os.FileMode`: permission bits plus Go's type and special bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The base64 of the JSON, as the header carries it.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }
}

/// How `PUT /containers/{id}/archive` extracts.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Keep the tar's owners (else everything belongs to root, as dockerd does).
    pub copy_uid_gid: bool,
}

/// `/proc/self/fd/N`: a path that reaches the open directory `fd`.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Go's `os.FileMode` bits.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_DEVICE: u32 = 1 << 26;
const GO_NAMED_PIPE: u32 = 1 << 25;
const GO_SOCKET: u32 = 1 << 24;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_CHAR_DEVICE: u32 = 1 << 21;
const GO_STICKY: u32 = 1 << 20;

/// A Unix `st_mode` as Go's `os.FileMode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => mode |= GO_DIR,
        libc::S_IFLNK => mode |= GO_SYMLINK,
        libc::S_IFBLK => mode |= GO_DEVICE,
        libc::S_IFCHR => mode |= GO_DEVICE | GO_CHAR_DEVICE,
        libc::S_IFIFO => mode |= GO_NAMED_PIPE,
        libc::S_IFSOCK => mode |= GO_SOCKET,
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        mode |= GO_SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= GO_SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= GO_STICKY;
    }
    mode
}

/// A path of the container split for lookup: the directory part (resolved, following
/// symlinks inside the root) and the last component (not followed), or `None` for a path that
/// names a directory as such (`/`, `/a/`, `/a/.`), which is resolved whole.
struct Split {
    dir: PathBuf,
    base: Option<OsString>,
    /// Docker's name of the path in a tar: the last component as written (`.` for `/a/.`).
    tar_name: OsString,
}

fn split(path: &str) -> Split {
    let rel = path.trim_start_matches('/');
    let follows = rel.is_empty() || rel.ends_with('/') || rel.ends_with("/.") || rel == ".";
    let trimmed = rel.trim_end_matches('/');
    let last = Path::new(trimmed)
        .file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| ".".into());
    let tar_name = if trimmed.ends_with("/.") || trimmed == "." {
        OsString::from(".")
    } else {
        last.clone()
    };
    if follows {
        return Split {
            dir: PathBuf::from(if trimmed.is_empty() { "." } else { trimmed }),
            base: None,
            tar_name,
        };
    }
    let dir = Path::new(trimmed)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Split {
        dir,
        base: Some(last),
        tar_name,
    }
}

/// A path found in the container: its parent directory and name (`None`: the directory itself).
struct Found {
    parent: OwnedFd,
    base: Option<OsString>,
    stat: rustix::fs::Stat,
    tar_name: OsString,
}

impl Rootfs {
    pub(super) fn not_found(&self, path: &str) -> EngineError {
        EngineError::NotFound(format!(
            "Could not find the file {path} in container {}",
            self.key
        ))
    }

    fn find(&self, path: &str) -> Result<Found> {
        let s = split(path);
        let map = |e: Errno| {
            if e == Errno::NOENT || e == Errno::NOTDIR {
                self.not_found(path)
            } else {
                EngineError::internal(&format!("stat {path}"), e)
            }
        };
        let parent =
            open_in_root(self.root(), &s.dir, OFlags::RDONLY | OFlags::DIRECTORY).map_err(map)?;
        let stat = match &s.base {
            Some(base) => rustix::fs::statat(&parent, base.as_os_str(), AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::fstat(&parent),
        }
        .map_err(map)?;
        Ok(Found {
            parent,
            base: s.base,
            stat,
            tar_name: s.tar_name,
        })
    }

    /// `HEAD /containers/{id}/archive?path=`: the path's stat (a symlink's own, with its
    /// resolved target inside the container).
    pub fn stat(&self, path: &str) -> Result<PathStat> {
        let found = self.find(path)?;
        let st = &found.stat;
        let mut link_target = String::new();
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            // The target, resolved inside the root, as a path of the container.
            if let Ok(fd) = open_in_root(
                self.root(),
                Path::new(path.trim_start_matches('/')),
                OFlags::PATH,
            ) {
                if let (Ok(target), Ok(root)) = (
                    std::fs::read_link(fd_path(fd.as_fd())),
                    std::fs::read_link(fd_path(self.root())),
                ) {
                    if let Ok(rel) = target.strip_prefix(&root) {
                        link_target = format!("/{}", rel.display());
                    }
                }
            }
            if link_target.is_empty() {
                if let Some(base) = &found.base {
                    link_target =
                        rustix::fs::readlinkat(&found.parent, base.as_os_str(), Vec::new())
                            .map(|t| t.to_string_lossy().into_owned())
                            .unwrap_or_default();
                }
            }
        }
        let name = match &found.base {
            Some(b) => b.to_string_lossy().into_owned(),
            None => {
                let trimmed = path.trim_end_matches('/');
                if trimmed.is_empty() {
                    "/".to_string()
                } else {
                    found.tar_name.to_string_lossy().into_owned()
                }
            }
        };
        Ok(PathStat {
            name,
            size: st.st_size,
            mode: go_file_mode(st.st_mode),
            mtime: rfc3339_nanos(st.st_mtime, st.st_mtime_nsec as i64),
            link_target,
        })
    }

    /// `GET /containers/{id}/archive?path=`: checks the path (for a 404 before any byte is
    /// sent) and returns its stat; [`Rootfs::write_tar`] then writes the tar.
    pub fn write_tar(&self, path: &str, out: impl Write) -> Result<()> {
        let found = self.find(path)?;
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        let mut w = TarWalk {
            ids: self
                .engine
                .remap_of(&self.container)
                .map(crate::userns::Remap::to_container),
            builder,
            links: std::collections::HashMap::new(),
        };
        let top = PathBuf::from(&found.tar_name);
        match &found.base {
            Some(base) => w.entry(found.parent.as_fd(), base, &top)?,
            None => {
                // The directory itself: its own entry, then its children.
                let st = &found.stat;
                w.header_only(st, &top, tar::EntryType::Directory)?;
                w.children(found.parent.as_fd(), &top)?;
            }
        }
        w.builder
            .into_inner()
            .and_then(|mut o| o.flush())
            .map_err(|e| EngineError::internal("write the tar", e))
    }
}

/// Writes a tree walked with descriptors into a tar.
struct TarWalk<W: Write> {
    /// A remapped container's host ids back to its own (`docker cp` shows those).
    ids: Option<berth_image::layer::IdMap>,
    builder: tar::Builder<W>,
    /// Files linked more than once: the first path written for each (dev, ino).
    links: std::collections::HashMap<(u64, u64), PathBuf>,
}

fn tar_err(e: impl Into<crate::error::Source>) -> EngineError {
    EngineError::internal("write the tar", e)
}

impl<W: Write> TarWalk<W> {
    fn header_for(&self, st: &rustix::fs::Stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        let (uid, gid) = match &self.ids {
            Some(ids) => (ids.uid(st.st_uid), ids.gid(st.st_gid)),
            None => (st.st_uid, st.st_gid),
        };
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        h.set_size(0);
        h
    }

    fn header_only(
        &mut self,
        st: &rustix::fs::Stat,
        name: &Path,
        kind: tar::EntryType,
    ) -> Result<()> {
        let mut h = self.header_for(st, kind);
        let mut name = name.to_path_buf();
        if kind == tar::EntryType::Directory {
            name.push("");
        }
        self.builder
            .append_data(&mut h, &name, io::empty())
            .map_err(tar_err)
    }

    fn entry(&mut self, parent: BorrowedFd<'_>, base: &OsStr, name: &Path) -> Result<()> {
        let st = rustix::fs::statat(parent, base, AtFlags::SYMLINK_NOFOLLOW).map_err(tar_err)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                self.header_only(&st, name, tar::EntryType::Directory)?;
                let dir = rustix::fs::openat(
                    parent,
                    base,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(tar_err)?;
                self.children(dir.as_fd(), name)
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut h = self.header_for(&st, tar::EntryType::Link);
                        let first = first.clone();
                        return self
                            .builder
                            .append_link(&mut h, name, &first)
                            .map_err(tar_err);
                    }
                    self.links.insert(key, name.to_path_buf());
                }
                let fd = rustix::fs::openat(
                    parent,
                    base,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(tar_err)?;
                let file = File::from(fd);
                let mut h = self.header_for(&st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                // Exactly the stat's size: a file that grows meanwhile is cut, one that shrinks
                // is padded (the tar stays well-formed).
                let body = file
                    .take(st.st_size as u64)
                    .chain(io::repeat(0))
                    .take(st.st_size as u64);
                self.builder
                    .append_data(&mut h, name, body)
                    .map_err(tar_err)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(parent, base, Vec::new()).map_err(tar_err)?;
                let mut h = self.header_for(&st, tar::EntryType::Symlink);
                self.builder
                    .append_link(&mut h, name, OsStr::from_bytes(target.as_bytes()))
                    .map_err(tar_err)
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let kind = if FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = self.header_for(&st, kind);
                let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
                let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
                self.builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(tar_err)
            }
            FileType::Fifo => {
                let mut h = self.header_for(&st, tar::EntryType::Fifo);
                self.builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(tar_err)
            }
            // Sockets are left out, as Docker does.
            _ => Ok(()),
        }
    }

    fn children(&mut self, dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
        let fd = rustix::fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(tar_err)?;
        let mut names: Vec<OsString> = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd).map_err(tar_err)? {
            let entry = entry.map_err(tar_err)?;
            let n = entry.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            names.push(OsStr::from_bytes(n).to_os_string());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            self.entry(fd.as_fd(), &n, &name.join(&n))?;
        }
        Ok(())
    }
}

/// RFC 3339 with nanoseconds, UTC.
pub(crate) fn rfc3339_nanos(secs: i64, nanos: i64) -> String {
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH
            + std::time::Duration::new(secs as u64, nanos.clamp(0, 999_999_999) as u32)
    } else {
        std::time::UNIX_EPOCH
    };
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), 2147484141);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 420);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
    }

    #[test]
    fn paths_split_as_docker_names_them() {
        let s = split("/etc/hostname");
        assert_eq!(s.dir, Path::new("etc"));
        assert_eq!(s.base.as_deref(), Some(OsStr::new("hostname")));
        let s = split("/etc/");
        assert_eq!(
            (s.dir.as_path(), s.base.is_none()),
            (Path::new("etc"), true)
        );
        assert_eq!(s.tar_name, "etc");
        let s = split("/etc/.");
        assert_eq!(s.tar_name, ".");
        let s = split("/");
        assert_eq!((s.dir.as_path(), s.base.is_none()), (Path::new("."), true));
        let s = split("x");
        assert_eq!(s.dir, Path::new("."));
    }
}
