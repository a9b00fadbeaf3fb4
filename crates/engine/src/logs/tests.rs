#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;

const T0: Nanos = 1_700_000_000_000_000_000;
const MS: Nanos = 1_000_000;

/// A json-file record as the monitor writes it, at T0 + `ms`.
fn rec(text: &str, stream: &str, ms: i64) -> String {
    let time = record::format_time(T0 + Nanos::from(ms) * MS);
    format!(
        "{{\"log\":{},\"stream\":\"{stream}\",\"time\":\"{time}\"}}\n",
        serde_json::to_string(text).unwrap()
    )
}

fn append(path: &Path, data: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(data.as_bytes())
        .unwrap();
}

/// A reader of `path` run on a thread of its own; what it sends, as text.
fn read_with(path: &Path, tty: bool, o: LogOptions, running: Running) -> Vec<u8> {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let mut reader = Reader {
        out: Out {
            tx,
            buf: Vec::new(),
            tty,
            timestamps: o.timestamps,
        },
        path: path.to_path_buf(),
        o,
        running,
    };
    let t = std::thread::spawn(move || reader.run());
    let mut out = Vec::new();
    while let Some(chunk) = rx.blocking_recv() {
        assert!(chunk.len() <= CHUNK + 64, "chunk of {}", chunk.len());
        out.extend_from_slice(&chunk);
    }
    t.join().unwrap().unwrap();
    out
}

fn read(path: &Path, o: LogOptions) -> String {
    String::from_utf8(read_with(path, true, o, Box::new(|| false))).unwrap()
}

fn both() -> LogOptions {
    LogOptions {
        stdout: true,
        stderr: true,
        ..LogOptions::default()
    }
}

/// `c.log.2` (a, b), `c.log.1` (c, d), `c.log` (e, f), at 0..6 ms; d on stderr.
fn rotated() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(
        &numbered(&log, 2),
        &(rec("a\n", "stdout", 0) + &rec("b\n", "stdout", 1)),
    );
    append(
        &numbered(&log, 1),
        &(rec("c\n", "stdout", 2) + &rec("d\n", "stderr", 3)),
    );
    append(&log, &(rec("e\n", "stdout", 4) + &rec("f\n", "stdout", 5)));
    (dir, log)
}

#[test]
fn rotated_files_oldest_first() {
    let (_dir, log) = rotated();
    assert_eq!(read(&log, both()), "a\nb\nc\nd\ne\nf\n");
    let stdout = LogOptions {
        stderr: false,
        ..both()
    };
    assert_eq!(read(&log, stdout), "a\nb\nc\ne\nf\n");
    let stderr = LogOptions {
        stdout: false,
        ..both()
    };
    assert_eq!(read(&log, stderr), "d\n");
}

#[test]
fn tail_across_files_counts_every_line() {
    let (_dir, log) = rotated();
    let tail = |n, stdout| LogOptions {
        tail: Some(n),
        stdout,
        ..both()
    };
    assert_eq!(read(&log, tail(1, true)), "f\n");
    assert_eq!(read(&log, tail(3, true)), "d\ne\nf\n");
    assert_eq!(read(&log, tail(5, true)), "b\nc\nd\ne\nf\n");
    assert_eq!(read(&log, tail(100, true)), "a\nb\nc\nd\ne\nf\n");
    assert_eq!(read(&log, tail(0, true)), "");
    // As dockerd: the last 3 lines, then the stream selection.
    assert_eq!(read(&log, tail(3, false)), "d\n");
}

#[test]
fn since_and_until() {
    let (_dir, log) = rotated();
    let at = |ms: i64| Some(T0 + Nanos::from(ms) * MS);
    let o = |since, until| LogOptions {
        since,
        until,
        ..both()
    };
    assert_eq!(read(&log, o(at(3), None)), "d\ne\nf\n");
    assert_eq!(read(&log, o(at(5), None)), "f\n");
    assert_eq!(read(&log, o(at(6), None)), "");
    assert_eq!(read(&log, o(None, at(1))), "a\nb\n");
    assert_eq!(read(&log, o(at(2), at(4))), "c\nd\ne\n");
    // tail first, then since.
    let tail_since = LogOptions {
        tail: Some(4),
        ..o(at(4), None)
    };
    assert_eq!(read(&log, tail_since), "e\nf\n");
}

