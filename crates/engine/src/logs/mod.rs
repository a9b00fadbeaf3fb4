//! `GET /containers/{id}/logs` and `attach?logs=1`: the json-file log the monitor writes
//! (rotated files first, oldest first), streamed from disk in bounded memory; a `local` log
//! is read by [`local`] in the same way, a container with the `none` driver has none to read.
//!
//! One blocking thread per request reads the files through a fixed buffer ([`lines`]) and
//! sends the response body in chunks of about [`CHUNK`] bytes on a channel of [`QUEUE`]
//! chunks: when the client reads slowly, the connection stops taking chunks, the channel
//! fills and the reader waits, so berthd never holds more than a few chunks of a log.
//! `tail=N` finds its start by reading backwards from the end ([`backward`]), `since` by a
//! binary search on the lines' times ([`seek`]); `until` ends the reading at the first later
//! record. `follow` goes on reading as the file grows, across rotations (the path names a
//! new file: the old one is read to its end first, then the files rotated after it,
//! [`rotation`]) and truncations, until the container stops or the client goes away.
//!
//! As dockerd's json-file reader: `tail` counts the last lines of the files, whatever their
//! stream and time; `since`, `until` and the stream selection then apply to those.

mod backward;
pub mod driver;
mod frames;
mod lines;
mod local;
pub mod record;
mod rotation;
mod seek;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_api::stdcopy::{self, Stream};
use tokio::sync::mpsc;

pub use record::{parse_unix, Nanos};

use crate::error::Result;
use crate::Engine;
use lines::Lines;

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Nanoseconds since the epoch: records at or after it only.
    pub since: Option<Nanos>,
    /// Nanoseconds since the epoch: records at or before it only; the reading stops at the
    /// first later one.
    pub until: Option<Nanos>,
    /// From the last N lines of the log only.
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// A chunk of the body goes out once it holds this much (or at the end of what there is).
pub const CHUNK: usize = 64 << 10;

/// Chunks waiting between the reader and the connection.
pub const QUEUE: usize = 2;

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(50);

