//! dockerd's `local` log format: each record a protobuf `LogEntry` (`source` = 1,
//! `time_nano` = 2, `line` = 3, `partial` = 4, `partial_log_metadata` = 5 {`last` = 1,
//! `id` = 2, `ordinal` = 3}) between two big-endian `u32` sizes, so that the file can be read
//! forwards (the size before) and backwards (the size after). The line is kept without its
//! newline; a piece of a line cut at [`crate::logfile::MAX_LINE`] is `partial`, the piece that
//! ends it `partial` and `last`. Rotated files are gzip-compressed (`LOG.1.gz`...), the time of
//! their last record in the gzip header's extra field as dockerd writes it
//! (`{"lastTime":"..."}`), a few slices at a time between the monitor's other work
//! ([`Compression`]).
//!
//! The engine's reader decodes with [`decode`], so both sides agree on the format.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The size of each of the two frames around a record.
pub const FRAME: usize = 4;

/// The largest record a reader accepts (dockerd's `maxMsgLen`).
pub const MAX_ENTRY: usize = 1_000_000;

/// One record, borrowed from its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry<'a> {
    /// `stdout` or `stderr`.
    pub source: &'a [u8],
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
    /// The text, without its newline.
    pub line: &'a [u8],
    pub partial: bool,
    /// With `partial`: this piece ends the line.
    pub last: bool,
    /// With `partial`: the pieces of one line share it.
    pub id: &'a [u8],
    /// With `partial`: the piece's place in its line, from 1.
    pub ordinal: i32,
}

impl Entry<'_> {
    /// Whether the text is followed by a newline when read (a whole line, or the piece that
    /// ends one), as dockerd's reader adds it.
    pub fn ends_line(&self) -> bool {
        !self.partial || self.last
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_uint(out: &mut Vec<u8>, field: u64, v: u64) {
    if v == 0 {
        return;
    }
    put_varint(out, field << 3);
    put_varint(out, v);
}

/// Appends `e` to `out`, framed (proto3: fields at their zero value are left out).
pub fn encode(e: &Entry<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME]);
    put_bytes(out, 1, e.source);
    put_uint(out, 2, e.time_nano as u64);
    put_bytes(out, 3, e.line);
    put_uint(out, 4, u64::from(e.partial));
    if e.partial {
        let mut meta = Vec::with_capacity(e.id.len() + 8);
        put_uint(&mut meta, 1, u64::from(e.last));
        put_bytes(&mut meta, 2, e.id);
        put_uint(&mut meta, 3, i64::from(e.ordinal) as u64);
        put_varint(out, 5 << 3 | 2);
        put_varint(out, meta.len() as u64);
        out.extend_from_slice(&meta);
    }
    let size = ((out.len() - start - FRAME) as u32).to_be_bytes();
    out[start..start + FRAME].copy_from_slice(&size);
    out.extend_from_slice(&size);
}

/// A protobuf reader over one message's bytes.
struct Fields<'a>(&'a [u8]);

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn skip(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// The next field and its value; `None` at the end, `Some(None)` for bad bytes.
    fn next_field(&mut self) -> Option<Option<(u64, Value<'a>)>> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => self.skip(8).map(|_| Value::Other)?,
                2 => {
                    let n = usize::try_from(self.varint()?).ok()?;
                    Value::Bytes(self.skip(n)?)
                }
                5 => self.skip(4).map(|_| Value::Other)?,
                _ => return None,
            };
            Some((key >> 3, value))
        })();
        Some(field)
    }
}

