//! The records of one file of a `local` log ([`berth_monitor::locallog`]): read forwards
//! through one buffer from a plain file (positioned reads, so a follower goes on as it grows)
//! or a gzip-compressed one, and backwards from a plain file's end through the size after
//! each record (`tail`), without holding more than a block and a record.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

use berth_monitor::locallog::{self, Entry, FRAME, MAX_ENTRY};

use super::record::Nanos;

/// The buffer, and the most read at a time.
pub const BUF: usize = 64 << 10;

fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// A file read from a position of its own (clones of a `File` share one).
#[derive(Debug)]
pub struct At {
    file: File,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

enum Input {
    /// No reads at or past `limit` (`u64::MAX`: as far as the file goes).
    Plain {
        at: At,
        limit: u64,
    },
    Gz(Box<flate2::read::GzDecoder<At>>),
}

/// One file's records, from a point on.
pub struct Frames {
    input: Input,
    /// Device and inode.
    id: (u64, u64),
    buf: Vec<u8>,
    /// The unread bytes are `buf[head..tail]`.
    head: usize,
    tail: usize,
    /// The sizes around a record disagree, or the compressed stream is bad: what follows
    /// cannot be read.
    broken: bool,
    /// The time of the last record handed out.
    pub last_time: Option<i64>,
}

impl Frames {
    /// The records of a plain file from `start` (a record's start) up to `limit`.
    pub fn plain(file: File, start: u64, limit: u64) -> io::Result<Frames> {
        let m = file.metadata()?;
        Ok(Frames::new(
            Input::Plain {
                at: At { file, pos: start },
                limit,
            },
            (m.dev(), m.ino()),
        ))
    }

    /// The records of a gzip-compressed file.
    pub fn gz(file: File) -> io::Result<Frames> {
        let m = file.metadata()?;
        let decoder = flate2::read::GzDecoder::new(At { file, pos: 0 });
        Ok(Frames::new(
            Input::Gz(Box::new(decoder)),
            (m.dev(), m.ino()),
        ))
    }

    fn new(input: Input, id: (u64, u64)) -> Frames {
        Frames {
            input,
            id,
            buf: Vec::new(),
            head: 0,
            tail: 0,
            broken: false,
            last_time: None,
        }
    }

    /// Reads on past the limit given at first, as far as the file goes.
    pub fn unlimit(&mut self) {
        if let Input::Plain { limit, .. } = &mut self.input {
            *limit = u64::MAX;
        }
    }

    /// Whether `m` (of a path) is this file.
    pub fn is(&self, m: &std::fs::Metadata) -> bool {
        self.id == (m.dev(), m.ino())
    }

    /// How far the file was read.
    pub fn position(&self) -> u64 {
        match &self.input {
            Input::Plain { at, .. } => at.pos,
            Input::Gz(d) => d.get_ref().pos,
        }
    }

    /// The time of the last record in a plain file as it is now.
    pub fn last_record_time(&self) -> Option<Nanos> {
        let Input::Plain { at, .. } = &self.input else {
            return None;
        };
        let len = at.file.metadata().ok()?.len();
        last_time(&at.file, len).ok().flatten()
    }

    /// A plain file shorter than what was read of it was truncated (a log of one file is
    /// emptied when full): reading starts again from its beginning.
    pub fn rewind_if_truncated(&mut self) -> io::Result<bool> {
        let Input::Plain { at, .. } = &mut self.input else {
            return Ok(false);
        };
        if at.file.metadata()?.len() >= at.pos {
            return Ok(false);
        }
        at.pos = 0;
        self.head = 0;
        self.tail = 0;
        self.broken = false;
        Ok(true)
    }

    /// Passes over `n` records (all there are, if fewer).
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            if self.next_frame()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// The number of records from here to the end.
    pub fn count(&mut self) -> io::Result<u64> {
        let mut n = 0;
        while self.next_frame()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// The next record; `None` at the end of what can be read now (a record still being
    /// written waits for the rest). Records that do not decode are passed over.
    pub fn next_record(&mut self) -> io::Result<Option<Entry<'_>>> {
        let (start, end) = loop {
            let Some((start, end)) = self.next_frame()? else {
                return Ok(None);
            };
            if locallog::decode(&self.buf[start..end]).is_some() {
                break (start, end);
            }
        };
        let e = locallog::decode(&self.buf[start..end]).unwrap_or_default();
        self.last_time = Some(e.time_nano);
        Ok(Some(e))
    }

