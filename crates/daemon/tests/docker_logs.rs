#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Logs streamed from disk (issue 12): on logs of hundreds of MB written straight into a
//! created container's json-file, `--tail 1` is quick and reads little, a full read and a
//! slow reader leave berthd's memory where it was, `until` and `since` read only what they
//! send; `attach?logs=1` replays the log; on a full disk (a small tmpfs data root) the lines
//! the monitor could not write are counted in a marker record once there is room again.
//! berthd's memory is its VmHWM after a reset (`clear_refs` 5) against its VmRSS before; what
//! it read is the `rchar` of /proc/PID/io. Every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_api::stdcopy::{self, Stream};
use common::{skip, Daemon};

const MB: u64 = 1 << 20;

/// A field of /proc/PID/FILE (`status`: kB, `io`: bytes).
fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/{file}"))
}

/// berthd's memory and reading, measured around a request.
struct Meter {
    pid: u32,
    rss_kb: u64,
    rchar: u64,
}

impl Meter {
    /// Resets berthd's peak RSS and notes its RSS and bytes read so far.
    fn start(pid: u32) -> Meter {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
        Meter {
            pid,
            rss_kb: proc_field(pid, "status", "VmRSS"),
            rchar: proc_field(pid, "io", "rchar"),
        }
    }

    /// How far berthd's RSS peaked above where it was, in MB.
    fn peak_growth_mb(&self) -> f64 {
        let hwm = proc_field(self.pid, "status", "VmHWM");
        hwm.saturating_sub(self.rss_kb) as f64 / 1024.0
    }

    /// Bytes berthd read since.
    fn read(&self) -> u64 {
        proc_field(self.pid, "io", "rchar") - self.rchar
    }
}

/// Times of the generated logs: the early lines at T0 + i ms, the bulk at T1, the end at T2.
struct Times {
    t0: u64,
}

impl Times {
    fn new() -> Times {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Times { t0: now - 3600 }
    }
    fn early(&self, i: u64) -> String {
        rfc3339(self.t0, i * 1_000_000)
    }
    fn bulk(&self) -> String {
        rfc3339(self.t0 + 600, 0)
    }
    fn end(&self) -> String {
        rfc3339(self.t0 + 601, 0)
    }
}

fn rfc3339(secs: u64, nanos: u64) -> String {
    let t = UNIX_EPOCH + Duration::new(secs, nanos as u32);
    humantime::format_rfc3339_nanos(t).to_string()
}

const EARLY: u64 = 1000;

/// A created container `name` whose json-file log is written here: EARLY lines `early I`,
/// then about `bulk` bytes of `bulk line` records, then `the end`. The number of records.
fn big_log(d: &Daemon, name: &str, bulk: u64, times: &Times) -> u64 {
    d.ok(&["create", "--name", name, "bb:local", "true"]);
    let path = PathBuf::from(d.ok(&["inspect", "-f", "{{.LogPath}}", name]).trim());
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    for i in 0..EARLY {
        let t = times.early(i);
        writeln!(
            w,
            r#"{{"log":"early {i}\n","stream":"stdout","time":"{t}"}}"#
        )
        .unwrap();
    }
    let line = format!(
        "{{\"log\":\"bulk line {}\\n\",\"stream\":\"stdout\",\"time\":\"{}\"}}\n",
        "x".repeat(60),
        times.bulk()
    );
    let block = line.repeat((1 << 20) / line.len());
    let per_block = (block.len() / line.len()) as u64;
    let blocks = bulk / block.len() as u64;
    for _ in 0..blocks {
        w.write_all(block.as_bytes()).unwrap();
    }
    let t = times.end();
    writeln!(w, r#"{{"log":"the end\n","stream":"stderr","time":"{t}"}}"#).unwrap();
    w.into_inner().unwrap().sync_all().unwrap();
    EARLY + blocks * per_block + 1
}

/// A daemon with the busybox image and a warmed-up `logs` path (a small container's log
/// read once), so that what the measured request costs is its own.
fn daemon() -> Daemon {
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "--name", "small", "bb:local", "echo", "warm"]);
    assert_eq!(d.ok(&["logs", "small"]), "warm\n");
    d
}

/// An HTTP/1.0 request on the socket (the body then ends with the connection; an upgrade,
/// with `Upgrade` in `extra`, is HTTP/1.1 as the docker CLI sends it); the status line and
/// headers are read, the rest is left to the caller.
fn request(d: &Daemon, method: &str, path: &str, extra: &str) -> (String, BufReader<UnixStream>) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let version = if extra.contains("Upgrade") {
        "1.1"
    } else {
        "1.0"
    };
    write!(
        s,
        "{method} {path} HTTP/{version}\r\nHost: docker\r\n{extra}\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "no answer: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    (head, r)
}