/// Rotated files looked for at most (`LOG.1` ... `LOG.N`).
const MAX_FILES: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The client went away: not an error, the end of the work.
    #[error("the client went away")]
    Gone,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogsError + 'a {
    move |source| LogsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl Engine {
    /// The CRI's `ReopenContainerLog`: the monitor of a running container closes its log and
    /// opens the path again (kubelet renamed the file to rotate it).
    pub async fn reopen_log(&self, key: &str) -> Result<()> {
        let c = self.containers.get(key)?;
        if !c.is_running() {
            return Err(crate::EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        let sock = crate::monitor::socket(&self.run_dir(&c.id));
        crate::monitor::call::<crate::monitor::Reply>(&sock, berth_monitor::protocol::Op::ReopenLog)
            .await
            .map(|_| ())
    }

    /// Starts streaming the container's log: chunks of the response body (stdcopy frames
    /// without a tty, the bare text with one) on a channel that closes at the end, at once
    /// without `follow`, when the container stops with it. Also says whether the container
    /// has a tty.
    pub fn logs(&self, key: &str, o: LogOptions) -> Result<(bool, mpsc::Receiver<Vec<u8>>)> {
        let c = self.containers.get(key)?;
        let engine = self.clone();
        let id = c.id.clone();
        let running = move || engine.containers.get(&id).is_ok_and(|c| c.is_running());
        let rx = match driver::driver_of(&c.host_config) {
            // dockerd's `ErrReadLogsNotSupported` (the CRI's logs are kubelet's to read).
            driver::NONE | driver::CRI => {
                return Err(crate::EngineError::NotImplemented(
                    "configured logging driver does not support reading".into(),
                ))
            }
            driver::LOCAL => local::stream(
                driver::local_path(&self.data_dir(&c.id)),
                c.tty(),
                o,
                Box::new(running),
            ),
            _ => stream(c.log_path.clone(), c.tty(), o, Box::new(running)),
        };
        Ok((c.tty(), rx))
    }
}

/// Reads a `local` log (`container.log` and its rotated `.N` / `.N.gz` files) as
/// [`stream`] reads a json-file one (public for the fuzz target).
pub use local::stream as stream_local;

/// Whether the writer of the log still runs (a follower stops after it does).
pub type Running = Box<dyn Fn() -> bool + Send>;

/// Reads the log at `path` on a blocking thread, as [`Engine::logs`] describes (public for
/// the fuzz target, which reads arbitrary files with it).
pub fn stream(
    path: PathBuf,
    tty: bool,
    o: LogOptions,
    running: Running,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut reader = Reader {
        out: Out::new(tx, tty, o.timestamps),
        path,
        o,
        running,
    };
    spawn_reader(move || reader.run());
    rx
}

/// Runs a log reader on a blocking thread; a failure is logged (a client gone is none).
fn spawn_reader(run: impl FnOnce() -> std::result::Result<(), LogsError> + Send + 'static) {
    tokio::task::spawn_blocking(move || match run() {
        Ok(()) | Err(LogsError::Gone) => {}
        Err(e) => tracing::warn!(error = %e, "reading a container log"),
    });
}

/// One file of the log, opened before any is read (a rotation meanwhile renames the paths,
/// not the open files), and its length then.
struct LogFile {
    file: File,
    len: u64,
    path: PathBuf,
}

/// `LOG.n`.
fn numbered(log: &Path, n: u32) -> PathBuf {
    let mut p = log.as_os_str().to_os_string();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// The files of the log, oldest first: `LOG.N` ... `LOG.1`, `LOG`. They are opened newest
/// first, and a file seen twice (renamed from `LOG` to `LOG.1` between two opens) is kept
/// once, so a rotation while they are opened neither skips nor repeats one. One missing
/// number is passed over (a rotation that failed half way leaves `LOG`, `LOG.2`, ...).
fn open_files(log: &Path) -> Vec<LogFile> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut missing = 0;
    for n in 0..=MAX_FILES {
        let path = if n == 0 {
            log.to_path_buf()
        } else {
            numbered(log, n)
        };
        let Ok(file) = File::open(&path) else {
            missing += 1;
            if missing == 2 {
                break;
            }
            continue;
        };
        missing = 0;
        let Ok(m) = file.metadata() else { continue };
        if seen.insert((m.dev(), m.ino())) {
            files.push(LogFile {
                file,
                len: m.len(),
                path,
            });
        }
    }
    files.reverse();
    files
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    /// Past `until`: nothing more is sent.
    Stop,
}

struct Reader {
    out: Out,
    path: PathBuf,
    o: LogOptions,
    running: Running,
}

impl Reader {
    fn run(&mut self) -> std::result::Result<(), LogsError> {
        let files = open_files(&self.path);
        let (first, offset) = self.start(&files)?;
        let count = files.len();
        let mut current = None;
        for (i, f) in files.into_iter().enumerate().skip(first) {
            let start = if i == first { offset } else { 0 };
            let mut lines = Lines::new(f.file, start, f.len).map_err(io_err("reading", &f.path))?;
            if self.drain(&mut lines, &f.path)? == Flow::Stop {
                return self.out.flush();
            }
            if i + 1 == count && self.o.follow {
                current = Some(lines);
            } else if let Some(line) = lines.unterminated() {
                if self.emit(line)? == Flow::Stop {
                    return self.out.flush();
                }
            }
        }
        self.out.flush()?;
        if self.o.follow {
            self.follow(current)?;
        }
        Ok(())
    }

    /// Which file to start with, and where in it: `tail` counts lines back from the end,
    /// `since` skips the files and the part of the first file that are earlier.
    fn start(&self, files: &[LogFile]) -> std::result::Result<(usize, u64), LogsError> {
        let Some(last) = files.len().checked_sub(1) else {
            return Ok((0, 0));
        };
        if let Some(n) = self.o.tail {
            let mut remaining = n;
            if remaining == 0 {
                return Ok((last, files[last].len));
            }
            for (i, f) in files.iter().enumerate().rev() {
                let (start, found) =
                    backward::tail_start(&mut &f.file, f.len, remaining, backward::BLOCK)
                        .map_err(io_err("reading", &f.path))?;
                remaining -= found;
                if remaining == 0 {
                    return Ok((i, start));
                }
            }
            return Ok((0, 0));
        }
        if let Some(since) = self.o.since {
            for (i, f) in files.iter().enumerate() {
                let start =
                    seek::since_start(&f.file, f.len, since).map_err(io_err("reading", &f.path))?;
                if start < f.len {
                    return Ok((i, start));
                }
            }
            return Ok((last, files[last].len));
        }
        Ok((0, 0))
    }

    /// Sends the records of the complete lines `lines` has now.
    fn drain(&mut self, lines: &mut Lines, path: &Path) -> std::result::Result<Flow, LogsError> {
        while let Some(line) = lines.next_line().map_err(io_err("reading", path))? {
            if self.emit(line)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }

    /// Sends the record on `line` if it is wanted; `Stop` past `until`.
    fn emit(&mut self, line: &[u8]) -> std::result::Result<Flow, LogsError> {
        let Some(e) = record::parse(line) else {
            return Ok(Flow::Go);
        };
        let o = &self.o;
        let time = if o.since.is_some() || o.until.is_some() {
            record::parse_time(&e.time)
        } else {
            None
        };
        if let (Some(until), Some(t)) = (o.until, time) {
            if t > until {
                return Ok(Flow::Stop);
            }
        }
        if let Some(since) = o.since {
            if time.is_none_or(|t| t < since) {
                return Ok(Flow::Go);
            }
        }
        let wanted = match e.stream {
            Stream::Stderr => o.stderr,
            _ => o.stdout,
        };
        if wanted {
            self.out.push(e.stream, &e.time, time, &e.text)?;
        }
        Ok(Flow::Go)
    }

    /// Goes on with the log as it grows, until the container stops (everything it wrote
    /// before is read), the client goes away, or `until` passes.
    fn follow(&mut self, mut current: Option<Lines>) -> std::result::Result<(), LogsError> {
        let path = self.path.clone();
        if let Some(l) = current.as_mut() {
            l.unlimit();
        }
        loop {
            let running = (self.running)();
            let mut progressed = false;
            if let Some(l) = current.as_mut() {
                let before = l.position();
                progressed |= l.rewind_if_truncated().map_err(io_err("reading", &path))?;
                if self.drain(l, &path)? == Flow::Stop {
                    return self.out.flush();
                }
                progressed |= l.position() != before;
            }
            // Rotated: the path names another file now (or a first one).
            if let Ok(m) = std::fs::metadata(&path) {
                // The new file is opened before the rotated ones are looked for, so that one
                // rotated meanwhile is among them (if it cannot be opened now, the next pass
                // tries again).
                let new = if current.as_ref().is_none_or(|l| !l.is(&m)) {
                    File::open(&path).ok()
                } else {
                    None
                };
                if let Some(f) = new {
                    let new = Lines::new(f, 0, u64::MAX).map_err(io_err("reading", &path))?;
                    if let Some(old) = current.take() {
                        if self.rest_of_rotation(old, &new)? == Flow::Stop {
                            return self.out.flush();
                        }
                    }
                    current = Some(new);
                    progressed = true;
                }
            }
            self.out.flush()?;
            if progressed {
                continue;
            }
            let until_passed = self.o.until.is_some_and(|u| now() > u);
            if !running || until_passed || self.out.tx.is_closed() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Reader {
    /// The file followed was rotated away: what was written to it before it was renamed,
    /// then the files rotated after it and before `new` (the one the path names now), when
    /// the log rotated more than once since the last look ([`rotation::rotated_after`]).
    fn rest_of_rotation(
        &mut self,
        mut old: Lines,
        new: &Lines,
    ) -> std::result::Result<Flow, LogsError> {
        let path = self.path.clone();
        if self.drain(&mut old, &path)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        if let Some(line) = old.unterminated() {
            if self.emit(line)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        // Opened as they are looked at: a slot's path may name another file by the time
        // it is read.
        let is = |lines: &Lines, (f, _): &(File, PathBuf)| f.metadata().is_ok_and(|m| lines.is(&m));
        let newer = rotation::rotated_after(
            |k| {
                let p = numbered(&path, k);
                File::open(&p).ok().map(|f| (f, p))
            },
            |(f, _)| f.metadata().ok().map(|m| (m.dev(), m.ino())),
            |slot| is(&old, slot),
            |slot| is(new, slot),
        );
        for (f, p) in newer.into_iter().rev() {
            let mut lines = Lines::new(f, 0, u64::MAX).map_err(io_err("reading", &p))?;
            if self.drain(&mut lines, &p)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            if let Some(line) = lines.unterminated() {
                if self.emit(line)? == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
        }
        Ok(Flow::Go)
    }
}

fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

/// The body being made: records framed (or not, with a tty) into a chunk, sent when full.
struct Out {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    tty: bool,
    timestamps: bool,
}

impl Out {
    fn new(tx: mpsc::Sender<Vec<u8>>, tty: bool, timestamps: bool) -> Out {
        Out {
            tx,
            buf: Vec::with_capacity(CHUNK),
            tty,
            timestamps,
        }
    }
}

impl Out {
    fn push(
        &mut self,
        stream: Stream,
        time: &str,
        parsed: Option<Nanos>,
        text: &str,
    ) -> std::result::Result<(), LogsError> {
        let stamp = if !self.timestamps {
            None
        } else if record::is_fixed_format(time) {
            Some(std::borrow::Cow::Borrowed(time))
        } else {
            match parsed.or_else(|| record::parse_time(time)) {
                Some(n) => Some(std::borrow::Cow::Owned(record::format_time(n))),
                None => Some(std::borrow::Cow::Borrowed(time)),
            }
        };
        self.frame(stream, stamp.as_deref(), text.as_bytes(), false)
    }

    /// Sends `text` (and a newline with `newline`) of `stream`, after `stamp` and a space.
    fn frame(
        &mut self,
        stream: Stream,
        stamp: Option<&str>,
        text: &[u8],
        newline: bool,
    ) -> std::result::Result<(), LogsError> {
        let len = text.len() + usize::from(newline) + stamp.map_or(0, |s| s.len() + 1);
        if !self.buf.is_empty() && self.buf.len() + len + 8 > CHUNK {
            self.flush()?;
        }
        if !self.tty {
            self.buf.extend_from_slice(&stdcopy::header(stream, len));
        }
        if let Some(s) = stamp {
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(text);
        if newline {
            self.buf.push(b'\n');
        }
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is in the chunk, waiting while the queue is full.
    fn flush(&mut self) -> std::result::Result<(), LogsError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(chunk).map_err(|_| LogsError::Gone)
    }
}