    /// Where the next record's bytes are in the buffer (it is taken).
    fn next_frame(&mut self) -> io::Result<Option<(usize, usize)>> {
        loop {
            if self.broken {
                return Ok(None);
            }
            let avail = self.tail - self.head;
            let mut wanted = FRAME;
            if avail >= FRAME {
                let size = size_at(&self.buf, self.head);
                if size > MAX_ENTRY {
                    self.broken = true;
                    return Ok(None);
                }
                wanted = size + 2 * FRAME;
                if avail >= wanted {
                    let start = self.head + FRAME;
                    let end = start + size;
                    self.head += wanted;
                    if size_at(&self.buf, end) != size {
                        self.broken = true;
                        return Ok(None);
                    }
                    return Ok(Some((start, end)));
                }
            }
            if !self.fill(wanted)? {
                return Ok(None);
            }
        }
    }

    /// Reads more after the unread bytes, with room for `wanted` of them; false at the end.
    fn fill(&mut self, wanted: usize) -> io::Result<bool> {
        if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        if self.buf.len() < wanted.max(BUF) {
            self.buf.resize(wanted.max(BUF), 0);
        }
        let room = &mut self.buf[self.tail..];
        let n = match &mut self.input {
            Input::Plain { at, limit } => {
                let want = (*limit).saturating_sub(at.pos).min(room.len() as u64) as usize;
                if want == 0 {
                    return Ok(false);
                }
                at.read(&mut room[..want])?
            }
            Input::Gz(d) => loop {
                match d.read(room) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(n) => break n,
                    // A bad stream ends the file (as a torn plain one does).
                    Err(_) => {
                        self.broken = true;
                        return Ok(false);
                    }
                }
            },
        };
        self.tail += n;
        Ok(n > 0)
    }
}

fn size_at(buf: &[u8], at: usize) -> usize {
    let mut frame = [0; FRAME];
    frame.copy_from_slice(&buf[at..at + FRAME]);
    locallog::frame_size(frame)
}

/// Blocks of a file read backwards, for the sizes after the records.
struct Back<'a> {
    file: &'a File,
    block: Vec<u8>,
    /// The block holds the file's bytes from `start`.
    start: u64,
}

impl Back<'_> {
    /// The size in the frame at `off`.
    fn size(&mut self, off: u64) -> io::Result<usize> {
        let end = off + FRAME as u64;
        if off < self.start || end > self.start + self.block.len() as u64 {
            let start = end.saturating_sub(BUF as u64);
            self.block.resize((end - start) as usize, 0);
            let mut got = 0;
            while got < self.block.len() {
                let n = read_at(self.file, &mut self.block[got..], start + got as u64)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                got += n;
            }
            self.start = start;
        }
        Ok(size_at(&self.block, (off - self.start) as usize))
    }
}

/// Where the last `n` records of the first `len` bytes of `file` start, and how many that is
/// (fewer when the file holds fewer: the offset is then 0); `None` when the sizes do not add
/// up (a record half written, a torn one): the caller counts forwards instead. Reads a block
/// of 64 KiB per 64 KiB of records.
pub fn tail_start(file: &File, len: u64, n: u64) -> io::Result<Option<(u64, u64)>> {
    let mut back = Back {
        file,
        block: Vec::new(),
        start: 0,
    };
    let (mut pos, mut found) = (len, 0);
    while found < n && pos > 0 {
        let Some(start) = record_before(&mut back, pos)? else {
            return Ok(None);
        };
        pos = start;
        found += 1;
    }
    Ok(Some((pos, found)))
}

/// The start of the record that ends at `pos`, if its two sizes agree.
fn record_before(back: &mut Back<'_>, pos: u64) -> io::Result<Option<u64>> {
    let frame = FRAME as u64;
    if pos < 2 * frame {
        return Ok(None);
    }
    let size = back.size(pos - frame)?;
    let Some(start) = pos.checked_sub(size as u64 + 2 * frame) else {
        return Ok(None);
    };
    if size > MAX_ENTRY || back.size(start)? != size {
        return Ok(None);
    }
    Ok(Some(start))
}

/// The time of the last record of the first `len` bytes of a plain file (`None`: no record,
/// or none that can be told).
pub fn last_time(file: &File, len: u64) -> io::Result<Option<Nanos>> {
    let mut back = Back {
        file,
        block: Vec::new(),
        start: 0,
    };
    let Some(start) = record_before(&mut back, len)? else {
        return Ok(None);
    };
    let mut frames = Frames::plain(file.try_clone()?, start, len)?;
    Ok(frames.next_record()?.map(|e| Nanos::from(e.time_nano)))
}

