//! `tail=N`: where the last N lines of a file start, found by reading blocks backwards from
//! its end and counting newlines, so that the work is O(N), whatever the file's size.

use std::io::{self, Read, Seek, SeekFrom};

/// The block read at a time.
pub const BLOCK: usize = 64 << 10;

/// Where the last `n` lines of the first `end` bytes of `f` start, and how many lines that is:
/// `n`, or all the lines there are when there are fewer (the offset is then 0). A line ends
/// with `\n`; a last piece without one is a line too; an empty file has none. `\r` is nothing
/// special. Reads blocks of `block` bytes from the end.
pub fn tail_start<F: Read + Seek>(
    f: &mut F,
    end: u64,
    n: usize,
    block: usize,
) -> io::Result<(u64, usize)> {
    if n == 0 || end == 0 {
        return Ok((end, 0));
    }
    let mut buf = vec![0u8; block.max(1)];
    let mut pos = end;
    // Newlines that start a line: all but one that ends the file.
    let mut found = 0usize;
    let mut last_block = true;
    while pos > 0 {
        let len = (buf.len() as u64).min(pos) as usize;
        pos -= len as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..len])?;
        let mut chunk = &buf[..len];
        if last_block {
            last_block = false;
            if let Some(rest) = chunk.strip_suffix(b"\n") {
                chunk = rest;
            }
        }
        for i in memchr::memrchr_iter(b'\n', chunk) {
            found += 1;
            if found == n {
                return Ok((pos + i as u64 + 1, n));
            }
        }
    }
    Ok((0, found + 1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Cursor;

    use super::*;

    /// The last `n` lines of `data` by the backward reader, for every block size from 1 to
    /// past the data's length, which must all agree.
    fn tail(data: &[u8], n: usize) -> (Vec<u8>, usize) {
        let mut answers = Vec::new();
        for block in 1..=data.len() + 2 {
            let mut c = Cursor::new(data);
            let (start, found) = tail_start(&mut c, data.len() as u64, n, block).unwrap();
            answers.push((data[start as usize..].to_vec(), found));
        }
        answers.dedup();
        assert_eq!(answers.len(), 1, "block sizes disagree: {answers:?}");
        answers.remove(0)
    }

    #[test]
    fn last_lines_across_block_boundaries() {
        let data = b"first line\nsecond, longer line\nthird\n";
        assert_eq!(tail(data, 1), (b"third\n".to_vec(), 1));
        assert_eq!(tail(data, 2), (b"second, longer line\nthird\n".to_vec(), 2));
        assert_eq!(tail(data, 3), (data.to_vec(), 3));
    }

    #[test]
    fn no_trailing_newline() {
        let data = b"a\nb\ncd";
        assert_eq!(tail(data, 1), (b"cd".to_vec(), 1));
        assert_eq!(tail(data, 2), (b"b\ncd".to_vec(), 2));
        assert_eq!(tail(b"only", 1), (b"only".to_vec(), 1));
    }

    #[test]
    fn empty_file() {
        let mut c = Cursor::new(Vec::<u8>::new());
        assert_eq!(tail_start(&mut c, 0, 5, BLOCK).unwrap(), (0, 0));
    }

    #[test]
    fn tail_larger_than_the_file() {
        let data = b"a\nb\nc\n";
        assert_eq!(tail(data, 10), (data.to_vec(), 3));
        assert_eq!(tail(b"a\nb", 10), (b"a\nb".to_vec(), 2));
        // Empty lines are lines.
        assert_eq!(tail(b"\n\n", 10), (b"\n\n".to_vec(), 2));
        assert_eq!(tail(b"\n\n", 1), (b"\n".to_vec(), 1));
    }

    #[test]
    fn zero_lines() {
        let data = b"a\nb\n";
        assert_eq!(tail(data, 0), (Vec::new(), 0));
    }

    #[test]
    fn crlf_is_nothing_special() {
        let data = b"a\r\nb\r\nc\r\n";
        assert_eq!(tail(data, 1), (b"c\r\n".to_vec(), 1));
        assert_eq!(tail(data, 2), (b"b\r\nc\r\n".to_vec(), 2));
        assert_eq!(tail(b"a\r\nb\r", 1), (b"b\r".to_vec(), 1));
    }

    #[test]
    fn only_the_first_end_bytes_count() {
        let data = b"a\nb\nc\nappended later\n";
        let mut c = Cursor::new(&data[..]);
        assert_eq!(tail_start(&mut c, 6, 1, 4).unwrap(), (4, 1));
    }

    #[test]
    fn reads_a_bounded_amount_of_a_large_file() {
        /// A reader that counts what it was asked for.
        struct Counting<'a>(Cursor<&'a [u8]>, usize);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1 += n;
                Ok(n)
            }
        }
        impl Seek for Counting<'_> {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                self.0.seek(pos)
            }
        }
        let line = b"{\"log\":\"some output\\n\",\"stream\":\"stdout\"}\n";
        let data: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 200_000)
            .collect();
        let mut c = Counting(Cursor::new(&data[..]), 0);
        let (start, found) = tail_start(&mut c, data.len() as u64, 10, BLOCK).unwrap();
        assert_eq!(found, 10);
        assert_eq!(data.len() as u64 - start, 10 * line.len() as u64);
        assert!(c.1 <= BLOCK, "read {} bytes", c.1);
    }
}
