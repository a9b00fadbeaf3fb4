//! Process options of `docker run` that reach the kernel: `--oom-score-adj` (the process's
//! `/proc/PID/oom_score_adj`, refused out of range with dockerd's words) and
//! `--security-opt systempaths=unconfined` (the docker CLI sends empty `MaskedPaths` and
//! `ReadonlyPaths`: nothing of /proc is masked or read-only).

#![allow(clippy::unwrap_used)]

mod common;

use common::{skip, text, Daemon};

#[test]
fn oom_score_adj_and_system_paths_reach_the_process() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        d.ok(&all)
    };
    let own = run(&[
        "--oom-score-adj",
        "500",
        "bb:local",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    assert_eq!(own.trim(), "500");
    let default = run(&["bb:local", "cat", "/proc/self/oom_score_adj"]);
    assert_eq!(default.trim(), "0");
    let out = d.docker(&["run", "--rm", "--oom-score-adj", "1001", "bb:local", "true"]);
    let (_, err) = text(&out);
    assert!(
        err.contains("Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        "{err}"
    );

    // Masked and read-only by default; neither with systempaths=unconfined.
    let mounts = run(&["bb:local", "cat", "/proc/self/mountinfo"]);
    assert!(mounts.contains(" /proc/keys "), "{mounts}");
    assert!(mounts.contains(" /proc/sys ro,"), "{mounts}");
    let open = run(&[
        "--security-opt",
        "systempaths=unconfined",
        "bb:local",
        "cat",
        "/proc/self/mountinfo",
    ]);
    assert!(!open.contains(" /proc/keys "), "{open}");
    assert!(!open.contains(" /proc/sys "), "{open}");
}