/// The record in `msg` (the bytes between the frames); `None` if they are not one. Fields
/// it does not know (dockerd's `attrs`) are passed over.
pub fn decode(msg: &[u8]) -> Option<Entry<'_>> {
    let mut e = Entry::default();
    let mut fields = Fields(msg);
    while let Some(field) = fields.next_field() {
        match field? {
            (1, Value::Bytes(b)) => e.source = b,
            (2, Value::Varint(v)) => e.time_nano = v as i64,
            (3, Value::Bytes(b)) => e.line = b,
            (4, Value::Varint(v)) => e.partial = v != 0,
            (5, Value::Bytes(meta)) => {
                let mut meta = Fields(meta);
                while let Some(field) = meta.next_field() {
                    match field? {
                        (1, Value::Varint(v)) => e.last = v != 0,
                        (2, Value::Bytes(b)) => e.id = b,
                        (3, Value::Varint(v)) => e.ordinal = v as i32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(e)
}

/// The size in a frame.
pub fn frame_size(frame: [u8; FRAME]) -> usize {
    u32::from_be_bytes(frame) as usize
}

/// `LOG.n`, `LOG.n.gz`.
pub fn rotated(log: &Path, n: u32, gz: bool) -> PathBuf {
    let mut p = log.as_os_str().to_os_string();
    p.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
    PathBuf::from(p)
}

/// The gzip header's extra field dockerd writes: the time of the file's last record.
pub fn gz_extra(last: SystemTime) -> Vec<u8> {
    let time = humantime::format_rfc3339_nanos(last).to_string();
    serde_json::json!({ "lastTime": time })
        .to_string()
        .into_bytes()
}

/// Nanoseconds since the epoch of a time.
pub fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// What is read and compressed at a time.
const SLICE: usize = 64 << 10;

/// A rotated file `LOG.1` being compressed to `LOG.1.gz`, a step at a time; `LOG.1` is
/// removed once the compressed file is complete, so a reader finds one of them whole.
pub struct Compression {
    src: File,
    src_path: PathBuf,
    dst_path: PathBuf,
    encoder: Option<flate2::write::GzEncoder<File>>,
    offset: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compression")
            .field("src", &self.src_path)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Compression {
    /// How long a step works before it hands the monitor's loop back.
    pub const STEP: Duration = Duration::from_millis(5);

    /// Starts compressing `src` into `src.gz` (made anew), with `last` in its header.
    pub fn start(src: &Path, last: Option<SystemTime>) -> io::Result<Compression> {
        let file = File::open(src)?;
        let mut dst = src.as_os_str().to_os_string();
        dst.push(".gz");
        let dst_path = PathBuf::from(dst);
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dst_path)?;
        let mut builder = flate2::GzBuilder::new();
        if let Some(t) = last {
            builder = builder.extra(gz_extra(t));
        }
        Ok(Compression {
            src: file,
            src_path: src.to_path_buf(),
            dst_path,
            encoder: Some(builder.write(out, flate2::Compression::default())),
            offset: 0,
            buf: Vec::new(),
        })
    }

    /// Compresses for a few milliseconds (`budget`, or to the end with `None`); true once the
    /// compressed file is complete and the source removed. On an error the compressed file is
    /// removed and the source kept (readers read it as it is).
    pub fn step(&mut self, budget: Option<Duration>) -> io::Result<bool> {
        let result = self.work(budget);
        if result.is_err() {
            self.encoder = None;
            let _ = std::fs::remove_file(&self.dst_path);
        }
        result
    }

    fn work(&mut self, budget: Option<Duration>) -> io::Result<bool> {
        let started = Instant::now();
        self.buf.resize(SLICE, 0);
        loop {
            let Some(encoder) = self.encoder.as_mut() else {
                return Ok(true);
            };
            let n = loop {
                match self.src.read_at(&mut self.buf, self.offset) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r?,
                }
            };
            if n == 0 {
                let out = encoder.try_finish().and_then(|()| {
                    self.encoder
                        .take()
                        .map_or(Ok(None), |e| e.finish().map(Some))
                })?;
                if let Some(out) = out {
                    out.sync_all()?;
                }
                self.buf = Vec::new();
                std::fs::remove_file(&self.src_path)?;
                return Ok(true);
            }
            encoder.write_all(&self.buf[..n])?;
            self.offset += n as u64;
            if budget.is_some_and(|b| started.elapsed() >= b) {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn framed(e: &Entry<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(e, &mut out);
        out
    }

    #[test]
    fn round_trip_and_frames() {
        let e = Entry {
            source: b"stderr",
            time_nano: 1_700_000_000_123_456_789,
            line: b"hello",
            ..Entry::default()
        };
        let bytes = framed(&e);
        let size = frame_size(bytes[..4].try_into().unwrap());
        assert_eq!(size + 8, bytes.len());
        assert_eq!(bytes[bytes.len() - 4..], bytes[..4]);
        assert_eq!(decode(&bytes[4..4 + size]).unwrap(), e);
        assert!(e.ends_line());
        // Exactly what gogo-protobuf writes for it.
        assert_eq!(bytes[4], 0x0a);
        assert_eq!(&bytes[5..12], b"\x06stderr");
        assert_eq!(bytes[12], 0x10);

        let piece = Entry {
            source: b"stdout",
            time_nano: 1,
            line: b"",
            partial: true,
            last: false,
            id: b"abc",
            ordinal: 2,
        };
        let bytes = framed(&piece);
        assert_eq!(decode(&bytes[4..bytes.len() - 4]).unwrap(), piece);
        assert!(!piece.ends_line());
        let negative = Entry {
            time_nano: -5,
            ..Entry::default()
        };
        let bytes = framed(&negative);
        assert_eq!(decode(&bytes[4..bytes.len() - 4]).unwrap().time_nano, -5);
    }

    #[test]
    fn bad_bytes_are_not_records() {
        for bad in [
            &b"\x0a\x10ab"[..],
            b"\x0a",
            b"\x13",
            b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(decode(bad).is_none(), "{bad:?}");
        }
        // Unknown fields (dockerd's attrs, field 6) are passed over.
        let mut msg = b"\x32\x03k=v".to_vec();
        msg.extend_from_slice(b"\x1a\x02hi");
        assert_eq!(decode(&msg).unwrap().line, b"hi");
    }

    #[test]
    fn compression_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("c.log.1");
        let data: Vec<u8> = (0..400_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&src, &data).unwrap();
        let last = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_001);
        let mut job = Compression::start(&src, Some(last)).unwrap();
        let mut steps = 0;
        while !job.step(Some(Duration::ZERO)).unwrap() {
            steps += 1;
            assert!(src.exists());
        }
        assert!(steps > 10, "{steps}");
        assert!(!src.exists());
        let gz = File::open(dir.path().join("c.log.1.gz")).unwrap();
        let mut decoder = flate2::read::GzDecoder::new(gz);
        let mut back = Vec::new();
        decoder.read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let extra = decoder.header().unwrap().extra().unwrap();
        let v: serde_json::Value = serde_json::from_slice(extra).unwrap();
        assert_eq!(v["lastTime"], "2023-11-14T22:13:20.000000001Z");
    }
}
