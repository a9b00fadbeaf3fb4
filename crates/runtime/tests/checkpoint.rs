//! `checkpoint` and `restore` through the real binary and Debian's criu.
//!
//! Where `criu check` passes, a counting container is checkpointed and restored and must count
//! on. Where it does not (criu 3.17 cannot initialise on newer kernels: "Unexpected rt vDSO area
//! bounds"), the commands must fail at once with criu's own words and leave the containers as
//! they were. Either way something real is asserted; nothing is skipped.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{run_with_timeout, Bundle, Output, TIMEOUT};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// How fast a failure of criu must be reported (criu fails in tens of milliseconds here).
const PROMPT: Duration = Duration::from_secs(5);

/// `criu check`: Ok where criu works on this kernel, else its first `Error (...)` line.
fn criu_check() -> Result<(), String> {
    let out = run_with_timeout(Command::new("criu").arg("check"), TIMEOUT);
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", out.stdout, out.stderr);
    let first_error = text
        .lines()
        .find_map(|l| l.find("Error (").map(|at| l[at..].trim().to_string()));
    Err(first_error.unwrap_or_else(|| panic!("criu check failed without an error line: {out:?}")))
}

/// `run --detach` with every stdio /dev/null, which criu can reopen after a restore (a test's
/// output file would be deleted by then).
fn run_detached(b: &Bundle) {
    let bundle = b.path().display().to_string();
    let mut cmd = b.command(&["run", "--detach", "--bundle", &bundle, &b.id]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("run --detach did not return within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "run --detach failed: {status}");
    assert_eq!(b.state()["status"], "running");
}

/// A command of the bundle's runtime, with how long it took.
fn timed(b: &Bundle, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = b.cmd(args);
    (out, start.elapsed())
}

fn checkpoint(b: &Bundle, images: &Path, extra: &[&str]) -> (Output, Duration) {
    let images = images.display().to_string();
    let mut args = vec!["checkpoint", "--image-path", &images];
    args.extend_from_slice(extra);
    args.push(&b.id);
    timed(b, &args)
}

fn restore(b: &Bundle, id: &str, images: &Path) -> (Output, Duration) {
    let bundle = b.path().display().to_string();
    let images = images.display().to_string();
    timed(
        b,
        &[
            "restore",
            "--detach",
            "--bundle",
            &bundle,
            "--image-path",
            &images,
            id,
        ],
    )
}

/// The container has no record: `state` says it does not exist.
fn assert_gone(b: &Bundle, id: &str) {
    let state = b.cmd(&["state", id]);
    assert_eq!(state.code(), 1, "{state:?}");
    assert!(state.stderr.contains("does not exist"), "{state:?}");
}

/// The directories of the container's cgroup (`/berth-test-<id>`, see `Bundle::new`) that exist.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let name = format!("berth-test-{id}");
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(&name)];
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        candidates.push(entry.path().join(&name));
    }
    candidates.into_iter().filter(|p| p.is_dir()).collect()
}

/// The number the counting container last wrote (it renames each into place, so a read never
/// sees half of one).
fn count(b: &Bundle) -> Option<u64> {
    std::fs::read_to_string(b.rootfs().join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Waits for the count to read something other than `from`, and returns it.
fn next_count(b: &Bundle, from: Option<u64>) -> u64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let n = count(b);
        if let Some(n) = n.filter(|_| n != from) {
            return n;
        }
        assert!(Instant::now() < deadline, "the count stayed at {n:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn checkpoint_and_restore_a_running_container() {
    match criu_check() {
        Ok(()) => round_trip(),
        // criu failing on this kernel is a limit of the machine, not a prerequisite CI could
        // install: skipping or failing here would say nothing. What holds on such a machine is
        // what the issue asks for: the commands fail at once with criu's own error, and the
        // container is left as it was.
        Err(criu_error) => fails_at_once_with(&criu_error),
    }
}

/// Where criu works: the count goes on after a restore, from where it was.
fn round_trip() {
    let b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; \
             sleep 0.1; done",
        ],
    );
    run_detached(&b);
    let mut seen = None;
    while seen.is_none_or(|n| n < 5) {
        seen = Some(next_count(&b, seen));
    }
    let images = tempfile::tempdir().unwrap();
    let (out, _) = checkpoint(&b, images.path(), &[]);
    out.ok();
    // As runc: a checkpoint without --leave-running ends the container and deletes it.
    assert_gone(&b, &b.id);
    let at_dump = count(&b).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        count(&b),
        Some(at_dump),
        "something still counts after the dump"
    );

    let (out, _) = restore(&b, &b.id, images.path());
    out.ok();
    assert_eq!(b.state()["status"], "running");
    // A restarted program would write 1 first; the restored one goes on from its count.
    let after = next_count(&b, Some(at_dump));
    assert!(
        after > at_dump && after <= at_dump + 2,
        "the count went from {at_dump} to {after}"
    );
}

