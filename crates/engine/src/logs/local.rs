//! Reading a `local` log (`LOG`, `LOG.1[.gz]` ... as the monitor rotates it) the way the
//! json-file reader reads its files: opened newest first before any is read, sent oldest
//! first in chunks on a bounded channel from one blocking thread, `follow` going on across
//! rotations and truncations.
//!
//! - `tail=N`: the sizes after the records walked back from the end of the newest file (then
//!   older ones); a compressed file, which cannot be read backwards, is counted through once
//!   and skipped through to its last records. A file whose sizes do not add up at the end (a
//!   record half written) is counted forwards too.
//! - `since`: the files whose last record is earlier are skipped (a plain file's last record
//!   read from its end, a compressed one's time from its gzip header); the earlier records of
//!   the first file read are passed over one by one (the format has nothing to search on).
//! - A record holds its line without the newline; the newline is sent after a whole line and
//!   after the last piece of a long one, as dockerd's reader does. The text is sent as
//!   written (not made valid UTF-8).

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_api::stdcopy::Stream;
use berth_monitor::locallog::{self, Entry};
use tokio::sync::mpsc;

use super::frames::{self, Frames};
use super::record::{self, Nanos};
use super::rotation;
use super::{io_err, now, Flow, LogOptions, LogsError, Out, Running, MAX_FILES, POLL, QUEUE};

/// Reads the `local` log at `path` on a blocking thread (as [`super::stream`] does a
/// json-file one).
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
    super::spawn_reader(move || reader.run());
    rx
}

/// One file of the log, opened before any is read.
struct Source {
    file: File,
    gz: bool,
    len: u64,
    path: PathBuf,
}

impl Source {
    /// Its records from `offset` (plain files) on, `skip` of them passed over.
    fn frames(&self, offset: u64, skip: u64) -> Result<Frames, LogsError> {
        let err = io_err("reading", &self.path);
        let file = self
            .file
            .try_clone()
            .map_err(io_err("reading", &self.path))?;
        let mut frames = if self.gz {
            Frames::gz(file)
        } else {
            Frames::plain(file, offset, self.len)
        }
        .map_err(io_err("reading", &self.path))?;
        frames.skip(skip).map_err(err)?;
        Ok(frames)
    }
}

/// The plain `LOG.k`, else the compressed `LOG.k.gz` (a reader finds the first whole while
/// the monitor compresses it).
fn open_slot(log: &Path, k: u32) -> Option<(File, bool, PathBuf)> {
    if k == 0 {
        return File::open(log).ok().map(|f| (f, false, log.to_path_buf()));
    }
    for gz in [false, true] {
        let path = locallog::rotated(log, k, gz);
        if let Ok(f) = File::open(&path) {
            return Some((f, gz, path));
        }
    }
    None
}

/// The files of the log, oldest first, opened newest first with a file seen twice through a
/// rename kept once (as the json-file reader's).
fn open_files(log: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut missing = 0;
    for k in 0..=MAX_FILES {
        let Some((file, gz, path)) = open_slot(log, k) else {
            missing += 1;
            if missing == 2 {
                break;
            }
            continue;
        };
        missing = 0;
        let Ok(m) = file.metadata() else { continue };
        if seen.insert((m.dev(), m.ino())) {
            files.push(Source {
                file,
                gz,
                len: m.len(),
                path,
            });
        }
    }
    files.reverse();
    files
}

/// Where the reading starts: the file, an offset in it (plain files), records passed over.
struct Start {
    index: usize,
    offset: u64,
    skip: u64,
}

struct Reader {
    out: Out,
    path: PathBuf,
    o: LogOptions,
    running: Running,
}

impl Reader {
    fn run(&mut self) -> Result<(), LogsError> {
        let files = open_files(&self.path);
        let start = self.start(&files)?;
        let count = files.len();
        let mut current = None;
        for (i, f) in files.iter().enumerate().skip(start.index) {
            let mut frames = if i == start.index {
                f.frames(start.offset, start.skip)?
            } else {
                f.frames(0, 0)?
            };
            if self.drain(&mut frames, &f.path)? == Flow::Stop {
                return self.out.flush();
            }
            if i + 1 == count && self.o.follow && !f.gz {
                current = Some(frames);
            }
        }
        self.out.flush()?;
        if self.o.follow {
            self.follow(current)?;
        }
        Ok(())
    }

    /// Which file to start with, and where: `tail` counts records back from the end, `since`
    /// passes over the files that are all earlier.
    fn start(&self, files: &[Source]) -> Result<Start, LogsError> {
        let Some(last) = files.len().checked_sub(1) else {
            return Ok(Start {
                index: 0,
                offset: 0,
                skip: 0,
            });
        };
        let end = Start {
            index: last,
            offset: files[last].len,
            skip: if files[last].gz { u64::MAX } else { 0 },
        };
        if let Some(n) = self.o.tail {
            let mut remaining = n as u64;
            if remaining == 0 {
                return Ok(end);
            }
            for (i, f) in files.iter().enumerate().rev() {
                let backwards = if f.gz {
                    None
                } else {
                    frames::tail_start(&f.file, f.len, remaining)
                        .map_err(io_err("reading", &f.path))?
                };
                let (offset, skip, found) = match backwards {
                    Some((offset, found)) => (offset, 0, found),
                    None => {
                        let count = f
                            .frames(0, 0)?
                            .count()
                            .map_err(io_err("reading", &f.path))?;
                        let found = count.min(remaining);
                        (0, count - found, found)
                    }
                };
                remaining -= found;
                if remaining == 0 {
                    return Ok(Start {
                        index: i,
                        offset,
                        skip,
                    });
                }
            }
            return Ok(Start {
                index: 0,
                offset: 0,
                skip: 0,
            });
        }
        if let Some(since) = self.o.since {
            for (i, f) in files.iter().enumerate() {
                let last_time = if f.gz {
                    frames::gz_last_time(&f.file)
                } else {
                    frames::last_time(&f.file, f.len).map_err(io_err("reading", &f.path))?
                };
                if last_time.is_none_or(|t| t >= since) {
                    return Ok(Start {
                        index: i,
                        offset: 0,
                        skip: 0,
                    });
                }
            }
            return Ok(end);
        }
        Ok(Start {
            index: 0,
            offset: 0,
            skip: 0,
        })
    }

