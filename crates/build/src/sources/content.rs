//! The content of a source file: an open file, or a range of the context's spool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// A source file's bytes, readable and seekable (ADD looks at an archive's first bytes, then
/// reads it from the start).
pub(crate) enum Content<'a> {
    File(File),
    Spool(SpoolRange<'a>),
}

/// `len` bytes of `file` from `start`, read with `pread` (the spool is shared by every step).
pub(crate) struct SpoolRange<'a> {
    pub(crate) file: &'a File,
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) pos: u64,
}

impl Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Content::File(f) => f.read(buf),
            Content::Spool(r) => {
                let left = r.len.saturating_sub(r.pos);
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                if want == 0 {
                    return Ok(0);
                }
                let n = r.file.read_at(&mut buf[..want], r.start + r.pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the context's spool file is shorter than its index",
                    ));
                }
                r.pos += n as u64;
                Ok(n)
            }
        }
    }
}

impl Seek for Content<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Content::File(f) => f.seek(to),
            Content::Spool(r) => {
                let base = match to {
                    SeekFrom::Start(n) => Some(n),
                    SeekFrom::End(d) => r.len.checked_add_signed(d),
                    SeekFrom::Current(d) => r.pos.checked_add_signed(d),
                };
                let Some(pos) = base else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "seek before the start",
                    ));
                };
                r.pos = pos;
                Ok(pos)
            }
        }
    }
}
