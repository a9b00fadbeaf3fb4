#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Log drivers (issue 14) through the docker CLI: `none` keeps no log (`docker logs` answers
//! dockerd's 501, attach still streams), `local` writes dockerd's framed protobuf records,
//! rotates them by `max-size`/`max-file` and gzips the rotated files, and `docker logs`
//! (`--tail`, `--since`, `--until`, `-f`, `-t`) reads them back across the files; options
//! dockerd refuses are refused at create; daemon.json's `log-driver`/`log-opts` are the
//! default of containers that name no driver. Every wait has a deadline.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{skip, text, Daemon};

fn daemon() -> Daemon {
    let d = Daemon::start();
    d.busybox("bb:local");
    d
}

/// The directory berthd keeps container `name` in.
fn container_dir(d: &Daemon, name: &str) -> PathBuf {
    let id = d.ok(&["inspect", "-f", "{{.Id}}", name]);
    d.data_root.join("containers").join(id.trim())
}

/// The status line and body of a GET on berthd's socket.
fn raw_get(d: &Daemon, path: &str) -> String {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The lines (`line` fields) of the records of a `local` log file's bytes, checking the sizes
/// around each.
fn local_lines(mut bytes: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    while !bytes.is_empty() {
        let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(
            bytes[4 + size..8 + size],
            bytes[..4],
            "sizes around a record"
        );
        let e = berth_monitor::locallog::decode(&bytes[4..4 + size]).unwrap();
        lines.push(String::from_utf8(e.line.to_vec()).unwrap());
        bytes = &bytes[8 + size..];
    }
    lines
}

fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "gzip -dc {}: {out:?}", path.display());
    out.stdout
}

#[test]
fn none_keeps_no_log_and_attach_still_streams() {
    if skip() {
        return;
    }
    let d = daemon();
    // `docker run` attaches: the output reaches the client though nothing is logged.
    let out = d.ok(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "bb:local",
        "echo",
        "hello",
    ]);
    assert_eq!(out, "hello\n");
    let logs = d.docker(&["logs", "quiet"]);
    assert!(!logs.status.success());
    let (stdout, stderr) = text(&logs);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr.trim(),
        "Error response from daemon: configured logging driver does not support reading"
    );
    let answer = raw_get(&d, "/v1.43/containers/quiet/logs?stdout=1");
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.LogConfig.Type}}|{{.LogPath}}",
            "quiet"
        ]),
        "none|\n"
    );
    // No log file at all.
    let dir = container_dir(&d, "quiet");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with(".log") || f == "local-logs"),
        "{files:?}"
    );

    // `docker attach` to a running one streams what it prints from then on.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--log-driver",
        "none",
        "bb:local",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    let mut attach = d
        .docker_command(&["attach", "--no-stdin", "ticker"])
        .spawn()
        .unwrap();
    let mut stdout = attach.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let n = stdout.read(&mut buf).unwrap_or(0);
        let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
    });
    let first = rx.recv_timeout(Duration::from_secs(20));
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(first.unwrap().starts_with("tick "));
    d.ok(&["rm", "-f", "ticker"]);
}

