//! Reading a log file forward, line by line, through one fixed buffer: positioned reads
//! (`pread`), so a reader that reached the end can go on as the file grows (`follow`), and
//! lines longer than [`MAX_LINE`] (a torn or foreign file) skipped instead of held.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// The buffer, and the most read at a time.
pub const BUF: usize = 64 << 10;

/// The longest line kept. The monitor's records hold at most 16 KiB of text, which JSON
/// escapes can make six times as long.
pub const MAX_LINE: usize = 1 << 20;

/// One file's lines from an offset on.
#[derive(Debug)]
pub struct Lines {
    file: File,
    /// Device and inode, to tell the file from the one its path names after a rotation.
    id: (u64, u64),
    buf: Vec<u8>,
    /// The unread bytes are `buf[head..tail]`.
    head: usize,
    tail: usize,
    /// The offset of the next read (just past `buf[tail - 1]`).
    pos: u64,
    /// No reads at or past this offset (`u64::MAX`: as far as the file goes).
    limit: u64,
    /// The beginning of a line whose end is not read yet, and its offset.
    partial: Vec<u8>,
    partial_start: u64,
    /// The offset of the line last handed out.
    line_start: u64,
    /// `partial` was handed out as a line and is to be cleared.
    partial_taken: bool,
    /// Inside a line longer than [`MAX_LINE`], dropped up to its newline.
    overlong: bool,
}

impl Lines {
    /// The lines of `file` from `start` (a line start) up to `limit`.
    pub fn new(file: File, start: u64, limit: u64) -> io::Result<Lines> {
        let m = file.metadata()?;
        Ok(Lines {
            file,
            id: (m.dev(), m.ino()),
            buf: vec![0; BUF],
            head: 0,
            tail: 0,
            pos: start,
            limit,
            partial: Vec::new(),
            partial_start: start,
            line_start: start,
            partial_taken: false,
            overlong: false,
        })
    }

    /// Reads on past the limit given at first, as far as the file goes.
    pub fn unlimit(&mut self) {
        self.limit = u64::MAX;
    }

    /// Whether `m` (of a path) is this file.
    pub fn is(&self, m: &std::fs::Metadata) -> bool {
        self.id == (m.dev(), m.ino())
    }

