//! `since`: where in a log file the records at or after a time begin, found by binary search
//! on the times of the lines (the monitor appends them in time order), so that a `since` near
//! the end of a large log reads a few blocks, not the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::lines::{Lines, MAX_LINE};
use super::record::{self, Nanos};

/// Below this span the search goes on line by line.
const SPAN: u64 = 64 << 10;

/// The probe's read size.
const PROBE: usize = 8 << 10;

/// The start of the first line in the first `len` bytes of `f` whose record is at or after
/// `since`; `len` when every record is earlier. A line that is not a record counts as late,
/// so nothing is skipped for it; if the clock went back while the log was written, records
/// out of order may be missed, as the search assumes order. Reads O(log(len)) probes and at
/// most [`SPAN`] bytes more.
pub fn since_start(f: &File, len: u64, since: Nanos) -> io::Result<u64> {
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > SPAN {
        let mid = lo + (hi - lo) / 2;
        let Some(start) = line_start_at(f, mid, hi)? else {
            hi = mid;
            continue;
        };
        let (line, end) = line_at(f, start, hi)?;
        let time = line
            .as_deref()
            .and_then(record::parse)
            .and_then(|e| record::parse_time(&e.time));
        match (time, end) {
            (Some(t), Some(end)) if t < since => lo = end,
            (Some(t), None) if t < since => lo = hi,
            _ => hi = start,
        }
    }
    // The rest, line by line.
    let mut lines = Lines::new(f.try_clone()?, lo, hi)?;
    let early = |line: &[u8]| {
        record::parse(line)
            .and_then(|e| record::parse_time(&e.time))
            .is_some_and(|t| t < since)
    };
    while let Some(line) = lines.next_line()? {
        if !early(line) {
            return Ok(lines.line_start());
        }
    }
    if let Some(line) = lines.unterminated() {
        if !early(line) {
            return Ok(lines.line_start());
        }
    }
    Ok(hi)
}

/// The first line start at or after `from` and before `hi` (0, or just after a newline).
fn line_start_at(f: &File, from: u64, hi: u64) -> io::Result<Option<u64>> {
    if from == 0 {
        return Ok((hi > 0).then_some(0));
    }
    let mut buf = vec![0u8; PROBE];
    let mut pos = from - 1;
    while pos < hi {
        let want = (hi - pos).min(PROBE as u64) as usize;
        let n = read_at(f, &mut buf[..want], pos)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            let start = pos + i as u64 + 1;
            return Ok((start < hi).then_some(start));
        }
        pos += n as u64;
    }
    Ok(None)
}

/// The line starting at `start` (without its newline, `None` if longer than [`MAX_LINE`]),
/// and the start of the next line (`None` when no newline comes before `hi`).
fn line_at(f: &File, start: u64, hi: u64) -> io::Result<(Option<Vec<u8>>, Option<u64>)> {
    let mut line = Vec::new();
    let mut buf = vec![0u8; PROBE];
    let mut pos = start;
    while pos < hi && line.len() <= MAX_LINE {
        let want = (hi - pos).min(PROBE as u64) as usize;
        let n = read_at(f, &mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            line.extend_from_slice(&buf[..i]);
            return Ok((Some(line), Some(pos + i as u64 + 1)));
        }
        line.extend_from_slice(&buf[..n]);
        pos += n as u64;
    }
    Ok(((line.len() <= MAX_LINE).then_some(line), None))
}

fn read_at(f: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    loop {
        match f.read_at(buf, pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    const T0: Nanos = 1_700_000_000_000_000_000;

    /// A log of `n` records, record i at T0 + i ms; with `junk`, a torn line every 1000.
    fn log(n: u64, junk: bool) -> File {
        let mut out = Vec::new();
        for i in 0..n {
            if junk && i % 1000 == 500 {
                out.extend_from_slice(b"{\"log\":\"torn\n");
            }
            let time = record::format_time(T0 + i as Nanos * 1_000_000);
            writeln!(
                out,
                "{{\"log\":\"line {i}\\n\",\"stream\":\"stdout\",\"time\":\"{time}\"}}"
            )
            .unwrap();
        }
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&out).unwrap();
        f
    }

    /// The records a reader starting at `start` keeps for `since` (it skips earlier ones).
    fn kept(f: &File, start: u64, since: Nanos) -> Vec<String> {
        let mut lines =
            super::super::lines::Lines::new(f.try_clone().unwrap(), start, u64::MAX).unwrap();
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            if let Some(e) = record::parse(l) {
                if record::parse_time(&e.time).unwrap() >= since {
                    out.push(e.text.trim_end().to_string());
                }
            }
        }
        out
    }

    #[test]
    fn finds_the_first_record_at_or_after_since() {
        for junk in [false, true] {
            let f = log(20_000, junk);
            let len = f.metadata().unwrap().len();
            for i in [0u64, 1, 777, 10_000, 19_998, 19_999] {
                let since = T0 + i as Nanos * 1_000_000;
                let start = since_start(&f, len, since).unwrap();
                let kept = kept(&f, start, since);
                if !junk {
                    // Exactly there (a torn line may make it start earlier: it counts as late).
                    let mut lines =
                        super::super::lines::Lines::new(f.try_clone().unwrap(), start, len)
                            .unwrap();
                    let first = record::parse(lines.next_line().unwrap().unwrap())
                        .unwrap()
                        .text
                        .into_owned();
                    assert_eq!(first, format!("line {i}\n"));
                }
                assert_eq!(kept.len() as u64, 20_000 - i, "since record {i}");
                assert_eq!(kept[0], format!("line {i}"));
                // Only a little before it is read.
                let whole = len as f64;
                assert!(
                    i < 100 || (start as f64) > whole * (i as f64 / 20_000.0) - 2.0 * SPAN as f64,
                    "started at {start} for record {i}"
                );
            }
            let after_all = T0 + 30_000_000_000;
            let start = since_start(&f, len, after_all).unwrap();
            assert!(kept(&f, start, after_all).is_empty());
            if !junk {
                assert_eq!(start, len);
            }
            assert_eq!(since_start(&f, len, 0).unwrap(), 0);
        }
    }

    #[test]
    fn small_and_empty_files() {
        let f = log(3, false);
        let len = f.metadata().unwrap().len();
        let mut data = vec![0u8; len as usize];
        f.read_exact_at(&mut data, 0).unwrap();
        let second = memchr::memchr(b'\n', &data).unwrap() + 1;
        assert_eq!(since_start(&f, len, T0 + 1_000_000).unwrap(), second as u64);
        assert_eq!(since_start(&f, len, T0).unwrap(), 0);
        let empty = tempfile::tempfile().unwrap();
        assert_eq!(since_start(&empty, 0, T0).unwrap(), 0);
    }
}