#[test]
fn local_rotates_compresses_and_reads_back_across_files() {
    if skip() {
        return;
    }
    let d = daemon();
    // Two batches of 100 lines a second apart (stdout, then stderr), 27 records a file of
    // 1000 bytes: eight files, all kept (max-file 10).
    let script = "for i in $(seq 1 100); do echo \"first $i\"; done; sleep 1.2; \
        for i in $(seq 1 100); do echo \"second $i\" >&2; done";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=10",
        "bb:local",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(d.ok(&["wait", "loc"]).trim(), "0");
    let first: Vec<String> = (1..=100).map(|i| format!("first {i}\n")).collect();
    let second: Vec<String> = (1..=100).map(|i| format!("second {i}\n")).collect();
    let all = first.concat() + &second.concat();

    // The files: LOG and LOG.1.gz ... LOG.N.gz, each at most max-size, compressed once the
    // monitor is done with them.
    let dir = container_dir(&d, "loc").join("local-logs");
    let log = dir.join("container.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while (1..10).any(|n| dir.join(format!("container.log.{n}")).exists()) {
        assert!(Instant::now() < deadline, "rotated files left uncompressed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rotated: Vec<PathBuf> = (1..10)
        .map(|n| dir.join(format!("container.log.{n}.gz")))
        .filter(|p| p.exists())
        .collect();
    assert!(rotated.len() >= 6, "{} rotated files", rotated.len());
    assert!(!dir.join("container.log.10.gz").exists());
    let mut on_disk = Vec::new();
    for p in rotated.iter().rev() {
        let bytes = gunzip(p);
        assert!(
            bytes.len() <= 1000,
            "{}: {} bytes",
            p.display(),
            bytes.len()
        );
        on_disk.extend(local_lines(&bytes));
    }
    on_disk.extend(local_lines(&std::fs::read(&log).unwrap()));
    let expected: Vec<&str> = all.lines().collect();
    assert_eq!(on_disk, expected);
    // Not a json-file log.
    assert_eq!(d.ok(&["inspect", "-f", "{{.LogPath}}", "loc"]), "\n");

    // docker logs, across the files, in order, the streams apart.
    assert_eq!(d.ok(&["logs", "loc"]), first.concat());
    let out = d.docker(&["logs", "loc"]);
    assert_eq!(text(&out).1, second.concat());
    let both = |args: &[&str]| {
        let mut full = vec!["logs"];
        full.extend_from_slice(args);
        full.push("loc");
        let out = d.docker(&full);
        assert!(out.status.success(), "{out:?}");
        let (o, e) = text(&out);
        o + &e
    };
    assert_eq!(both(&["--tail", "1"]), "second 100\n");
    // The last 120 records: back through several compressed files.
    assert_eq!(
        both(&["--tail", "120"]),
        first[80..].concat() + &second.concat()
    );
    assert_eq!(both(&["--tail", "all"]), all);

    // --timestamps, and --since / --until at the first line of the second batch.
    let stamped = d.ok(&["logs", "-t", "loc"]);
    let line = stamped.lines().next().unwrap();
    assert_eq!(line.len(), 30 + " first 1".len(), "{line}");
    assert!(line.ends_with("Z first 1"), "{line}");
    let stamped_err = text(&d.docker(&["logs", "-t", "loc"])).1;
    let t2 = stamped_err
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let t1 = stamped.lines().last().unwrap().split(' ').next().unwrap();
    assert_eq!(both(&["--since", t2]), second.concat());
    assert_eq!(both(&["--until", t1]), first.concat());
    assert_eq!(both(&["--since", t2, "--tail", "3"]), second[97..].concat());
}

#[test]
fn local_follow_goes_on_across_rotations() {
    if skip() {
        return;
    }
    let d = daemon();
    let ctl = d.dir.join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    let volume = format!("{}:/ctl", ctl.display());
    // About 18 records a file: 300 lines rotate the log more than ten times, in bursts.
    let script = "until [ -e /ctl/go ]; do sleep 0.02; done; i=0; \
        while [ $i -lt 300 ]; do echo \"line $i\"; i=$((i+1)); \
        [ $((i % 20)) = 0 ] && sleep 0.05; done; true";
    d.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
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
    let dir = container_dir(&d, "rot").join("local-logs");
    let rotated = (1..50)
        .filter(|n| dir.join(format!("container.log.{n}.gz")).exists())
        .count();
    assert!(rotated >= 10, "{rotated} rotated files");
    assert_eq!(d.ok(&["logs", "rot"]), expected);
}

#[test]
fn options_dockerd_refuses_are_refused_at_create() {
    if skip() {
        return;
    }
    let d = daemon();
    let refused = |opts: &[&str], message: &str| {
        let mut args = vec!["create", "--log-driver", "local"];
        for o in opts {
            args.extend(["--log-opt", o]);
        }
        args.extend(["bb:local", "true"]);
        let out = d.docker(&args);
        assert!(!out.status.success(), "{opts:?} accepted");
        assert_eq!(
            text(&out).1.trim(),
            format!("Error response from daemon: {message}"),
            "{opts:?}"
        );
    };
    refused(&["foo=bar"], "unknown log opt 'foo' for log driver local");
    refused(
        &["max-file=1"],
        "compression cannot be enabled when max file count is 1",
    );
    refused(
        &["max-size=lots"],
        "invalid value for max-size: lots: invalid size: 'lots'",
    );
    refused(
        &["compress=maybe"],
        "invalid boolean value for compress: strconv.ParseBool: parsing \"maybe\": invalid syntax",
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // What dockerd takes.
    d.ok(&[
        "create",
        "--name",
        "fine",
        "--log-driver",
        "local",
        "--log-opt",
        "max-file=1",
        "--log-opt",
        "compress=false",
        "--log-opt",
        "mode=non-blocking",
        "bb:local",
        "true",
    ]);
}

#[test]
fn the_daemon_default_comes_from_daemon_json() {
    if skip() {
        return;
    }
    let d = Daemon::start_with(|dir| {
        std::fs::write(
            dir.join("daemon.json"),
            r#"{"log-driver": "local", "log-opts": {"max-size": "1k", "max-file": "4"}}"#,
        )
        .unwrap();
    });
    d.busybox("bb:local");
    assert_eq!(d.ok(&["info", "--format", "{{.LoggingDriver}}"]), "local\n");
    let plugins = d.ok(&["info", "--format", "{{json .Plugins.Log}}"]);
    for name in ["\"json-file\"", "\"local\"", "\"syslog\""] {
        assert!(plugins.contains(name), "{plugins}");
    }
    d.ok(&[
        "run",
        "--name",
        "dflt",
        "bb:local",
        "sh",
        "-c",
        "for i in $(seq 1 100); do echo \"n $i\"; done",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "dflt"]),
        "{\"Type\":\"local\",\"Config\":{\"max-file\":\"4\",\"max-size\":\"1k\"}}\n"
    );
    let dir = container_dir(&d, "dflt").join("local-logs");
    assert!(dir.join("container.log").exists());
    assert!(!dir.join("container.log.4.gz").exists());
    let tail: String = (97..=100).map(|i| format!("n {i}\n")).collect();
    assert_eq!(d.ok(&["logs", "--tail", "4", "dflt"]), tail);
    // A container's own options win; another driver takes none of the default's.
    d.ok(&[
        "create",
        "--name",
        "own",
        "--log-opt",
        "max-size=2k",
        "bb:local",
        "true",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.LogConfig.Config}}",
            "own"
        ]),
        "{\"max-file\":\"4\",\"max-size\":\"2k\"}\n"
    );
    d.ok(&[
        "run",
        "--name",
        "js",
        "--log-driver",
        "json-file",
        "bb:local",
        "echo",
        "hi",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "js"]),
        "{\"Type\":\"json-file\",\"Config\":{}}\n"
    );
    assert!(d
        .ok(&["inspect", "-f", "{{.LogPath}}", "js"])
        .trim()
        .ends_with("-json.log"));
    assert_eq!(d.ok(&["logs", "js"]), "hi\n");
}
