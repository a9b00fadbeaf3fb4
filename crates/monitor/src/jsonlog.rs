//! The container log in Docker's json-file format: one JSON object per line of output,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-22T21:00:00.123456789Z"}`, appended and
//! written with one write(2) per record so that a follower sees it at once; rotated by size.
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
    fn name(self) -> &'static str {
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

/// The open log file, its rotation policy and the unfinished line of each stream.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    /// `None` until (re)opened: the first open or the one after a rotation failed.
    file: Option<File>,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
    lost: Lost,
    /// The file ends with part of a record that could not be cut off: the next write starts
    /// with a newline, leaving it a line of its own that readers skip.
    torn: bool,
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

/// One record as a line of the file.
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

impl JsonLog {
    /// Opens (appends to) `path`. `max_file` counts the files kept in all, `path` included.
    /// A log that cannot be opened now is opened at the first record that can be written.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> JsonLog {
        let file = open(path).ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
            lost: Lost::default(),
            torn: false,
        }
    }

    /// Output of `stream`: complete lines become records; the rest waits for its newline.
    /// Every record is tried; the error is the first of a run of lost records, once.
    pub fn write(&mut self, stream: LogStream, mut data: &[u8]) -> Result<(), LogError> {
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
        let line = std::mem::take(&mut self.partial[stream as usize]);
        if line.is_empty() {
            return Ok(());
        }
        self.record(stream, &line)
    }

    /// Records lost and not yet reported in the log.
    pub fn lost(&self) -> u64 {
        self.lost.count
    }

    /// How long until [`JsonLog::retry`] has something to do.
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
        .and_then(|()| self.append(&encode(stream, line, now)));
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
        self.append(&encode(
            LogStream::Stderr,
            text.as_bytes(),
            SystemTime::now(),
        ))?;
        self.lost = Lost::default();
        Ok(())
    }

    /// Appends one encoded record, rotating first if it would not fit. What a failed write
    /// left of it is cut off.
    fn append(&mut self, bytes: &[u8]) -> Result<(), LogError> {
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
    /// does not shift twice.
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
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..self.max_file - 1).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1)).map_err(err("rotating log", &from))?;
            }
        }
        std::fs::rename(&self.path, numbered(1)).map_err(err("rotating log", &self.path))?;
        self.file = None;
        self.size = 0;
        self.file = Some(open(&self.path)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_partials_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, None, 1);
        log.write(LogStream::Stdout, b"a\nb").unwrap();
        log.write(LogStream::Stderr, b"e\n").unwrap();
        log.write(LogStream::Stdout, b"c\nd").unwrap();
        log.write(LogStream::Stdout, &vec![b'x'; MAX_LINE + 10])
            .unwrap();
        log.finish(LogStream::Stdout).unwrap();
        let r = records(&path);
        let logs: Vec<_> = r.iter().map(|v| v["log"].as_str().unwrap().len()).collect();
        assert_eq!(r[0]["log"], "a\n");
        assert_eq!(r[1]["stream"], "stderr");
        assert_eq!(r[2]["log"], "bc\n");
        assert_eq!(logs[3..], [MAX_LINE, 11]);
        assert!(r[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    /// A log whose file is `/dev/full` (every write fails with ENOSPC) until `restore`.
    fn full(log: &mut JsonLog) -> Option<File> {
        let dev_full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        log.file.replace(dev_full)
    }

    #[test]
    fn lost_records_are_counted_and_marked_once_writing_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, None, 1);
        log.write(LogStream::Stdout, b"before\n").unwrap();
        let real = full(&mut log);
        // The first loss of a run is an error, once; every record is tried and counted.
        let e = log
            .write(LogStream::Stdout, b"lost 1\nlost 2\n")
            .unwrap_err();
        assert_eq!(reason(&e), "no space left on device");
        log.write(LogStream::Stderr, b"lost 3\n").unwrap();
        assert_eq!(log.lost(), 3);
        assert!(log.retry_in().is_some());
        log.retry(true);
        assert_eq!(log.lost(), 3, "the marker cannot be written either");
        log.file = real;
        log.write(LogStream::Stdout, b"after\n").unwrap();
        assert_eq!(log.lost(), 0);
        assert!(log.retry_in().is_none());
        let r = records(&path);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0]["log"], "before\n");
        assert_eq!(r[1]["stream"], "stderr");
        let marker = r[1]["log"].as_str().unwrap();
        assert!(
            marker.starts_with("berth: 3 log lines lost (no space left on device) from 20"),
            "{marker}"
        );
        assert!(marker.ends_with("Z\n"), "{marker}");
        assert_eq!(r[2]["log"], "after\n");
    }

    #[test]
    fn the_marker_comes_without_new_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, None, 1);
        let real = full(&mut log);
        assert!(log.write(LogStream::Stdout, b"lost\n").is_err());
        log.file = real;
        log.retry(false);
        assert_eq!(log.lost(), 1, "not before RETRY");
        log.retry(true);
        assert_eq!(log.lost(), 0);
        let r = records(&path);
        assert_eq!(r.len(), 1);
        assert!(r[0]["log"]
            .as_str()
            .unwrap()
            .starts_with("berth: 1 log line lost (no space left on device) at "));
    }

    #[test]
    fn a_log_that_cannot_be_opened_yet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later").join("c.log");
        let mut log = JsonLog::open(&path, None, 1);
        assert!(log.write(LogStream::Stdout, b"lost\n").is_err());
        std::fs::create_dir(dir.path().join("later")).unwrap();
        log.write(LogStream::Stdout, b"kept\n").unwrap();
        let r = records(&path);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1]["log"], "kept\n");
    }

    #[test]
    fn rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, Some(200), 3);
        for i in 0..20 {
            log.write(LogStream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let p1 = dir.path().join("c.log.1");
        let p2 = dir.path().join("c.log.2");
        assert!(p1.exists() && p2.exists() && !dir.path().join("c.log.3").exists());
        for p in [&path, &p1, &p2] {
            assert!(std::fs::metadata(p).unwrap().len() <= 200);
        }
        assert_eq!(records(&path).last().unwrap()["log"], "line 19\n");
    }
}