    /// The file is shorter than what was read of it: truncated (a log of `max-file=1` is
    /// emptied when full). Reading starts again from its beginning.
    pub fn rewind_if_truncated(&mut self) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len >= self.pos {
            return Ok(false);
        }
        self.pos = 0;
        self.head = 0;
        self.tail = 0;
        self.partial.clear();
        self.partial_taken = false;
        self.overlong = false;
        Ok(true)
    }

    /// The offset of the next byte to read from the file: how far it was read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Where the line last returned starts in the file.
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// The next complete line, without its `\n`; `None` at the end of what can be read now
    /// (a last line without its newline waits for it; see [`Lines::unterminated`]).
    pub fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        if self.partial_taken {
            self.partial.clear();
            self.partial_taken = false;
        }
        loop {
            if self.head < self.tail {
                let start = self.head;
                match memchr::memchr(b'\n', &self.buf[start..self.tail]) {
                    Some(i) => {
                        self.head = start + i + 1;
                        if self.overlong {
                            self.overlong = false;
                            continue;
                        }
                        if self.partial.is_empty() {
                            self.line_start = self.pos - (self.tail - start) as u64;
                            return Ok(Some(&self.buf[start..start + i]));
                        }
                        if self.partial.len() + i > MAX_LINE {
                            self.partial.clear();
                            continue;
                        }
                        self.partial.extend_from_slice(&self.buf[start..start + i]);
                        self.partial_taken = true;
                        self.line_start = self.partial_start;
                        return Ok(Some(&self.partial));
                    }
                    None => {
                        let piece = self.tail - start;
                        if !self.overlong && self.partial.len() + piece <= MAX_LINE {
                            if self.partial.is_empty() {
                                self.partial_start = self.pos - piece as u64;
                            }
                            self.partial.extend_from_slice(&self.buf[start..self.tail]);
                        } else {
                            self.partial.clear();
                            self.overlong = true;
                        }
                        self.head = self.tail;
                    }
                }
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// What follows the last newline read, when the end of the file is final: a line of its
    /// own (a record the monitor wrote without one, or a torn one that will not parse).
    pub fn unterminated(&mut self) -> Option<&[u8]> {
        if self.partial_taken || self.partial.is_empty() || self.overlong {
            return None;
        }
        self.partial_taken = true;
        self.line_start = self.partial_start;
        Some(&self.partial)
    }

    /// Reads the next piece of the file into the empty buffer; false at the end (or limit).
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos >= self.limit {
            return Ok(false);
        }
        let want = (self.limit - self.pos).min(self.buf.len() as u64) as usize;
        let n = loop {
            match self.file.read_at(&mut self.buf[..want], self.pos) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.head = 0;
        self.tail = n;
        self.pos += n as u64;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    fn all(lines: &mut Lines) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push(String::from_utf8_lossy(l).into_owned());
        }
        out
    }

    #[test]
    fn lines_across_buffer_refills_and_a_growing_file() {
        let mut f = tempfile::tempfile().unwrap();
        let long = "y".repeat(BUF + 10);
        write!(f, "a\n{long}\nb").unwrap();
        let mut lines = Lines::new(f.try_clone().unwrap(), 0, u64::MAX).unwrap();
        assert_eq!(all(&mut lines), ["a".to_string(), long.clone()]);
        assert_eq!(lines.line_start(), 2);
        write!(f, "c\nd\n").unwrap();
        assert_eq!(lines.next_line().unwrap().unwrap(), b"bc");
        assert_eq!(lines.line_start(), 2 + long.len() as u64 + 1);
        assert_eq!(all(&mut lines), ["d"]);
        assert!(lines.unterminated().is_none());
        write!(f, "tail").unwrap();
        assert!(all(&mut lines).is_empty());
        assert_eq!(lines.unterminated().unwrap(), b"tail");
    }

    #[test]
    fn start_and_limit() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"one\ntwo\nthree\nfour\n").unwrap();
        let mut lines = Lines::new(f.try_clone().unwrap(), 4, 14).unwrap();
        assert_eq!(lines.next_line().unwrap().unwrap(), b"two");
        assert_eq!(lines.line_start(), 4);
        assert_eq!(lines.next_line().unwrap().unwrap(), b"three");
        assert_eq!(lines.line_start(), 8);
        assert!(lines.next_line().unwrap().is_none());
        lines.unlimit();
        assert_eq!(all(&mut lines), ["four"]);
    }

    #[test]
    fn overlong_lines_are_skipped() {
        let mut f = tempfile::tempfile().unwrap();
        let huge = vec![b'x'; MAX_LINE + BUF * 2];
        f.write_all(b"before\n").unwrap();
        f.write_all(&huge).unwrap();
        f.write_all(b"\nafter\n").unwrap();
        let mut lines = Lines::new(f, 0, u64::MAX).unwrap();
        assert_eq!(all(&mut lines), ["before", "after"]);
        assert!(lines.partial.capacity() <= 2 * MAX_LINE);
    }

    #[test]
    fn truncation_starts_over() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"old 1\nold 2\n").unwrap();
        let mut lines = Lines::new(f.try_clone().unwrap(), 0, u64::MAX).unwrap();
        assert_eq!(all(&mut lines).len(), 2);
        f.set_len(0).unwrap();
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(b"new\n").unwrap();
        assert!(lines.rewind_if_truncated().unwrap());
        assert_eq!(all(&mut lines), ["new"]);
        assert!(!lines.rewind_if_truncated().unwrap());
    }
}
