//! The container log, in the format of its log driver ([`Format`]): Docker's json-file, one
//! JSON object per line of output,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-22T21:00:00.123456789Z"}`, or dockerd's
//! `local` records ([`crate::locallog`]), or nothing at all (`none`). Records are appended
//! and written with one write(2) each so that a follower sees them at once; rotated by size
//! (`local`: the rotated files compressed a few milliseconds at a time between the monitor's
//! other work, [`LogFile::work`]).
//!
//! Writing never stops the container: a record that cannot be written (a full disk, an I/O
//! error) is counted and dropped, the output keeps being drained, and once writing works again
//! (the next record, or a retry every [`RETRY`]) a marker record on stderr says how many were
//! lost, why and when: `berth: 1399 log lines lost (no space left on device) from T1 to T2`.
//! A record cut short by the error is cut off the file again, so no torn line is left.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::locallog::{self, Compression, Entry};

/// Docker splits lines longer than this into several records.
pub const MAX_LINE: usize = 16 * 1024;

/// How often the marker of lost records is tried while nothing else is written.
pub const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The two streams a container writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout = 0,
    Stderr = 1,
}

impl LogStream {
    pub fn name(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

/// Records lost since the last one written.
#[derive(Debug, Default)]
struct Lost {
    count: u64,
    /// Why the first was lost.
    reason: String,
    first: Option<SystemTime>,
    last: Option<SystemTime>,
    /// When the marker is tried next without a record to write.
    retry_at: Option<Instant>,
}

/// How records are written: the container's log driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `json-file`.
    #[default]
    JsonFile,
    /// `local`: rotated files gzip-compressed with `compress`.
    Local { compress: bool },
    /// `none`: nothing is written, no file made.
    None,
    /// The CRI's format, which kubelet reads and rotates (renaming the file, then asking for
    /// a reopen: [`LogFile::reopen`]): `TIME STREAM TAG CONTENT` per line, the tag `F` for a
    /// full line and `P` for a piece of one cut at [`MAX_LINE`].
    Cri,
}

/// A line of `local` records cut at [`MAX_LINE`]: its id and the ordinal of its next piece.
#[derive(Debug, Clone)]
struct Run {
    id: String,
    ordinal: i32,
}

/// The open log file, its rotation policy and the unfinished line of each stream.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    format: Format,
    /// `None` until (re)opened: the first open or the one after a rotation failed.
    file: Option<File>,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
    lost: Lost,
    /// The file ends with part of a record that could not be cut off: the next write starts
    /// with a newline, leaving it a line of its own that readers skip (`local`, whose records
    /// have no separator to start again after: the file is rotated first).
    torn: bool,
    /// `local`: per stream, the line being written in pieces.
    runs: [Option<Run>; 2],
    /// `local`: the time of the last record written (for a compressed file's header, where
    /// readers find it again).
    last_time: Option<SystemTime>,
    /// `local`: the rotated file being compressed.
    compression: Option<Compression>,
}

fn open(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::Io {
            what: "opening log",
            path: path.to_path_buf(),
            source,
        })
}

