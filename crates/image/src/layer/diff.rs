//! The changes of an overlay upper directory as a layer tar (for commit and build).
//!
//! The upper directory already is the difference to its lower stack, in overlay's form; this
//! writes it in the tar form: a 0/0 character device (a whiteout) becomes an empty `.wh.NAME`,
//! a directory with `trusted.overlay.opaque=y` is followed by `.wh..wh..opq`. Entries are written
//! in byte order of their names, so the same tree always gives the same diff_id. Overlay's own
//! xattrs are left out; files linked several times within the upper directory are written once
//! and then as hardlinks to that first path. Sockets are skipped, as Docker does.
//!
//! Not handled: overlay `redirect_dir` renames and `metacopy` files (the upper directory must come
//! from a mount without them, as Berth mounts it).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::apply::is_overlay_xattr;
use super::{io_err, LayerError, OPAQUE_WHITEOUT, OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::digest::{Digest, DigestWriter};

/// Writes the upper dir of an overlay (`upper`), relative to its lower stack, as an uncompressed
/// layer tar into `out`; overlay whiteouts (0/0 char devices) become `.wh.NAME`, opaque dirs
/// (trusted.overlay.opaque=y) get `.wh..wh..opq`. Returns the diff_id.
pub fn diff_upper(upper: &Path, out: impl Write) -> Result<Digest, LayerError> {
    diff_upper_mapped(upper, out, None)
}

/// Host ids back to a user namespace's (a container of berthd's `--userns-remap` writes its
/// files with host ids): `(first host id, first namespace id, count)` ranges; an id in none of
/// them becomes the overflow id, 65534, as the kernel shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pub uids: Vec<(u32, u32, u32)>,
    pub gids: Vec<(u32, u32, u32)>,
}

impl IdMap {
    fn map(ranges: &[(u32, u32, u32)], host: u32) -> u32 {
        ranges
            .iter()
            .find_map(|&(first, inner, count)| {
                let offset = host.checked_sub(first)?;
                (offset < count).then(|| inner.saturating_add(offset))
            })
            .unwrap_or(OVERFLOW_ID)
    }
    /// The other way: a namespace id to the host's (the overflow id outside the ranges).
    fn unmap(ranges: &[(u32, u32, u32)], inner: u32) -> u32 {
        ranges
            .iter()
            .find_map(|&(first, start, count)| {
                let offset = inner.checked_sub(start)?;
                (offset < count).then(|| first.saturating_add(offset))
            })
            .unwrap_or(OVERFLOW_ID)
    }
    pub fn host_uid(&self, inner: u32) -> u32 {
        IdMap::unmap(&self.uids, inner)
    }
    pub fn host_gid(&self, inner: u32) -> u32 {
        IdMap::unmap(&self.gids, inner)
    }
    pub fn uid(&self, host: u32) -> u32 {
        IdMap::map(&self.uids, host)
    }
    pub fn gid(&self, host: u32) -> u32 {
        IdMap::map(&self.gids, host)
    }
}

const OVERFLOW_ID: u32 = 65534;

/// [`diff_upper`], the owners written through `ids` when given.
pub fn diff_upper_mapped(
    upper: &Path,
    out: impl Write,
    ids: Option<&IdMap>,
) -> Result<Digest, LayerError> {
    let mut writer = Writer {
        ids,
        upper,
        builder: tar::Builder::new(DigestWriter::new(out)),
        links: HashMap::new(),
    };
    let root = fs::symlink_metadata(upper).map_err(io_err(format!(
        "reading upper directory {}",
        upper.display()
    )))?;
    if is_opaque(upper)? {
        writer.marker(&PathBuf::from(OPAQUE_WHITEOUT), root.mtime())?;
    }
    writer.walk(Path::new(""))?;
    let digest_writer = writer
        .builder
        .into_inner()
        .map_err(io_err("finishing the layer tar"))?;
    let (digest, mut out) = digest_writer.finish();
    out.flush().map_err(io_err("flushing the layer tar"))?;
    Ok(digest)
}