#[test]
fn until_stops_the_reading() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    let mut data = rec("early\n", "stdout", 0);
    data += &rec("late\n", "stdout", 10);
    // Past `until` the file is not read: a torn giant line would be skipped anyway, but a
    // later record with an early time (a clock set back) is not sent.
    data += &rec("back in time\n", "stdout", 0);
    append(&log, &data);
    let o = LogOptions {
        until: Some(T0 + 5 * MS),
        ..both()
    };
    assert_eq!(read(&log, o), "early\n");
}

#[test]
fn frames_and_timestamps() {
    let (_dir, log) = rotated();
    let o = LogOptions {
        tail: Some(3),
        timestamps: true,
        ..both()
    };
    let body = read_with(&log, false, o, Box::new(|| false));
    let mut r = &body[..];
    let mut frames = Vec::new();
    while let Some((stream, payload)) = stdcopy::read_frame(&mut r).unwrap() {
        frames.push((stream, String::from_utf8(payload).unwrap()));
    }
    let stamp = |ms| record::format_time(T0 + ms * MS);
    assert_eq!(
        frames,
        [
            (Stream::Stderr, format!("{} d\n", stamp(3))),
            (Stream::Stdout, format!("{} e\n", stamp(4))),
            (Stream::Stdout, format!("{} f\n", stamp(5))),
        ]
    );
    // A time written with fewer digits is printed with nine.
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("c.log");
    append(
        &short,
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2023-11-14T22:13:20.5Z\"}\n",
    );
    let o = LogOptions {
        timestamps: true,
        ..both()
    };
    assert_eq!(read(&short, o), "2023-11-14T22:13:20.500000000Z x\n");
}

#[test]
fn torn_lines_blank_lines_and_an_unterminated_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    let mut data = rec("one\n", "stdout", 0);
    data += "{\"log\":\"tor\n\n";
    data += &rec("two\n", "stdout", 1);
    data += rec("three", "stdout", 2).trim_end();
    append(&log, &data);
    assert_eq!(read(&log, both()), "one\ntwo\nthree");
    let tail = LogOptions {
        tail: Some(1),
        ..both()
    };
    assert_eq!(read(&log, tail), "three");
}

#[test]
fn no_log_yet() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(&dir.path().join("c.log"), both()), "");
    let tail = LogOptions {
        tail: Some(3),
        since: Some(T0),
        ..both()
    };
    assert_eq!(read(&dir.path().join("c.log"), tail), "");
}

#[test]
fn large_logs_go_out_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    let line = rec(&format!("{}\n", "z".repeat(300)), "stdout", 0);
    append(&log, &line.repeat(2000));
    let body = read_with(&log, false, both(), Box::new(|| false));
    assert_eq!(body.len(), 2000 * (8 + 301));
}

#[test]
fn follow_goes_on_across_rotations_until_the_writer_stops() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(&log, &rec("before\n", "stdout", 0));
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (log, running) = (log.clone(), running.clone());
        std::thread::spawn(move || {
            for i in 1..=30 {
                append(&log, &rec(&format!("{i}\n"), "stdout", i));
                if i % 5 == 0 {
                    // As the monitor rotates (max-file=6): LOG.4 -> LOG.5, ..., LOG -> LOG.1,
                    // and a new LOG. Some rotations come quicker than the follower looks.
                    for k in (1..5).rev() {
                        let from = numbered(&log, k);
                        if from.exists() {
                            std::fs::rename(&from, numbered(&log, k + 1)).unwrap();
                        }
                    }
                    std::fs::rename(&log, numbered(&log, 1)).unwrap();
                }
                std::thread::sleep(Duration::from_millis(if i < 15 { 2 } else { 20 }));
            }
            append(&log, &rec("last\n", "stdout", 31));
            running.store(false, Ordering::SeqCst);
        })
    };
    let o = LogOptions {
        follow: true,
        ..both()
    };
    let flag = running.clone();
    let out = read_with(&log, true, o, Box::new(move || flag.load(Ordering::SeqCst)));
    writer.join().unwrap();
    let expected: String = std::iter::once("before".to_string())
        .chain((1..=30).map(|i| i.to_string()))
        .chain(std::iter::once("last".to_string()))
        .map(|l| l + "\n")
        .collect();
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn follow_after_truncation_and_with_tail_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(
        &log,
        &(rec("old 1\n", "stdout", 0) + &rec("old 2\n", "stdout", 1)),
    );
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (log, running) = (log.clone(), running.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            append(&log, &rec("new 1\n", "stdout", 2));
            std::thread::sleep(Duration::from_millis(150));
            // max-file=1: the monitor empties the file and goes on.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&log)
                .unwrap()
                .set_len(0)
                .unwrap();
            append(&log, &rec("new 2\n", "stdout", 3));
            std::thread::sleep(Duration::from_millis(150));
            running.store(false, Ordering::SeqCst);
        })
    };
    let o = LogOptions {
        follow: true,
        tail: Some(0),
        ..both()
    };
    let flag = running.clone();
    let out = read_with(&log, true, o, Box::new(move || flag.load(Ordering::SeqCst)));
    writer.join().unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "new 1\nnew 2\n");
}

