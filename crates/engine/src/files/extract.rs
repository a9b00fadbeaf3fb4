//! `PUT /containers/{id}/archive?path=`: a tar extracted into a directory of the container,
//! all or nothing.
//!
//! The tar is read once, as it comes: each entry is checked (dockerd's words for a name or a
//! hard link that leads out of the directory, `noOverwriteDirNonDir`), its owner reset to root
//! unless `copyUIDGID`, and it is written by `berth_image::layer::apply` (which never follows
//! a symlink) into a staging directory made inside the destination, so on the same
//! filesystem. Only once the whole tar is in is the staged tree moved into place: each entry
//! renamed over what it replaces (a directory merged into the one there). An error on the
//! way (a bad entry, a broken tar, a full disk) removes the staging directory and leaves the
//! destination as it was. (dockerd extracts in place and leaves what came before the error.)
//! A name starting with `/` is taken below the destination, as dockerd takes it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_image::inside::open_in_root;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::archive::{fd_path, ExtractOptions};
use super::Rootfs;
use crate::error::{EngineError, Result};

impl Rootfs {
    /// `PUT /containers/{id}/archive?path=`: extracts the tar from `reader` into the directory
    /// `path` of the container.
    pub fn extract(
        &self,
        path: &str,
        reader: impl Read + Send,
        opts: ExtractOptions,
    ) -> Result<()> {
        if self.container.host_config.readonly_rootfs == Some(true) {
            return Err(EngineError::InvalidParameter(
                "container rootfs is marked read-only".into(),
            ));
        }
        let rel = path.trim_start_matches('/');
        let rel = if rel.is_empty() { "." } else { rel };
        let dir = match open_in_root(
            self.root(),
            Path::new(rel),
            OFlags::RDONLY | OFlags::DIRECTORY,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(self.not_found(path)),
            Err(Errno::NOTDIR) => {
                return Err(EngineError::InvalidParameter(
                    "extraction point is not a directory".into(),
                ))
            }
            Err(e) => return Err(EngineError::internal(&format!("open {path}"), e)),
        };
        let dest = format!("/{}", path.trim_matches('/'));
        let stage = Stage::make(dir.as_fd())?;
        let to_host = self
            .engine
            .remap_of(&self.container)
            .map(crate::userns::Remap::to_container);
        let staged = stage_tar(
            reader,
            (dir.as_fd(), stage.fd.as_fd()),
            &dest,
            opts,
            to_host.as_ref(),
        );
        let moved = staged.and_then(|()| {
            merge(stage.fd.as_fd(), dir.as_fd())
                .map_err(|e| EngineError::internal("moving the extracted files into place", e))
        });
        drop(stage);
        moved
    }
}

/// The staging directory inside the destination, removed with what is left in it on drop.
struct Stage<'a> {
    dir: BorrowedFd<'a>,
    name: OsString,
    fd: OwnedFd,
}

impl<'a> Stage<'a> {
    fn make(dir: BorrowedFd<'a>) -> Result<Stage<'a>> {
        let mut bytes = [0u8; 8];
        let _ = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let name = OsString::from(format!(".berth-cp-{hex}"));
        let refused = |e: Errno| {
            if e == Errno::ROFS {
                EngineError::InvalidParameter("the destination is read-only".into())
            } else {
                EngineError::internal("making the extraction's staging directory", e)
            }
        };
        rustix::fs::mkdirat(dir, name.as_os_str(), Mode::from_raw_mode(0o700)).map_err(refused)?;
        let fd = rustix::fs::openat(
            dir,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(refused)?;
        Ok(Stage { dir, name, fd })
    }
}

impl Drop for Stage<'_> {
    fn drop(&mut self) {
        let path = fd_path(self.dir).join(&self.name);
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(error = %e, "docker cp: removing the staging directory");
        }
    }
}