/// The time of a compressed file's last record, from its gzip header (`{"lastTime":...}` in
/// the extra field, as dockerd and the monitor write it).
pub fn gz_last_time(file: &File) -> Option<Nanos> {
    let mut decoder = flate2::read::GzDecoder::new(At {
        file: file.try_clone().ok()?,
        pos: 0,
    });
    if decoder.header().is_none() {
        let _ = decoder.read(&mut [0u8; 1]);
    }
    let extra = decoder.header()?.extra()?;
    let v: serde_json::Value = serde_json::from_slice(extra).ok()?;
    super::record::parse_time(v["lastTime"].as_str()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use super::*;

    /// A file of `n` records `line I` at times 1000 + I.
    fn log(n: i64) -> (File, Vec<u64>) {
        let mut f = tempfile::tempfile().unwrap();
        let mut starts = Vec::new();
        let mut out = Vec::new();
        for i in 0..n {
            starts.push(out.len() as u64);
            let line = format!("line {i}");
            let e = Entry {
                source: b"stdout",
                time_nano: 1000 + i,
                line: line.as_bytes(),
                ..Entry::default()
            };
            locallog::encode(&e, &mut out);
        }
        f.write_all(&out).unwrap();
        (f, starts)
    }

    fn lines(frames: &mut Frames) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(e) = frames.next_record().unwrap() {
            out.push(String::from_utf8(e.line.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn forwards_backwards_and_a_growing_file() {
        let (mut f, starts) = log(5000);
        let len = f.metadata().unwrap().len();
        for n in [1u64, 2, 4999] {
            let (start, found) = tail_start(&f, len, n).unwrap().unwrap();
            assert_eq!((start, found), (starts[5000 - n as usize], n));
        }
        assert_eq!(tail_start(&f, len, 9999).unwrap(), Some((0, 5000)));
        assert_eq!(last_time(&f, len).unwrap(), Some(5999));
        let mut frames = Frames::plain(f.try_clone().unwrap(), starts[4998], len).unwrap();
        assert_eq!(lines(&mut frames), ["line 4998", "line 4999"]);
        assert_eq!(frames.last_time, Some(5999));
        // A record written in two pieces is read once whole.
        let mut more = Vec::new();
        let e = Entry {
            source: b"stderr",
            line: b"later",
            ..Entry::default()
        };
        locallog::encode(&e, &mut more);
        f.write_all(&more[..7]).unwrap();
        frames.unlimit();
        assert!(lines(&mut frames).is_empty());
        // Half a record at the end: the backward walk cannot start there.
        assert_eq!(tail_start(&f, len + 7, 1).unwrap(), None);
        f.write_all(&more[7..]).unwrap();
        assert_eq!(lines(&mut frames), ["later"]);
        let mut all = Frames::plain(f, 0, u64::MAX).unwrap();
        assert_eq!(all.count().unwrap(), 5001);
    }

    #[test]
    fn bad_sizes_end_the_file() {
        let (mut f, _) = log(3);
        f.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2]).unwrap();
        let mut frames = Frames::plain(f, 0, u64::MAX).unwrap();
        assert_eq!(lines(&mut frames).len(), 3);
        assert!(frames.broken);
    }

    #[test]
    fn compressed_files_and_their_last_time() {
        let (f, _) = log(100);
        let mut data = Vec::new();
        At { file: f, pos: 0 }.read_to_end(&mut data).unwrap();
        let mut gz = tempfile::tempfile().unwrap();
        let extra = br#"{"lastTime":"1970-01-01T00:00:00.000001099Z"}"#.to_vec();
        let mut w = flate2::GzBuilder::new()
            .extra(extra)
            .write(gz.try_clone().unwrap(), flate2::Compression::default());
        w.write_all(&data).unwrap();
        w.finish().unwrap();
        gz.flush().unwrap();
        assert_eq!(gz_last_time(&gz), Some(1099));
        let mut frames = Frames::gz(gz.try_clone().unwrap()).unwrap();
        frames.skip(98).unwrap();
        assert_eq!(lines(&mut frames), ["line 98", "line 99"]);
        assert_eq!(Frames::gz(gz).unwrap().count().unwrap(), 100);
    }
}