struct Writer<'a, W: Write> {
    ids: Option<&'a IdMap>,
    upper: &'a Path,
    builder: tar::Builder<DigestWriter<W>>,
    /// The first path written for each (device, inode) linked more than once.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Writer<'_, W> {
    fn walk(&mut self, rel: &Path) -> Result<(), LayerError> {
        let dir = self.upper.join(rel);
        let mut names: Vec<OsString> = Vec::new();
        for child in fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))? {
            let child = child.map_err(io_err(format!("listing {}", dir.display())))?;
            names.push(child.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            self.entry(&rel.join(&name), &name)?;
        }
        Ok(())
    }

    fn entry(&mut self, rel: &Path, name: &OsStr) -> Result<(), LayerError> {
        let full = self.upper.join(rel);
        let context = || format!("adding {} to the layer", full.display());
        let md = fs::symlink_metadata(&full).map_err(io_err(context()))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let mut marker = OsString::from(WHITEOUT_PREFIX);
            marker.push(name);
            return self.marker(&rel.with_file_name(marker), md.mtime());
        }
        if ft.is_socket() {
            return Ok(());
        }
        let mut header = Header::new_ustar();
        let (uid, gid) = match self.ids {
            Some(ids) => (ids.uid(md.uid()), ids.gid(md.gid())),
            None => (md.uid(), md.gid()),
        };
        header.set_uid(u64::from(uid));
        header.set_gid(u64::from(gid));
        header.set_mode(md.mode() & 0o7777);
        header.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
        header.set_size(0);
        self.xattrs(&full)?;

        if ft.is_dir() {
            header.set_entry_type(EntryType::Directory);
            self.builder
                .append_data(&mut header, rel, io::empty())
                .map_err(io_err(context()))?;
            if is_opaque(&full)? {
                self.marker(&rel.join(OPAQUE_WHITEOUT), md.mtime())?;
            }
            return self.walk(rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(&full).map_err(io_err(context()))?;
            header.set_entry_type(EntryType::Symlink);
            return self
                .builder
                .append_link(&mut header, rel, target)
                .map_err(io_err(context()));
        }
        if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = self.links.get(&key) {
                    header.set_entry_type(EntryType::Link);
                    let first = first.clone();
                    return self
                        .builder
                        .append_link(&mut header, rel, first)
                        .map_err(io_err(context()));
                }
                self.links.insert(key, rel.to_path_buf());
            }
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&full)
                .map_err(io_err(context()))?;
            header.set_entry_type(EntryType::Regular);
            header.set_size(md.len());
            return self
                .builder
                .append_data(&mut header, rel, SizedReader(file.take(md.len())))
                .map_err(io_err(context()));
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else {
            EntryType::Fifo
        };
        header.set_entry_type(kind);
        if kind != EntryType::Fifo {
            let dev = md.rdev();
            header
                .set_device_major(rustix::fs::major(dev))
                .map_err(io_err(context()))?;
            header
                .set_device_minor(rustix::fs::minor(dev))
                .map_err(io_err(context()))?;
        }
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(io_err(context()))
    }

    /// An empty `.wh.*` marker entry.
    fn marker(&mut self, rel: &Path, mtime: i64) -> Result<(), LayerError> {
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::Regular);
        header.set_size(0);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(u64::try_from(mtime).unwrap_or(0));
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(io_err(format!("adding {} to the layer", rel.display())))
    }

    /// The PAX record set with the xattrs of `full` (sorted), written before its entry.
    fn xattrs(&mut self, full: &Path) -> Result<(), LayerError> {
        let context = || format!("reading the xattrs of {}", full.display());
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        for attr in xattr::list(full).map_err(io_err(context()))? {
            let bytes = attr.as_bytes();
            if is_overlay_xattr(bytes) {
                continue;
            }
            if let Some(value) = xattr::get(full, &attr).map_err(io_err(context()))? {
                let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(bytes));
                records.push((key, value));
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        records.sort();
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(io_err(context()))
    }
}

fn is_opaque(dir: &Path) -> Result<bool, LayerError> {
    let value = xattr::get(dir, OPAQUE_XATTR)
        .map_err(io_err(format!("reading the xattrs of {}", dir.display())))?;
    Ok(value.as_deref() == Some(b"y"))
}

/// Reads exactly `size` bytes of a file: the header already holds the size, so a file that grows
/// is cut and one that shrinks is an error rather than a corrupt tar.
struct SizedReader(io::Take<File>);

impl Read for SizedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 && !buf.is_empty() && self.0.limit() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being read",
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_map_back_through_the_ranges() {
        let ids = IdMap {
            uids: vec![(100_000, 0, 65_536), (300_000, 65_536, 10)],
            gids: vec![(200_000, 0, 5)],
        };
        assert_eq!(ids.uid(100_000), 0);
        assert_eq!(ids.uid(165_535), 65_535);
        assert_eq!(ids.uid(300_009), 65_545);
        assert_eq!(ids.uid(0), OVERFLOW_ID);
        assert_eq!(ids.uid(165_536), OVERFLOW_ID);
        assert_eq!(ids.gid(200_004), 4);
        assert_eq!(ids.gid(200_005), OVERFLOW_ID);
        assert_eq!(ids.host_uid(0), 100_000);
        assert_eq!(ids.host_uid(65_537), 300_001);
        assert_eq!(ids.host_gid(4), 200_004);
        assert_eq!(ids.host_gid(5), OVERFLOW_ID);
    }
}
