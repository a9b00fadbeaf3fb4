#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_monitor::logfile::{Format, LogFile, LogStream};

use super::*;

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

/// Records `(text, stream, ms)` at T0 + ms, framed.
fn records(list: &[(&str, &str, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (text, stream, ms) in list {
        let (line, partial) = match text.strip_suffix('\n') {
            Some(l) => (l, false),
            None => (*text, true),
        };
        let e = Entry {
            source: stream.as_bytes(),
            time_nano: T0 + ms * MS,
            line: line.as_bytes(),
            partial,
            ordinal: i32::from(partial),
            ..Entry::default()
        };
        locallog::encode(&e, &mut out);
    }
    out
}

fn gz(path: &Path, data: &[u8], last_ms: i64) {
    let last = record::format_time(Nanos::from(T0 + last_ms * MS));
    let extra = format!("{{\"lastTime\":\"{last}\"}}").into_bytes();
    let mut w = flate2::GzBuilder::new()
        .extra(extra)
        .write(File::create(path).unwrap(), flate2::Compression::default());
    w.write_all(data).unwrap();
    w.finish().unwrap();
}

/// `LOG.2.gz` (a, b), `LOG.1` left uncompressed (c, d on stderr), `LOG` (e, f in two pieces,
/// g), at 0..7 ms.
fn rotated() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("container.log");
    gz(
        &locallog::rotated(&log, 2, true),
        &records(&[("a\n", "stdout", 0), ("b\n", "stdout", 1)]),
        1,
    );
    std::fs::write(
        locallog::rotated(&log, 1, false),
        records(&[("c\n", "stdout", 2), ("d\n", "stderr", 3)]),
    )
    .unwrap();
    std::fs::write(
        &log,
        records(&[
            ("e\n", "stdout", 4),
            ("f1", "stdout", 5),
            ("f2\n", "stdout", 5),
            ("g\n", "stdout", 6),
        ]),
    )
    .unwrap();
    (dir, log)
}

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
        assert!(
            chunk.len() <= super::super::CHUNK + 64,
            "chunk of {}",
            chunk.len()
        );
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

#[test]
fn plain_and_compressed_files_oldest_first() {
    let (_dir, log) = rotated();
    assert_eq!(read(&log, both()), "a\nb\nc\nd\ne\nf1f2\ng\n");
    let stderr = LogOptions {
        stdout: false,
        ..both()
    };
    assert_eq!(read(&log, stderr), "d\n");
    // Framed without a tty, stamped with the record's time.
    let o = LogOptions {
        timestamps: true,
        tail: Some(1),
        ..both()
    };
    let out = read_with(&log, false, o, Box::new(|| false));
    let stamp = record::format_time(Nanos::from(T0 + 6 * MS));
    let mut expected = berth_api::stdcopy::header(Stream::Stdout, stamp.len() + 3).to_vec();
    expected.extend_from_slice(format!("{stamp} g\n").as_bytes());
    assert_eq!(out, expected);
}

#[test]
fn tail_counts_records_back_through_compressed_files() {
    let (_dir, log) = rotated();
    let tail = |n| {
        read(
            &log,
            LogOptions {
                tail: Some(n),
                ..both()
            },
        )
    };
    assert_eq!(tail(0), "");
    assert_eq!(tail(2), "f2\ng\n");
    // Records, as dockerd counts them: a line in two pieces is two.
    assert_eq!(tail(5), "d\ne\nf1f2\ng\n");
    assert_eq!(tail(7), "b\nc\nd\ne\nf1f2\ng\n");
    assert_eq!(tail(100), "a\nb\nc\nd\ne\nf1f2\ng\n");
    // A record half written at the end: the last whole ones are counted forwards.
    let more = records(&[("h\n", "stdout", 7)]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&more[..5])
        .unwrap();
    assert_eq!(tail(2), "f2\ng\n");
}

#[test]
fn since_passes_over_earlier_files_and_until_stops() {
    let (_dir, log) = rotated();
    let at = |ms: i64| Some(Nanos::from(T0 + ms * MS));
    let o = |since, until| LogOptions {
        since,
        until,
        ..both()
    };
    assert_eq!(read(&log, o(at(3), None)), "d\ne\nf1f2\ng\n");
    assert_eq!(read(&log, o(at(1), at(2))), "b\nc\n");
    assert_eq!(read(&log, o(at(7), None)), "");
    assert_eq!(read(&log, o(None, at(0))), "a\n");
    // The compressed file is passed over by its header alone: a broken body is not read.
    let (_dir2, log2) = rotated();
    let gz2 = locallog::rotated(&log2, 2, true);
    let mut bytes = std::fs::read(&gz2).unwrap();
    let n = bytes.len();
    bytes[n - 12..n - 8].copy_from_slice(b"XXXX");
    std::fs::write(&gz2, bytes).unwrap();
    assert_eq!(read(&log2, o(at(2), None)), "c\nd\ne\nf1f2\ng\n");
}

#[test]
fn no_log_yet() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read(&dir.path().join("container.log"), both()), "");
}

/// The monitor's own writer, rotating every few records and compressing, while a reader
/// follows: every line arrives once, in order, across rotations that come faster than the
/// reader looks (the rotated file found again by inode, or once compressed by its header).
#[test]
fn follow_goes_on_across_compressed_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("container.log");
    let format = Format::Local { compress: true };
    let writer = LogFile::open(&log, Some(200), 400, format);
    let path = log.clone();
    crate::logs::tests::follow_while_the_monitor_writes(writer, move |o, running| {
        read_with(&path, true, o, running)
    });
    assert!(locallog::rotated(&log, 100, true).exists());
}

#[test]
fn follow_after_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("container.log");
    let format = Format::Local { compress: false };
    let mut writer = LogFile::open(&log, Some(100), 1, format);
    let running = Arc::new(AtomicBool::new(true));
    let r = Arc::clone(&running);
    let o = LogOptions {
        follow: true,
        ..both()
    };
    let path = log.clone();
    let reader = std::thread::spawn(move || {
        read_with(&path, true, o, Box::new(move || r.load(Ordering::SeqCst)))
    });
    for i in 0..6 {
        writer
            .write(LogStream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(120));
    }
    running.store(false, Ordering::SeqCst);
    let out = String::from_utf8(reader.join().unwrap()).unwrap();
    let expected: String = (0..6).map(|i| format!("line {i}\n")).collect();
    assert_eq!(out, expected);
}