/// Where criu cannot work: checkpoint and restore fail promptly with criu's error, and nothing
/// changes.
fn fails_at_once_with(criu_error: &str) {
    let b = Bundle::new(RUNTIME, &["sleep", "300"]);
    run_detached(&b);
    let images = tempfile::tempdir().unwrap();
    let (out, took) = checkpoint(&b, images.path(), &[]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(took < PROMPT, "checkpoint took {took:?}");
    assert!(out.stderr.contains("criu dump failed"), "{out:?}");
    assert!(
        out.stderr.contains(criu_error),
        "{criu_error:?} not in {out:?}"
    );
    let log = images.path().join("dump.log");
    assert!(out.stderr.contains(&log.display().to_string()), "{out:?}");
    // The container runs on, and the runtime still knows and drives it.
    assert_eq!(b.state()["status"], "running");
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    b.cmd(&["delete", &b.id]).ok();

    let (out, took) = restore(&b, &b.id, images.path());
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(took < PROMPT, "restore took {took:?}");
    assert!(out.stderr.contains("criu restore failed"), "{out:?}");
    assert!(
        out.stderr.contains(criu_error),
        "{criu_error:?} not in {out:?}"
    );
    assert_gone(&b, &b.id);
    assert_eq!(cgroup_dirs(&b.id), Vec::<PathBuf>::new());
}

#[test]
fn restore_from_an_empty_or_missing_image_dir_fails_and_leaves_nothing() {
    let b = Bundle::new(RUNTIME, &["sleep", "300"]);
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for images in [empty, dir.path().join("missing")] {
        let (out, took) = restore(&b, &b.id, &images);
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(took < PROMPT, "restore took {took:?}");
        // criu's own error lines, from its log.
        assert!(
            out.stderr.contains("criu restore failed: Error ("),
            "{out:?}"
        );
        let log = images.join("restore.log");
        assert!(out.stderr.contains(&log.display().to_string()), "{out:?}");
        assert_gone(&b, &b.id);
        assert_eq!(cgroup_dirs(&b.id), Vec::<PathBuf>::new());
        assert!(!b.state_root().join(&b.id).exists());
    }
}

#[test]
fn checkpoint_of_a_created_or_stopped_container_is_refused() {
    let b = Bundle::new(RUNTIME, &["sleep", "300"]);
    let images = tempfile::tempdir().unwrap();
    b.create().ok();
    let (out, _) = checkpoint(&b, images.path(), &[]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("Container cannot be checkpointed in created state"),
        "{out:?}"
    );
    assert_eq!(b.state()["status"], "created");

    b.cmd(&["start", &b.id]).ok();
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    let (out, _) = checkpoint(&b, images.path(), &[]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("Container cannot be checkpointed in stopped state"),
        "{out:?}"
    );
}

#[test]
fn checkpoint_of_an_unknown_container_is_refused() {
    let b = Bundle::new(RUNTIME, &["true"]);
    let images = tempfile::tempdir().unwrap();
    let (out, _) = checkpoint(&b, images.path(), &[]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("does not exist"), "{out:?}");
}

#[test]
fn without_criu_the_error_names_the_package() {
    let b = Bundle::new(RUNTIME, &["sleep", "300"]);
    run_detached(&b);
    let images = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let image_arg = images.path().display().to_string();
    for args in [
        vec!["checkpoint", "--image-path", &image_arg, &b.id],
        vec!["restore", "--detach", "--image-path", &image_arg, "other"],
    ] {
        let mut cmd = b.command(&args);
        cmd.env("PATH", empty_path.path());
        let out = run_with_timeout(&mut cmd, TIMEOUT);
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(out.stderr.contains("apt-get install criu"), "{out:?}");
    }
    assert_eq!(b.state()["status"], "running");
    assert_gone(&b, "other");
}

#[test]
fn unsupported_flags_are_refused_before_criu_runs() {
    let b = Bundle::new(RUNTIME, &["sleep", "300"]);
    run_detached(&b);
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    for flags in [
        &["--lazy-pages"][..],
        &["--page-server", "127.0.0.1:27"],
        &["--status-fd", "1"],
    ] {
        let (out, _) = checkpoint(&b, &images, flags);
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(
            out.stderr.contains("is not supported"),
            "{flags:?}: {out:?}"
        );
    }
    let (out, _) = checkpoint(&b, &images, &["--manage-cgroups-mode", "hard"]);
    assert!(
        out.stderr.contains("Invalid manage-cgroups-mode value"),
        "{out:?}"
    );
    let image_arg = images.display().to_string();
    let out = b.cmd(&[
        "restore",
        "--console-socket",
        "/nonexistent.sock",
        "--image-path",
        &image_arg,
        "other",
    ]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("is not supported"), "{out:?}");
    assert!(
        !images.exists(),
        "a refused command made {}",
        images.display()
    );
    assert_eq!(b.state()["status"], "running");
}

#[test]
fn restore_into_an_id_or_cgroup_in_use_is_refused() {
    let b = Bundle::new(RUNTIME, &["sleep", "300"]);
    run_detached(&b);
    let images = tempfile::tempdir().unwrap();
    let (out, _) = restore(&b, &b.id, images.path());
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("already exists"), "{out:?}");
    // Another id with the same config would share the running container's cgroup, which a
    // failed restore would empty: refused before criu runs.
    let other = format!("{}-other", b.id);
    let (out, _) = restore(&b, &other, images.path());
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("is not empty"), "{out:?}");
    assert_gone(&b, &other);
    assert_eq!(b.state()["status"], "running");
}