/// The frames of a logs or attach body, to its end.
fn frames(r: &mut impl Read) -> Vec<(Stream, String)> {
    let mut out = Vec::new();
    while let Some((stream, payload)) = stdcopy::read_frame(r).unwrap() {
        out.push((stream, String::from_utf8(payload).unwrap()));
    }
    out
}

/// Reads whole frames until at least `bytes` of payload came; how many frames.
fn take(r: &mut impl Read, bytes: usize) -> u64 {
    let (mut n, mut got) = (0, 0);
    while got < bytes {
        let (_, payload) = stdcopy::read_frame(r).unwrap().expect("a frame");
        got += payload.len();
        n += 1;
    }
    n
}

/// `since`/`until` for a time: Unix seconds and nanoseconds, as the docker CLI sends them.
fn unix(secs: u64, nanos: u64) -> String {
    format!("{secs}.{nanos:09}")
}

#[test]
fn tail_of_a_large_log_is_quick_and_reads_little() {
    if skip() {
        return;
    }
    let d = daemon();
    let times = Times::new();
    big_log(&d, "big", 300 * MB, &times);
    let m = Meter::start(d.pid());
    let t = Instant::now();
    let out = d.docker(&["logs", "--tail", "1", "big"]);
    let took = t.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "the end\n");
    assert!(out.stdout.is_empty());
    eprintln!(
        "tail 1: {took:?}, read {} bytes, RSS +{:.1} MB",
        m.read(),
        m.peak_growth_mb()
    );
    assert!(took < Duration::from_secs(1), "logs --tail 1 took {took:?}");
    assert!(m.read() < MB, "berthd read {} bytes", m.read());
    assert!(
        m.peak_growth_mb() < 20.0,
        "berthd grew by {:.1} MB",
        m.peak_growth_mb()
    );
    // And a few lines back, across the bulk.
    let out = d.ok(&["logs", "--tail", "3", "big"]);
    assert_eq!(out.lines().count(), 2);
    assert!(out.starts_with("bulk line x"), "{out}");
}

#[test]
fn full_logs_stream_in_bounded_memory() {
    if skip() {
        return;
    }
    let d = daemon();
    let times = Times::new();
    let records = big_log(&d, "big", 200 * MB, &times);
    let size = std::fs::metadata(d.ok(&["inspect", "-f", "{{.LogPath}}", "big"]).trim())
        .unwrap()
        .len();
    let m = Meter::start(d.pid());
    let (head, mut body) = request(
        &d,
        "GET",
        "/containers/big/logs?stdout=1&stderr=1&timestamps=1",
        "",
    );
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, None);
    while let Some((stream, payload)) = stdcopy::read_frame(&mut body).unwrap() {
        count += 1;
        bytes += payload.len() as u64;
        if first.is_none() {
            first = Some(String::from_utf8(payload).unwrap());
        } else if stream == Stream::Stderr {
            last = Some(String::from_utf8(payload).unwrap());
        }
    }
    assert_eq!(count, records);
    assert_eq!(first.unwrap(), format!("{} early 0\n", times.early(0)));
    assert_eq!(last.unwrap(), format!("{} the end\n", times.end()));
    assert!(bytes > 100 * MB);
    let read = m.read();
    eprintln!(
        "full: {count} records, read {read} of {size} bytes, RSS +{:.1} MB",
        m.peak_growth_mb()
    );
    assert!(
        read >= size && read < size + 8 * MB,
        "read {read} of {size}"
    );
    assert!(
        m.peak_growth_mb() < 20.0,
        "berthd grew by {:.1} MB",
        m.peak_growth_mb()
    );
}