    /// Sends the records `frames` has now.
    fn drain(&mut self, frames: &mut Frames, path: &Path) -> Result<Flow, LogsError> {
        while let Some(e) = frames.next_record().map_err(io_err("reading", path))? {
            if self.emit(&e)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }

    /// Sends `e` if it is wanted; `Stop` past `until`.
    fn emit(&mut self, e: &Entry<'_>) -> Result<Flow, LogsError> {
        let o = &self.o;
        let time = Nanos::from(e.time_nano);
        if o.until.is_some_and(|until| time > until) {
            return Ok(Flow::Stop);
        }
        if o.since.is_some_and(|since| time < since) {
            return Ok(Flow::Go);
        }
        let stream = if e.source == b"stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let wanted = match stream {
            Stream::Stderr => o.stderr,
            _ => o.stdout,
        };
        if wanted {
            let stamp = o.timestamps.then(|| record::format_time(time));
            self.out
                .frame(stream, stamp.as_deref(), e.line, e.ends_line())?;
        }
        Ok(Flow::Go)
    }

    /// Goes on with the log as it grows (as the json-file reader's `follow`).
    fn follow(&mut self, mut current: Option<Frames>) -> Result<(), LogsError> {
        let path = self.path.clone();
        if let Some(f) = current.as_mut() {
            f.unlimit();
        }
        loop {
            let running = (self.running)();
            let mut progressed = false;
            if let Some(f) = current.as_mut() {
                let before = f.position();
                progressed |= f.rewind_if_truncated().map_err(io_err("reading", &path))?;
                if self.drain(f, &path)? == Flow::Stop {
                    return self.out.flush();
                }
                progressed |= f.position() != before;
            }
            // Rotated: the path names another file now (or a first one).
            if let Ok(m) = std::fs::metadata(&path) {
                // The new file is opened before the rotated ones are looked for, so that one
                // rotated meanwhile is among them (if it cannot be opened now, the next pass
                // tries again).
                let new = if current.as_ref().is_none_or(|f| !f.is(&m)) {
                    File::open(&path).ok()
                } else {
                    None
                };
                if let Some(f) = new {
                    let new = Frames::plain(f, 0, u64::MAX).map_err(io_err("reading", &path))?;
                    if let Some(old) = current.take() {
                        if self.rest_of_rotation(old, Some(&new))? == Flow::Stop {
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

    /// The file followed was rotated away: the rest of it, then the files rotated after it
    /// (and before `new`, the one the path names now) when the log rotated more than once
    /// since the last look. The old file is `LOG.k` (found by inode) or, once compressed,
    /// `LOG.k.gz` (found by the time of its last record, in the gzip header).
    fn rest_of_rotation(
        &mut self,
        mut old: Frames,
        new: Option<&Frames>,
    ) -> Result<Flow, LogsError> {
        let path = self.path.clone();
        if self.drain(&mut old, &path)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        let newer = rotated_after(&path, &old, new);
        for (file, gz, p) in newer.into_iter().rev() {
            let mut frames = if gz {
                Frames::gz(file)
            } else {
                Frames::plain(file, 0, u64::MAX)
            }
            .map_err(io_err("reading", &p))?;
            if self.drain(&mut frames, &p)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }
}

/// A rotated file of the log: open, compressed or not, its path.
type Rotated = (File, bool, PathBuf);

/// The files rotated after `old` and before `new`, newest first ([`rotation::rotated_after`]).
/// The old file is `LOG.k` (its inode) or, once compressed, `LOG.k.gz` (the time of its last
/// record, in the gzip header); so is the new one.
fn rotated_after(log: &Path, old: &Frames, new: Option<&Frames>) -> Vec<Rotated> {
    let old_last = old.last_time.map(Nanos::from);
    let is =
        |(file, gz, _): &Rotated, frames: Option<&Frames>, last: &dyn Fn() -> Option<Nanos>| {
            if *gz {
                let last = last();
                last.is_some() && frames::gz_last_time(file) == last
            } else {
                frames.is_some_and(|f| file.metadata().is_ok_and(|m| f.is(&m)))
            }
        };
    // A file is told by the time of its last record: the same whether it is found plain or,
    // compressed meanwhile, in the next slot.
    let last_time = |(file, gz, _): &Rotated| {
        if *gz {
            frames::gz_last_time(file)
        } else {
            let len = file.metadata().ok()?.len();
            frames::last_time(file, len).ok().flatten()
        }
    };
    rotation::rotated_after(
        |k| open_slot(log, k),
        last_time,
        |r| is(r, Some(old), &|| old_last),
        // The new file's last record as it is now: once it is rotated and compressed, its
        // last (it may have grown since it was opened).
        |r| is(r, new, &|| new.and_then(Frames::last_record_time)),
    )
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
