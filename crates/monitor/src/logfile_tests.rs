//! The log writer's tests (json-file, local, none, cri).

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
    let mut log = LogFile::open(&path, None, 1, Format::JsonFile);
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
fn full(log: &mut LogFile) -> Option<File> {
    let dev_full = OpenOptions::new().append(true).open("/dev/full").unwrap();
    log.file.replace(dev_full)
}

#[test]
fn lost_records_are_counted_and_marked_once_writing_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut log = LogFile::open(&path, None, 1, Format::JsonFile);
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
    let mut log = LogFile::open(&path, None, 1, Format::JsonFile);
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
    let mut log = LogFile::open(&path, None, 1, Format::JsonFile);
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
    let mut log = LogFile::open(&path, Some(200), 3, Format::JsonFile);
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

/// The records of a `local` file (or of its compressed copy), decoded.
fn local_records(bytes: &[u8]) -> Vec<(String, String, bool, bool, i32)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let size = locallog::frame_size(rest[..4].try_into().unwrap());
        let e = locallog::decode(&rest[4..4 + size]).unwrap();
        assert_eq!(rest[4 + size..8 + size], rest[..4]);
        out.push((
            String::from_utf8(e.source.to_vec()).unwrap(),
            String::from_utf8(e.line.to_vec()).unwrap(),
            e.partial,
            e.last,
            e.ordinal,
        ));
        rest = &rest[8 + size..];
    }
    out
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn local_records_and_pieces_of_long_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.log");
    let format = Format::Local { compress: false };
    let mut log = LogFile::open(&path, None, 1, format);
    log.write(LogStream::Stdout, b"a\n").unwrap();
    log.write(LogStream::Stderr, b"e\n").unwrap();
    log.write(LogStream::Stdout, &vec![b'x'; MAX_LINE * 2 + 3])
        .unwrap();
    log.write(LogStream::Stdout, b"\nend").unwrap();
    log.finish(LogStream::Stdout).unwrap();
    let r = local_records(&std::fs::read(&path).unwrap());
    let short: Vec<_> = r
        .iter()
        .map(|(s, l, p, last, o)| (s.as_str(), l.len(), *p, *last, *o))
        .collect();
    assert_eq!(
        short,
        [
            ("stdout", 1, false, false, 0),
            ("stderr", 1, false, false, 0),
            ("stdout", MAX_LINE, true, false, 1),
            ("stdout", MAX_LINE, true, false, 2),
            ("stdout", 3, true, true, 3),
            // The end of the output without a newline: a piece that ends no line.
            ("stdout", 3, true, false, 1),
        ]
    );
    assert_eq!(r[0].1, "a");
    assert_eq!(r[5].1, "end");
}

#[test]
fn local_rotation_compresses_the_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.log");
    let mut log = LogFile::open(&path, Some(300), 3, Format::Local { compress: true });
    for i in 0..40 {
        log.write(LogStream::Stdout, format!("line {i}\n").as_bytes())
            .unwrap();
        if i % 3 == 0 {
            log.work();
        }
    }
    log.close();
    assert!(!log.busy());
    let names = |n: u32, gz: bool| locallog::rotated(&path, n, gz);
    assert!(names(1, true).exists() && names(2, true).exists());
    for gone in [
        names(1, false),
        names(2, false),
        names(3, true),
        names(3, false),
    ] {
        assert!(!gone.exists(), "{}", gone.display());
    }
    let mut lines = Vec::new();
    for bytes in [gunzip(&names(2, true)), gunzip(&names(1, true))] {
        assert!(bytes.len() <= 300);
        lines.extend(local_records(&bytes).into_iter().map(|r| r.1));
    }
    lines.extend(
        local_records(&std::fs::read(&path).unwrap())
            .into_iter()
            .map(|r| r.1),
    );
    let first: usize = lines[0].strip_prefix("line ").unwrap().parse().unwrap();
    let expected: Vec<String> = (first..40).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
    // The header says when the file's last record was written.
    let gz = flate2::read::GzDecoder::new(File::open(names(1, true)).unwrap());
    let extra: serde_json::Value =
        serde_json::from_slice(gz.header().unwrap().extra().unwrap()).unwrap();
    assert!(extra["lastTime"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn an_uncompressed_rotated_file_is_compressed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("container.log");
    let left = locallog::rotated(&path, 1, false);
    std::fs::write(&left, b"left over").unwrap();
    let mut log = LogFile::open(&path, Some(300), 3, Format::Local { compress: true });
    assert!(log.busy());
    log.close();
    assert!(!left.exists());
    assert_eq!(gunzip(&locallog::rotated(&path, 1, true)), b"left over");
}

#[test]
fn none_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let mut log = LogFile::open(&path, None, 1, Format::None);
    log.write(LogStream::Stdout, b"a\nb").unwrap();
    log.finish(LogStream::Stdout).unwrap();
    assert!(!path.exists());
}

#[test]
fn cri_lines_are_tagged_full_or_partial_and_reopen_follows_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = LogFile::open(&path, None, 1, Format::Cri);
    log.write(LogStream::Stdout, b"hello\nwor").unwrap();
    log.write(LogStream::Stderr, b"oops\n").unwrap();
    log.write(LogStream::Stdout, b"ld\n").unwrap();
    log.write(LogStream::Stdout, &vec![b'x'; MAX_LINE + 3])
        .unwrap();
    log.finish(LogStream::Stdout).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<(&str, &str, &str, &str)> = text
        .lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let mut next = || parts.next().unwrap();
            (next(), next(), next(), next())
        })
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        (lines[0].1, lines[0].2, lines[0].3),
        ("stdout", "F", "hello")
    );
    assert_eq!(
        (lines[1].1, lines[1].2, lines[1].3),
        ("stderr", "F", "oops")
    );
    assert_eq!(
        (lines[2].1, lines[2].2, lines[2].3),
        ("stdout", "F", "world")
    );
    assert_eq!((lines[3].2, lines[3].3.len()), ("P", MAX_LINE));
    assert_eq!((lines[4].2, lines[4].3), ("F", "xxx"));
    // RFC 3339 with nanoseconds, UTC: what kubelet parses.
    let time = lines[0].0;
    assert!(time.ends_with('Z') && time.len() == 30, "{time}");
    assert!(humantime::parse_rfc3339(time).is_ok());

    // kubelet's rotation: the file is renamed, then the log reopened.
    std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
    log.write(LogStream::Stdout, b"before\n").unwrap();
    log.reopen().unwrap();
    log.write(LogStream::Stdout, b"after\n").unwrap();
    let old = std::fs::read_to_string(dir.path().join("0.log.1")).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(old.trim_end().ends_with("F before"), "{old}");
    assert!(
        new.ends_with("stdout F after\n") && new.lines().count() == 1,
        "{new}"
    );
}
