//! The container log in Docker's json-file format: one JSON object per line of output,
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-22T21:00:00.123456789Z"}`, appended and
//! written with one write(2) per record so that a follower sees it at once; rotated by size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// Docker splits lines longer than this into several records.
pub const MAX_LINE: usize = 16 * 1024;

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

/// The open log file, its rotation policy and the unfinished line of each stream.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    partial: [Vec<u8>; 2],
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

impl JsonLog {
    /// Opens (appends to) `path`. `max_file` counts the files kept in all, `path` included.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> Result<JsonLog, LogError> {
        let file = open(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Output of `stream`: complete lines become records; the rest waits for its newline.
    pub fn write(&mut self, stream: LogStream, mut data: &[u8]) -> Result<(), LogError> {
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
            self.record(stream, &line)?;
        }
        Ok(())
    }

    /// The end of `stream`: its unfinished line becomes a record of its own.
    pub fn finish(&mut self, stream: LogStream) -> Result<(), LogError> {
        let line = std::mem::take(&mut self.partial[stream as usize]);
        if line.is_empty() {
            return Ok(());
        }
        self.record(stream, &line)
    }

    fn record(&mut self, stream: LogStream, line: &[u8]) -> Result<(), LogError> {
        let text = String::from_utf8_lossy(line);
        let record = Record {
            log: &text,
            stream: stream.name(),
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        };
        let mut bytes = serde_json::to_vec(&record).unwrap_or_default();
        bytes.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + bytes.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&bytes).map_err(|source| LogError::Io {
            what: "writing log",
            path: self.path.clone(),
            source,
        })?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// LOG.(N-2) → LOG.(N-1), ..., LOG → LOG.1, and a new LOG; with one file, truncation.
    fn rotate(&mut self) -> Result<(), LogError> {
        let err = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError::Io { what, path, source }
        };
        if self.max_file <= 1 {
            self.file
                .set_len(0)
                .map_err(err("truncating log", &self.path))?;
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
        self.file = open(&self.path)?;
        self.size = 0;
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
        let mut log = JsonLog::open(&path, None, 1).unwrap();
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

    #[test]
    fn rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = JsonLog::open(&path, Some(200), 3).unwrap();
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
