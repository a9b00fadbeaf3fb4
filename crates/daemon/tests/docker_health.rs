//! Health checks through the docker CLI and the berth CLI: `--health-*` flags and an image's
//! `HEALTHCHECK`, run by the container's monitor; `State.Health` in inspect, `(healthy)` in
//! `ps`, the `health` filter, `health_status` events, timeouts, `--no-healthcheck`, and a
//! daemon restart in the middle.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::time::{Duration, Instant};

use common::{skip, text, Daemon};
use serde_json::Value;

fn health(d: &Daemon, name: &str) -> Value {
    let out = d.ok(&["inspect", "--format", "{{json .State.Health}}", name]);
    serde_json::from_str(out.trim()).unwrap()
}

/// Waits (20 s at most) until `name`'s health status is `status`; its health then.
fn wait_status(d: &Daemon, name: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = health(d, name);
        if h["Status"] == status {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {status}: {h}\n--- berthd log:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_check_turns_unhealthy_then_healthy_and_says_so_everywhere() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "echo probing; test -e /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    let h = wait_status(&d, "web", "unhealthy");
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    let entry = &h["Log"][0];
    assert_eq!(entry["ExitCode"], 1, "{h}");
    assert_eq!(entry["Output"], "probing\n", "{h}");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("(unhealthy)"), "{ps}");
    d.ok(&["exec", "web", "sh", "-c", ">/tmp/ok"]);
    let h = wait_status(&d, "web", "healthy");
    assert_eq!(h["FailingStreak"], 0);
    // At most the last 5 results are kept.
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&d, "web")["Log"].as_array().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "fewer than 5 results");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(health(&d, "web")["Log"].as_array().unwrap().len(), 5);

    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("(healthy)"), "{ps}");
    let berth_ps = text(&d.berth(&["ps"])).0;
    assert!(berth_ps.contains("(healthy)"), "{berth_ps}");
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "health=healthy"])
            .trim()
            .len(),
        12
    );
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "health=unhealthy"]).trim(),
        ""
    );
    let bad = d.docker(&["ps", "--filter", "health=sick"]);
    assert!(
        text(&bad)
            .1
            .contains("Unrecognised filter value for health: sick"),
        "{:?}",
        text(&bad)
    );
    // The CLI sends whole seconds: `until` a second ahead takes in the events of this one.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let events = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    assert_eq!(
        actions,
        ["health_status: unhealthy", "health_status: healthy"],
        "one event per change of status"
    );

    // A probe past its timeout is killed and fails with dockerd's words.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 30",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "200ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    let h = wait_status(&d, "slow", "unhealthy");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"],
        "Health check exceeded timeout (200ms)"
    );
    d.ok(&["rm", "-f", "web", "slow"]);
}

#[test]
fn an_images_healthcheck_runs_unless_the_container_says_no() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=100ms --retries=1 CMD [\"true\"]\n",
    )
    .unwrap();
    let mut build = d.docker_command(&["build", "-q", "-t", "checked", "."]);
    build.current_dir(dir.path()).env("DOCKER_BUILDKIT", "0");
    let out = build.output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    d.ok(&["run", "-d", "--name", "img", "checked", "sleep", "300"]);
    let h = wait_status(&d, "img", "healthy");
    assert_eq!(h["Log"][0]["ExitCode"], 0);
    let test = d.ok(&[
        "inspect",
        "--format",
        "{{json .Config.Healthcheck.Test}}",
        "img",
    ]);
    assert_eq!(test.trim(), r#"["CMD","true"]"#);

    d.ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "checked",
        "sleep",
        "300",
    ]);
    let state = d.ok(&["inspect", "--format", "{{json .State.Health}}", "off"]);
    assert_eq!(state.trim(), "null");
    assert_eq!(
        d.ok(&["ps", "-q", "--filter", "health=none"]).trim().len(),
        12
    );
    // The berth CLI's flags, and dockerd's refusals.
    let out = d.berth(&[
        "run",
        "-d",
        "--name",
        "mine",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    wait_status(&d, "mine", "unhealthy");
    let out = d.berth(&["run", "--health-interval", "5", "busybox", "true"]);
    assert!(
        text(&out).1.contains("missing unit in duration"),
        "{:?}",
        text(&out)
    );
    let out = d.docker(&["run", "--health-interval", "10us", "busybox", "true"]);
    assert!(
        text(&out)
            .1
            .contains("Interval in Healthcheck cannot be less than 1ms"),
        "{:?}",
        text(&out)
    );
    d.ok(&["rm", "-f", "img", "off", "mine"]);
}

#[test]
fn health_is_followed_again_after_a_daemon_restart() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("busybox");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "kept",
        "--health-cmd",
        "test -e /tmp/ok",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    wait_status(&d, "kept", "unhealthy");
    d.kill9();
    d.spawn();
    wait_status(&d, "kept", "unhealthy");
    d.ok(&["exec", "kept", "sh", "-c", ">/tmp/ok"]);
    wait_status(&d, "kept", "healthy");
    d.ok(&["rm", "-f", "kept"]);
}