/// The words of an error for the marker, as `strerror` has them.
fn reason(e: &LogError) -> String {
    let LogError::Io { source, .. } = e;
    match source.raw_os_error() {
        Some(libc::ENOSPC) => "no space left on device".into(),
        Some(libc::EIO) => "input/output error".into(),
        Some(libc::EDQUOT) => "disk quota exceeded".into(),
        Some(libc::EFBIG) => "file too large".into(),
        Some(libc::EROFS) => "read-only file system".into(),
        _ => source.to_string(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// One record as a line of a json-file log.
fn encode(stream: LogStream, line: &[u8], time: SystemTime) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let record = Record {
        log: &text,
        stream: stream.name(),
        time: rfc3339(time),
    };
    let mut bytes = serde_json::to_vec(&record).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// One line of a CRI log: a line ending with its newline (or the last, unfinished line of a
/// stream, which [`LogFile::finish`] ends) is full (`F`), a piece cut at [`MAX_LINE`] partial
/// (`P`).
fn encode_cri(stream: LogStream, line: &[u8], time: SystemTime) -> Vec<u8> {
    let (text, tag) = match line.strip_suffix(b"\n") {
        Some(text) => (text, "F"),
        None => (line, "P"),
    };
    let head = format!("{} {} {tag} ", rfc3339(time), stream.name());
    let mut out = Vec::with_capacity(head.len() + text.len() + 1);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// One `local` record of `line` (its newline, if it has one, ends the line: the record is
/// whole, or the last piece of `run`; without one it is a piece, the first of a new run).
/// Markers pass no run: they are whole lines of their own.
fn encode_local(
    stream: LogStream,
    line: &[u8],
    time: SystemTime,
    run: Option<&mut Option<Run>>,
) -> Vec<u8> {
    let (text, ends) = match line.strip_suffix(b"\n") {
        Some(text) => (text, true),
        None => (line, false),
    };
    let time_nano = locallog::nanos(time);
    let mut entry = Entry {
        source: stream.name().as_bytes(),
        time_nano,
        line: text,
        ..Entry::default()
    };
    let mut out = Vec::with_capacity(text.len() + 64);
    let Some(run) = run else {
        locallog::encode(&entry, &mut out);
        return out;
    };
    if ends && run.is_none() {
        locallog::encode(&entry, &mut out);
        return out;
    }
    let piece = run.get_or_insert_with(|| Run {
        id: format!("{:x}{:04x}", time_nano, stream as u8),
        ordinal: 1,
    });
    entry.partial = true;
    entry.last = ends;
    entry.id = piece.id.as_bytes();
    entry.ordinal = piece.ordinal;
    locallog::encode(&entry, &mut out);
    piece.ordinal += 1;
    if ends {
        *run = None;
    }
    out
}

impl LogFile {
    /// Opens (appends to) `path`. `max_file` counts the files kept in all, `path` included.
    /// A log that cannot be opened now is opened at the first record that can be written.
    /// A compressed log's `LOG.1` left uncompressed (the monitor was killed while it
    /// compressed it) is compressed again.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32, format: Format) -> LogFile {
        let file = (format != Format::None).then(|| open(path).ok()).flatten();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        let mut log = LogFile {
            path: path.to_path_buf(),
            format,
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
            lost: Lost::default(),
            torn: false,
            runs: [None, None],
            last_time: None,
            compression: None,
        };
        let left = locallog::rotated(path, 1, false);
        if log.compresses() && left.exists() {
            log.compression = Compression::start(&left, None).ok();
        }
        log
    }

    fn compresses(&self) -> bool {
        self.format == Format::Local { compress: true } && self.max_file > 1
    }

    /// Whether a rotated file is being compressed ([`LogFile::work`] has something to do).
    pub fn busy(&self) -> bool {
        self.compression.is_some()
    }

    /// Compresses the rotated file a little further (a few milliseconds' work).
    pub fn work(&mut self) {
        self.compress(Some(Compression::STEP));
    }

    /// Ends the compression under way (at the monitor's exit, or before another rotation).
    pub fn close(&mut self) {
        self.compress(None);
    }

    fn compress(&mut self, budget: Option<Duration>) {
        let Some(job) = self.compression.as_mut() else {
            return;
        };
        match job.step(budget) {
            Ok(false) => {}
            Ok(true) => self.compression = None,
            Err(e) => {
                // The rotated file stays as it is: readers read it uncompressed.
                eprintln!("berth-monitor: compressing {job:?}: {e}");
                self.compression = None;
            }
        }
    }

    /// Output of `stream`: complete lines become records; the rest waits for its newline.
    /// Every record is tried; the error is the first of a run of lost records, once.
    pub fn write(&mut self, stream: LogStream, mut data: &[u8]) -> Result<(), LogError> {
        if self.format == Format::None {
            return Ok(());
        }
        let mut first_error = None;
        while !data.is_empty() {
            let buf = &mut self.partial[stream as usize];
            let room = MAX_LINE - buf.len();
            let take = data[..data.len().min(room)]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + 1);
            match take {
                Some(n) => {
                    buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                }
                None => {
                    let n = data.len().min(room);
                    buf.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if buf.len() < MAX_LINE {
                        break;
                    }
                }
            }
            let line = std::mem::take(&mut self.partial[stream as usize]);
            if let Err(e) = self.record(stream, &line) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The end of `stream`: its unfinished line becomes a record of its own.
    pub fn finish(&mut self, stream: LogStream) -> Result<(), LogError> {
        let mut line = std::mem::take(&mut self.partial[stream as usize]);
        if self.format == Format::Cri && !line.is_empty() {
            // The stream's last line is a full one in the CRI's format (as containerd tags
            // what it reads before the end).
            line.push(b'\n');
        }
        let result = if line.is_empty() {
            Ok(())
        } else {
            self.record(stream, &line)
        };
        self.runs[stream as usize] = None;
        result
    }

    /// Closes the file and opens its path again (a new file if it was renamed away): the
    /// CRI's `ReopenContainerLog`, after kubelet rotated the log.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        if self.format == Format::None {
            return Ok(());
        }
        self.file = None;
        let file = open(&self.path)?;
        self.size = file.metadata().map_or(0, |m| m.len());
        self.file = Some(file);
        Ok(())
    }

    /// Records lost and not yet reported in the log.
    pub fn lost(&self) -> u64 {
        self.lost.count
    }

    /// How long until [`LogFile::retry`] has something to do.
    pub fn retry_in(&self) -> Option<Duration> {
        (self.lost.count > 0).then(|| {
            self.lost.retry_at.map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            })
        })
    }

    /// Writes the marker of the lost records if it is time to try again (or `now`).
    pub fn retry(&mut self, now: bool) {
        let due = self.lost.retry_at.is_none_or(|t| Instant::now() >= t);
        if self.lost.count == 0 || !(due || now) {
            return;
        }
        if self.write_marker().is_err() {
            self.lost.retry_at = Some(Instant::now() + RETRY);
        }
    }

    /// Writes one record (after the marker of those lost before it); if it cannot, counts it
    /// lost. The error only for the first of a run.
    fn record(&mut self, stream: LogStream, line: &[u8]) -> Result<(), LogError> {
        let now = SystemTime::now();
        let result = if self.lost.count > 0 {
            self.write_marker()
        } else {
            Ok(())
        }
        .and_then(|()| {
            let bytes = match self.format {
                Format::Local { .. } => {
                    // A piece's place in its line counts whether or not it is written.
                    let run = &mut self.runs[stream as usize];
                    encode_local(stream, line, now, Some(run))
                }
                Format::Cri => encode_cri(stream, line, now),
                _ => encode(stream, line, now),
            };
            self.append(&bytes, now)
        });
        let Err(e) = result else {
            return Ok(());
        };
        let lost = &mut self.lost;
        lost.count += 1;
        lost.first.get_or_insert(now);
        lost.last = Some(now);
        lost.retry_at = Some(Instant::now() + RETRY);
        if lost.count == 1 {
            lost.reason = reason(&e);
            return Err(e);
        }
        Ok(())
    }

    /// The marker of the lost records, on stderr: written, or nothing changes.
    fn write_marker(&mut self) -> Result<(), LogError> {
        let lost = &self.lost;
        let first = lost.first.map(rfc3339).unwrap_or_default();
        let last = lost.last.map(rfc3339).unwrap_or_default();
        let text = if lost.count == 1 {
            format!("berth: 1 log line lost ({}) at {first}\n", lost.reason)
        } else {
            format!(
                "berth: {} log lines lost ({}) from {first} to {last}\n",
                lost.count, lost.reason
            )
        };
        let now = SystemTime::now();
        let bytes = match self.format {
            Format::Local { .. } => encode_local(LogStream::Stderr, text.as_bytes(), now, None),
            _ => encode(LogStream::Stderr, text.as_bytes(), now),
        };
        self.append(&bytes, now)?;
        self.lost = Lost::default();
        Ok(())
    }

    /// Appends one encoded record, rotating first if it would not fit. What a failed write
    /// left of it is cut off.
    fn append(&mut self, bytes: &[u8], time: SystemTime) -> Result<(), LogError> {
        let err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io { what, path, source }
        };
        if let (Some(max), Some(_)) = (self.max_size, &self.file) {
            if self.size > 0 && self.size + bytes.len() as u64 > max {
                // A rotation that fails (but for the new file) loses nothing: the record goes
                // to the current file, and the next one tries again.
                let _ = self.rotate();
            }
        }
        if self.torn && matches!(self.format, Format::Local { .. }) {
            // Records cannot be told apart after a torn one: the next goes to a new file.
            self.rotate()?;
            self.torn = false;
        }
        let file = match self.file.take() {
            Some(f) => f,
            None => {
                let f = open(&self.path)?;
                self.size = f.metadata().map_or(0, |m| m.len());
                f
            }
        };
        let file = self.file.insert(file);
        if self.torn {
            file.write_all(b"\n")
                .map_err(err("writing log", &self.path))?;
            self.size += 1;
            self.torn = false;
        }
        let mut written = 0;
        while written < bytes.len() {
            match file.write(&bytes[written..]) {
                Ok(0) => {
                    let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                    return Err(self.cut(written, e));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.cut(written, e)),
            }
        }
        self.size += bytes.len() as u64;
        self.last_time = Some(time);
        Ok(())
    }

    /// After a write failed with `written` bytes of the record in the file: cuts them off, or
    /// marks the file torn if it cannot.
    fn cut(&mut self, written: usize, source: std::io::Error) -> LogError {
        if written > 0 {
            let cut = self
                .file
                .as_ref()
                .is_some_and(|f| f.set_len(self.size).is_ok());
            if !cut {
                self.size += written as u64;
                self.torn = true;
            }
        }
        LogError::Io {
            what: "writing log",
            path: self.path.clone(),
            source,
        }
    }

    /// LOG.(N-2) → LOG.(N-1), ..., LOG → LOG.1, and a new LOG; with one file, truncation.
    /// The shifts are skipped for missing files, so a rotation tried again after a failure
    /// does not shift twice. A compressed log shifts `LOG.k.gz` (and a `LOG.k` left
    /// uncompressed), and LOG.1 is then compressed to LOG.1.gz by [`LogFile::work`].
    fn rotate(&mut self) -> Result<(), LogError> {
        let err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io { what, path, source }
        };
        if self.max_file <= 1 {
            if let Some(f) = &self.file {
                f.set_len(0).map_err(err("truncating log", &self.path))?;
            }
            self.size = 0;
            return Ok(());
        }
        let compress = self.compresses();
        // The file compressed since the last rotation is finished first (as dockerd does).
        self.close();
        let gz_too: &[bool] = if compress { &[false, true] } else { &[false] };
        if compress {
            for &gz in gz_too {
                let oldest = locallog::rotated(&self.path, self.max_file - 1, gz);
                if let Err(e) = std::fs::remove_file(&oldest) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(err("removing log", &oldest)(e));
                    }
                }
            }
        }
        for n in (1..self.max_file - 1).rev() {
            for &gz in gz_too {
                let from = locallog::rotated(&self.path, n, gz);
                if from.exists() {
                    std::fs::rename(&from, locallog::rotated(&self.path, n + 1, gz))
                        .map_err(err("rotating log", &from))?;
                }
            }
        }
        let first = locallog::rotated(&self.path, 1, false);
        std::fs::rename(&self.path, &first).map_err(err("rotating log", &self.path))?;
        self.file = None;
        self.size = 0;
        if compress {
            match Compression::start(&first, self.last_time) {
                Ok(job) => self.compression = Some(job),
                Err(e) => eprintln!("berth-monitor: compressing {}: {e}", first.display()),
            }
        }
        self.file = Some(open(&self.path)?);
        Ok(())
    }
}

#[cfg(test)]
#[path = "logfile_tests.rs"]
mod tests;
