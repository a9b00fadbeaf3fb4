//! `GET /containers/{id}/logs`: the json-file log the monitor writes (rotated files first,
//! oldest first), filtered by stream, `since`, `until` and `tail`, and followed while the
//! container runs.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_api::stdcopy::Stream;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::Engine;

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Seconds since the epoch (fractional).
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// The last N records only.
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// One record of the log.
#[derive(Debug, Clone)]
pub struct Record {
    pub stream: Stream,
    pub text: Vec<u8>,
    /// As written (RFC 3339, nanoseconds).
    pub time: String,
}

/// One line of a json-file log (`{"log":"hi\n","stream":"stdout","time":"..."}`) as a record;
/// None when it is not one (a line cut short by a crash, or anything else).
pub fn parse_record(line: &[u8]) -> Option<Record> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let stream = match v["stream"].as_str()? {
        "stderr" => Stream::Stderr,
        _ => Stream::Stdout,
    };
    Some(Record {
        stream,
        text: v["log"].as_str()?.as_bytes().to_vec(),
        time: v["time"].as_str().unwrap_or_default().to_string(),
    })
}

/// Reads the records of one json-file log that `o` wants (stream, since, until; not tail), in
/// order, handing each to `keep` until it returns false; returns false then. Lines that are
/// not records are skipped, whatever bytes they hold.
pub fn scan(
    mut reader: impl BufRead,
    o: &LogOptions,
    keep: &mut dyn FnMut(Record) -> bool,
) -> bool {
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
        if let Some(r) = parse_record(&line).filter(|r| wanted(r, o)) {
            if !keep(r) {
                return false;
            }
        }
    }
}

/// The last `n` records of those [`Tail::push`] is given.
#[derive(Debug)]
pub struct Tail {
    n: usize,
    records: VecDeque<Record>,
}

impl Tail {
    pub fn new(n: usize) -> Tail {
        Tail {
            n,
            records: VecDeque::new(),
        }
    }

    pub fn push(&mut self, r: Record) {
        if self.n == 0 {
            return;
        }
        if self.records.len() == self.n {
            self.records.pop_front();
        }
        self.records.push_back(r);
    }

    pub fn into_records(self) -> VecDeque<Record> {
        self.records
    }
}

fn epoch(time: &str) -> f64 {
    humantime::parse_rfc3339_weak(time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whether `o` wants record `r` (its stream, `since`, `until`).
pub fn wanted(r: &Record, o: &LogOptions) -> bool {
    let stream_ok = match r.stream {
        Stream::Stderr => o.stderr,
        _ => o.stdout,
    };
    let t = epoch(&r.time);
    stream_ok && o.since.is_none_or(|s| t >= s) && o.until.is_none_or(|u| t <= u)
}

/// The log files of `log`, oldest first: `log.N` ... `log.1`, `log`.
fn files(log: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = (1..100)
        .map(|n| (n, PathBuf::from(format!("{}.{n}", log.display()))))
        .take_while(|(_, p)| p.exists())
        .collect();
    rotated.reverse();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(log.to_path_buf());
    out
}

impl Engine {
    /// Starts sending the container's log records; the channel closes at the end (at once
    /// without `follow`, when the container stops with it).
    pub fn logs(&self, key: &str, o: LogOptions) -> Result<(bool, mpsc::Receiver<Record>)> {
        let c = self.containers.get(key)?;
        let (tx, rx) = mpsc::channel(256);
        let engine = self.clone();
        let id = c.id.clone();
        let log = c.log_path.clone();
        let tty = c.tty();
        tokio::task::spawn_blocking(move || {
            // With a tail, only the last records are held (the log may be large); without,
            // each is sent as it is read.
            let mut tail = o.tail.map(Tail::new);
            for file in files(&log) {
                let Ok(f) = std::fs::File::open(&file) else {
                    continue;
                };
                let go_on = scan(BufReader::new(f), &o, &mut |r| match &mut tail {
                    Some(t) => {
                        t.push(r);
                        true
                    }
                    None => tx.blocking_send(r).is_ok(),
                });
                if !go_on {
                    return;
                }
            }
            for r in tail.map(Tail::into_records).into_iter().flatten() {
                if tx.blocking_send(r).is_err() {
                    return;
                }
            }
            if o.follow {
                follow(&engine, &id, &log, &o, &tx);
            }
        });
        Ok((tty, rx))
    }
}

/// Sends what is appended to the log until the container is no longer running (and a little
/// after, for the last lines) or the receiver goes away.
fn follow(engine: &Engine, id: &str, log: &Path, o: &LogOptions, tx: &mpsc::Sender<Record>) {
    let mut pos = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut quiet_after_exit = 0;
    loop {
        let running = engine.containers.get(id).is_ok_and(|c| c.is_running());
        let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // rotated
        }
        if len > pos {
            if let Ok(mut f) = std::fs::File::open(log) {
                if f.seek(SeekFrom::Start(pos)).is_ok() {
                    let mut reader = BufReader::new(f);
                    let mut line = Vec::new();
                    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                        if line.last() != Some(&b'\n') {
                            break;
                        }
                        pos += line.len() as u64;
                        if let Some(r) = parse_record(&line).filter(|r| wanted(r, o)) {
                            if tx.blocking_send(r).is_err() {
                                return;
                            }
                        }
                        line.clear();
                    }
                }
            }
            quiet_after_exit = 0;
            continue;
        }
        if tx.is_closed() {
            return;
        }
        if !running {
            quiet_after_exit += 1;
            if quiet_after_exit > 2 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_skipped_and_tail_keeps_the_last() {
        let log = b"{\"log\":\"a\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00Z\"}\n\xff\xfe not json\n{\"log\":\"b\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:01Z\"}\n{\"log\":\"c\\n\",\"stream\":\"stdout\"}\n{\"log\":\"cut";
        let o = LogOptions {
            stdout: true,
            stderr: true,
            ..LogOptions::default()
        };
        let mut all = Vec::new();
        assert!(scan(&log[..], &o, &mut |r| {
            all.push(r.text);
            true
        }));
        assert_eq!(all, [b"a\n".to_vec(), b"b\n".to_vec(), b"c\n".to_vec()]);
        let mut tail = Tail::new(2);
        scan(&log[..], &o, &mut |r| {
            tail.push(r);
            true
        });
        let last: Vec<_> = tail.into_records().into_iter().map(|r| r.text).collect();
        assert_eq!(last, [b"b\n".to_vec(), b"c\n".to_vec()]);
        let mut none = Tail::new(0);
        scan(&log[..], &o, &mut |r| {
            none.push(r);
            true
        });
        assert!(none.into_records().is_empty());
    }
}