#[test]
fn until_and_since_read_only_what_they_send() {
    if skip() {
        return;
    }
    let d = daemon();
    let times = Times::new();
    big_log(&d, "big", 200 * MB, &times);
    // until: the early lines, and the reading stops at the first bulk line.
    let m = Meter::start(d.pid());
    let until = unix(times.t0 + 300, 0);
    let path = format!("/containers/big/logs?stdout=1&stderr=1&until={until}");
    let (head, mut body) = request(&d, "GET", &path, "");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let got = frames(&mut body);
    assert_eq!(got.len() as u64, EARLY);
    assert_eq!(got[0], (Stream::Stdout, "early 0\n".to_string()));
    assert_eq!(got[999], (Stream::Stdout, "early 999\n".to_string()));
    assert!(m.read() < 4 * MB, "until: berthd read {} bytes", m.read());
    // since: the last record only, found without reading the bulk.
    let m = Meter::start(d.pid());
    let out = d.docker(&["logs", "--since", &unix(times.t0 + 600, 1), "big"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "the end\n");
    assert!(out.stdout.is_empty());
    assert!(m.read() < 4 * MB, "since: berthd read {} bytes", m.read());
    // Both: a window of early lines.
    let since = unix(times.t0, 10_000_000);
    let until = unix(times.t0, 12_000_000);
    let out = d.ok(&["logs", "--since", &since, "--until", &until, "big"]);
    assert_eq!(out, "early 10\nearly 11\nearly 12\n");
}

#[test]
fn a_slow_reader_holds_berthd_back() {
    if skip() {
        return;
    }
    let d = daemon();
    let times = Times::new();
    let records = big_log(&d, "big", 200 * MB, &times);
    let m = Meter::start(d.pid());
    let (head, mut body) = request(&d, "GET", "/containers/big/logs?stdout=1&stderr=1", "");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let mut taken = take(&mut body, 64 << 10);
    std::thread::sleep(Duration::from_secs(2));
    let read = m.read();
    eprintln!(
        "slow reader: read {read} bytes, RSS +{:.1} MB",
        m.peak_growth_mb()
    );
    assert!(
        read < 16 * MB,
        "berthd read {read} bytes for a client that took 64 KiB"
    );
    assert!(
        m.peak_growth_mb() < 20.0,
        "berthd grew by {:.1} MB",
        m.peak_growth_mb()
    );
    // A little more, slowly: berthd keeps pace with the client, not the disk.
    for _ in 0..10 {
        taken += take(&mut body, 64 << 10);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(m.read() < 16 * MB, "berthd read {} bytes", m.read());
    // Then all of it.
    let rest = frames(&mut body);
    assert_eq!(taken + rest.len() as u64, records);
    assert_eq!(rest.last().unwrap().1, "the end\n");
    assert!(
        m.peak_growth_mb() < 20.0,
        "berthd grew by {:.1} MB",
        m.peak_growth_mb()
    );
}

#[test]
fn a_client_that_leaves_stops_the_reading() {
    if skip() {
        return;
    }
    let d = daemon();
    let times = Times::new();
    big_log(&d, "big", 100 * MB, &times);
    let m = Meter::start(d.pid());
    {
        let (head, mut body) = request(&d, "GET", "/containers/big/logs?stdout=1&stderr=1", "");
        assert!(head.starts_with("HTTP/1.0 200"), "{head}");
        let mut got = vec![0u8; 64 << 10];
        body.read_exact(&mut got).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let read = m.read();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        m.read(),
        read,
        "berthd went on reading for a client that left"
    );
    assert!(read < 16 * MB, "berthd read {read} bytes");
}

/// `POST /containers/NAME/attach?QUERY` hijacked; the frames until the stream ends.
fn attach(d: &Daemon, name: &str, query: &str) -> (String, Vec<(Stream, String)>) {
    let (head, mut body) = request(
        d,
        "POST",
        &format!("/containers/{name}/attach?{query}"),
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n",
    );
    let got = frames(&mut body);
    (head, got)
}

#[test]
fn attach_with_logs_replays_the_log() {
    if skip() {
        return;
    }
    let d = daemon();
    d.ok(&[
        "run",
        "--name",
        "done",
        "bb:local",
        "sh",
        "-c",
        "echo out; sleep 0.1; echo err >&2; sleep 0.1; echo out2",
    ]);
    let (head, got) = attach(&d, "done", "logs=1&stream=0&stdout=1&stderr=1");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        got,
        [
            (Stream::Stdout, "out\n".to_string()),
            (Stream::Stderr, "err\n".to_string()),
            (Stream::Stdout, "out2\n".to_string()),
        ]
    );
    let (_, got) = attach(&d, "done", "logs=1&stream=0&stderr=1");
    assert_eq!(got, [(Stream::Stderr, "err\n".to_string())]);
    // logs=1 with the live stream of a running container: the log so far, then new output.
    let ctl = d.dir.join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let volume = format!("{}:/ctl", ctl.display());
    let script = "echo first; until [ -e /ctl/next ]; do sleep 0.02; done; echo second";
    d.ok(&[
        "run", "-d", "--name", "live", "-v", &volume, "bb:local", "sh", "-c", script,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.ok(&["logs", "live"]) != "first\n" {
        assert!(Instant::now() < deadline, "no first line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (head, mut body) = request(
        &d,
        "POST",
        "/containers/live/attach?logs=1&stream=1&stdout=1&stderr=1",
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let first = stdcopy::read_frame(&mut body).unwrap().unwrap();
    assert_eq!(first, (Stream::Stdout, b"first\n".to_vec()));
    // The live stream is attached once the log is sent; give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(ctl.join("next"), "").unwrap();
    assert_eq!(
        frames(&mut body),
        [(Stream::Stdout, "second\n".to_string())]
    );
}

/// Fills the filesystem of `dir` with `dir/filler` until a write fails; the bytes written.
fn fill(dir: &Path) -> u64 {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let mut total = 0u64;
    for size in [1 << 20, 4096, 1] {
        let chunk = vec![0u8; size];
        while let Ok(n) = f.write(&chunk) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    total
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lines_lost_on_a_full_disk_are_counted_in_a_marker() {
    if skip() {
        return;
    }
    // A data root of 64 MB on a tmpfs of its own, unmounted by the fixture's drop.
    let d = Daemon::start_with(|dir| {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "berth-test-full"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
    });
    d.busybox("bb:local");
    let ctl = d.dir.join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let script = "echo start; until [ -e /ctl/go ]; do sleep 0.02; done; \
        i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done; touch /ctl/printed; \
        until [ -e /ctl/freed ]; do sleep 0.02; done; echo after; echo after2 >&2";
    let volume = format!("{}:/ctl", ctl.display());
    d.ok(&[
        "run", "-d", "--name", "full", "-v", &volume, "bb:local", "sh", "-c", script,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.ok(&["logs", "full"]) != "start\n" {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let data = d.dir.join("data");
    let filled = fill(&data);
    assert!(filled > 0);
    std::fs::write(ctl.join("go"), "").unwrap();
    wait_for(&ctl.join("printed"), "printing 20000 lines on a full disk");
    // The monitor drains the pipe meanwhile; let it meet the full disk for a while.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(data.join("filler")).unwrap();
    std::fs::write(ctl.join("freed"), "").unwrap();
    let out = d.docker(&["wait", "full"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{out:?}");

    let (head, mut body) = request(&d, "GET", "/containers/full/logs?stdout=1&stderr=1", "");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let got = frames(&mut body);
    let shown = got.iter().filter(|(_, t)| t.starts_with("line ")).count() as u64;
    let markers: Vec<(usize, &str)> = got
        .iter()
        .enumerate()
        .filter(|(_, (s, t))| *s == Stream::Stderr && t.starts_with("berth: "))
        .map(|(i, (_, t))| (i, t.as_str()))
        .collect();
    assert_eq!(markers.len(), 1, "one marker: {markers:?}");
    let (at, marker) = markers[0];
    let lost: u64 = marker
        .strip_prefix("berth: ")
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("marker {marker:?}"));
    assert!(
        marker.contains(" log lines lost (no space left on device) from "),
        "{marker}"
    );
    eprintln!("full disk: {shown} shown, {marker:?}");
    assert_eq!(shown + lost, 20_000, "{shown} shown, {lost} lost: {marker}");
    assert!(
        lost >= 10_000,
        "{shown} shown, {lost} lost: the disk was not full"
    );
    // The lines shown before the marker are in order, and output after it is there again.
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    let after = texts.iter().position(|t| *t == "after\n").unwrap();
    assert!(at < after, "{:?}", &texts[at.saturating_sub(2)..]);
    assert_eq!(texts[after + 1], "after2\n");
    assert_eq!(texts[0], "start\n");
    // No torn record in the file: every line is JSON.
    let path = d.ok(&["inspect", "-f", "{{.LogPath}}", "full"]);
    let file = std::fs::read_to_string(path.trim()).unwrap();
    for line in file.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("torn record {line:?}: {e}"));
    }
}

#[test]
fn follow_across_rotations_of_max_size() {
    if skip() {
        return;
    }
    let d = daemon();
    let ctl = d.dir.join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let volume = format!("{}:/ctl", ctl.display());
    // About 30 records a file: 300 lines rotate the log about ten times, in bursts.
    let script = "until [ -e /ctl/go ]; do sleep 0.02; done; i=0; \
        while [ $i -lt 300 ]; do echo \"line $i\"; i=$((i+1)); \
        [ $((i % 20)) = 0 ] && sleep 0.05; done; true";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=50",
        "-v",
        &volume,
        "bb:local",
        "sh",
        "-c",
        script,
    ]);
    let expected: String = (0..300).map(|i| format!("line {i}\n")).collect();
    let followed = std::thread::scope(|s| {
        let follower = s.spawn(|| d.docker(&["logs", "-f", "rot"]));
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(ctl.join("go"), "").unwrap();
        follower.join().unwrap()
    });
    assert!(followed.status.success(), "{followed:?}");
    assert_eq!(String::from_utf8_lossy(&followed.stdout), expected);
    let path = d.ok(&["inspect", "-f", "{{.LogPath}}", "rot"]);
    let rotated = (1..50)
        .filter(|n| Path::new(&format!("{}.{n}", path.trim())).exists())
        .count();
    assert!(rotated >= 5, "{rotated} rotated files");
    assert_eq!(d.ok(&["logs", "rot"]), expected);
    let tail = d.ok(&["logs", "--tail", "100", "rot"]);
    assert_eq!(tail, expected[expected.find("line 200\n").unwrap()..]);
}