/// Checks and rewrites the tar from `reader` into a tar that `apply` writes into `stage`.
/// `to_host`: a remapped container's ids, which its files get on the host as their remapped
/// ones.
fn stage_tar(
    reader: impl Read + Send,
    (dir, stage): (BorrowedFd<'_>, BorrowedFd<'_>),
    dest: &str,
    opts: ExtractOptions,
    to_host: Option<&berth_image::layer::IdMap>,
) -> Result<()> {
    let (pipe_r, pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| EngineError::internal("pipe", e))?;
    std::thread::scope(|scope| {
        let rewriter =
            scope.spawn(move || rewrite(reader, File::from(pipe_w), dir, dest, (opts, to_host)));
        let applied = berth_image::layer::apply(File::from(pipe_r), &fd_path(stage));
        let rewritten = rewriter
            .join()
            .unwrap_or_else(|_| Err(EngineError::Internal("extract thread panicked".into())));
        // The rewriter's error says more (a refused entry) than the broken pipe.
        rewritten?;
        applied
            .map(|_| ())
            .map_err(|e| EngineError::internal("extracting the archive", e))
    })
}

/// An entry's name as dockerd cleans it (Go's `filepath.Clean`), relative to the
/// destination; `Err` with the cleaned name when it leads out of it.
fn clean(name: &Path) -> std::result::Result<PathBuf, String> {
    let absolute = name.has_root();
    let mut parts: Vec<&OsStr> = Vec::new();
    let mut ups = 0usize;
    for c in name.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                if parts.pop().is_none() && !absolute {
                    ups += 1;
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if ups > 0 {
        let mut shown: Vec<String> = vec!["..".to_string(); ups];
        shown.extend(parts.iter().map(|p| p.to_string_lossy().into_owned()));
        return Err(shown.join("/"));
    }
    Ok(parts.iter().collect())
}

/// Copies the tar from `reader` to `out`: names cleaned (refused when they lead out of the
/// destination `dest`), owners reset to root unless kept, whiteout-named entries left out
/// (the layer code would read them as deletions), and the `noOverwriteDirNonDir` check
/// against what is in `dir`.
fn rewrite(
    reader: impl Read,
    out: File,
    dir: BorrowedFd<'_>,
    dest: &str,
    (opts, to_host): (ExtractOptions, Option<&berth_image::layer::IdMap>),
) -> Result<()> {
    let bad = |e: io::Error| EngineError::InvalidParameter(format!("reading the archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    let mut builder = tar::Builder::new(out);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            continue;
        }
        let path = clean(&raw).map_err(|shown| {
            EngineError::InvalidParameter(format!("\"{shown}\" is outside of \"{dest}\""))
        })?;
        if path.as_os_str().is_empty() {
            // The destination itself: dockerd keeps it as it is.
            continue;
        }
        if path
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
        {
            tracing::warn!(entry = %path.display(), "docker cp: whiteout-named entry skipped");
            continue;
        }
        if opts.no_overwrite_dir_non_dir {
            if let Ok(st) = rustix::fs::statat(dir, &path, AtFlags::SYMLINK_NOFOLLOW) {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && !kind.is_dir() {
                    return Err(EngineError::InvalidParameter(format!(
                        "cannot overwrite directory \"{}\" with non-directory \"{}\"",
                        path.display(),
                        raw.display()
                    )));
                }
                if !is_dir && kind.is_dir() {
                    return Err(EngineError::InvalidParameter(format!(
                        "cannot overwrite non-directory \"{}\" with directory \"{}\"",
                        path.display(),
                        raw.display()
                    )));
                }
            }
        }
        let mut header = entry.header().clone();
        if !opts.copy_uid_gid {
            header.set_uid(0);
            header.set_gid(0);
            let _ = header.set_username("");
            let _ = header.set_groupname("");
        }
        if let Some(ids) = &to_host {
            // The container's ids are the remapped ones on the host.
            let id = |v: io::Result<u64>| u32::try_from(v.unwrap_or(0)).unwrap_or(u32::MAX);
            header.set_uid(u64::from(ids.host_uid(id(header.uid()))));
            header.set_gid(u64::from(ids.host_gid(id(header.gid()))));
        }
        // Sparse files come back as plain files.
        if kind == tar::EntryType::GNUSparse {
            header.set_entry_type(tar::EntryType::Regular);
        }
        let link = entry.link_name().map_err(bad)?.map(|l| l.into_owned());
        let written = match (kind, link) {
            (tar::EntryType::Link, Some(target)) => {
                let target = clean(&target).map_err(|_| {
                    EngineError::InvalidParameter(format!(
                        "invalid hardlink \"{}\" -> \"{}\"",
                        Path::new(dest).join(&target).display(),
                        target.display()
                    ))
                })?;
                builder.append_link(&mut header, &path, &target)
            }
            (tar::EntryType::Symlink, Some(target)) => {
                builder.append_link(&mut header, &path, &target)
            }
            _ => {
                header.set_size(entry.size());
                builder.append_data(&mut header, &path, &mut entry)
            }
        };
        match written {
            Ok(()) => {}
            // The other side (apply) stopped: its own error is reported.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(bad(e)),
        }
    }
    let _ = builder.into_inner();
    Ok(())
}

/// Moves the staged tree `src` into `dst`: an entry replaces what is there under its name,
/// a directory is merged into a directory (and gives it its owner, mode and times).
fn merge(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> io::Result<()> {
    for name in children(src)? {
        let name = name.as_os_str();
        let st = rustix::fs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let there = rustix::fs::statat(dst, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let is_dir = |st: &rustix::fs::Stat| FileType::from_raw_mode(st.st_mode).is_dir();
        match there {
            Some(t) if is_dir(&st) && is_dir(&t) => {
                let from = open_dir(src, name)?;
                let to = open_dir(dst, name)?;
                merge(from.as_fd(), to.as_fd())?;
                set_meta(to.as_fd(), &st)?;
                continue;
            }
            Some(t) if is_dir(&t) => std::fs::remove_dir_all(fd_path(dst).join(name))?,
            Some(_) if is_dir(&st) => rustix::fs::unlinkat(dst, name, AtFlags::empty())?,
            _ => {}
        }
        match rustix::fs::renameat(src, name, dst, name) {
            Ok(()) => {}
            // A mount below the destination (a volume): copied across.
            Err(Errno::XDEV) => copy_across(src, dst, name, &st)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn children(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The owner, mode and times of `st` on the open file `fd`.
fn set_meta(fd: BorrowedFd<'_>, st: &rustix::fs::Stat) -> io::Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    let time = Timespec {
        tv_sec: st.st_mtime,
        tv_nsec: st.st_mtime_nsec as _,
    };
    rustix::fs::futimens(
        fd,
        &Timestamps {
            last_access: time,
            last_modification: time,
        },
    )?;
    Ok(())
}

/// The staged entry `name` of `src` copied into `dst` (on another filesystem): a file
/// through a temporary name then renamed, a directory made and filled.
fn copy_across(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    name: &OsStr,
    st: &rustix::fs::Stat,
) -> io::Result<()> {
    let mut tmp = OsString::from(".berth-cp-");
    tmp.push(name);
    let tmp = tmp.as_os_str();
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
            let from = open_dir(src, name)?;
            let to = open_dir(dst, name)?;
            merge(from.as_fd(), to.as_fd())?;
            set_meta(to.as_fd(), st)?;
            return Ok(());
        }
        FileType::RegularFile => {
            let from = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let to = rustix::fs::openat(
                dst,
                tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let copied = io::copy(&mut File::from(from), &mut File::from(to.try_clone()?))
                .and_then(|_| set_meta(to.as_fd(), st));
            if let Err(e) = copied {
                let _ = rustix::fs::unlinkat(dst, tmp, AtFlags::empty());
                return Err(e);
            }
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), dst, tmp)?;
        }
        _ => {
            rustix::fs::mknodat(
                dst,
                tmp,
                FileType::from_raw_mode(st.st_mode),
                Mode::from_raw_mode(st.st_mode & 0o7777),
                st.st_rdev,
            )?;
        }
    }
    rustix::fs::renameat(dst, tmp, dst, name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_as_dockerd_cleans_them() {
        assert_eq!(clean(Path::new("a/./b")).unwrap(), Path::new("a/b"));
        assert_eq!(clean(Path::new("/etc/x")).unwrap(), Path::new("etc/x"));
        assert_eq!(clean(Path::new("/../x")).unwrap(), Path::new("x"));
        assert_eq!(clean(Path::new("a/../b")).unwrap(), Path::new("b"));
        assert_eq!(clean(Path::new("./")).unwrap(), Path::new(""));
        assert_eq!(clean(Path::new("../evil")).unwrap_err(), "../evil");
        assert_eq!(clean(Path::new("a/../../x")).unwrap_err(), "../x");
        assert_eq!(clean(Path::new("..")).unwrap_err(), "..");
    }
}