#[test]
fn a_reader_whose_client_left_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    append(&log, &rec(&"q".repeat(1000), "stdout", 0).repeat(1000));
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut reader = Reader {
        out: Out {
            tx,
            buf: Vec::new(),
            tty: true,
            timestamps: false,
        },
        path: log,
        o: LogOptions {
            follow: true,
            ..both()
        },
        running: Box::new(|| true),
    };
    drop(rx);
    assert!(matches!(reader.run(), Err(LogsError::Gone)));
}

#[test]
fn a_gap_left_by_a_failed_rotation_is_passed_over() {
    let (_dir, log) = rotated();
    std::fs::rename(numbered(&log, 2), numbered(&log, 3)).unwrap();
    std::fs::rename(numbered(&log, 1), numbered(&log, 2)).unwrap();
    assert_eq!(read(&log, both()), "a\nb\nc\nd\ne\nf\n");
}

/// The monitor's own writer, rotating every few records, while a reader follows: every line
/// arrives once, in order, across rotations that come faster than the reader looks (a file
/// renamed between the reader's looks at the slots, or the new file replaced again before it
/// is opened).
#[test]
fn follow_goes_on_across_quick_rotations_of_the_monitor() {
    use berth_monitor::logfile::{Format, LogFile};
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c.log");
    let writer = LogFile::open(&log, Some(200), 600, Format::JsonFile);
    let path = log.clone();
    follow_while_the_monitor_writes(writer, move |o, running| read_with(&path, true, o, running));
    assert!(numbered(&log, 300).exists());
}

/// Writes `first` then 1000 lines with `writer` (rotating as it goes; its pending work, such
/// as compression, done after each) while `read` follows the log from another thread, then
/// checks that the reader got every line once, in order.
pub(super) fn follow_while_the_monitor_writes(
    mut writer: berth_monitor::logfile::LogFile,
    read: impl FnOnce(LogOptions, Running) -> Vec<u8> + Send + 'static,
) {
    use berth_monitor::logfile::LogStream;
    writer.write(LogStream::Stdout, b"first\n").unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let r = Arc::clone(&running);
    let o = LogOptions {
        follow: true,
        ..both()
    };
    let reader = std::thread::spawn(move || read(o, Box::new(move || r.load(Ordering::SeqCst))));
    for i in 0..1000 {
        writer
            .write(LogStream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
        writer.work();
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    writer.close();
    running.store(false, Ordering::SeqCst);
    let out = String::from_utf8(reader.join().unwrap()).unwrap();
    let expected: Vec<String> = std::iter::once("first".to_string())
        .chain((0..1000).map(|i| format!("line {i}")))
        .collect();
    let got: Vec<&str> = out.lines().collect();
    let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
    let around = first_difference.map(|p| &got[p.saturating_sub(4)..(p + 8).min(got.len())]);
    assert_eq!(first_difference, None, "{} lines, {around:?}", got.len());
    assert_eq!(got.len(), expected.len());
}
