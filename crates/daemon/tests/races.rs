//! What real SDK clients do in quick succession: kill then inspect, remove or start again;
//! each call must see the state the previous one left.

mod common;

use common::{skip, text, Daemon};

#[test]
fn kill_returns_once_the_container_has_exited() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let socket = d.socket.display().to_string();
    for round in 0..5 {
        d.ok(&["run", "-d", "--name", "killed", "busybox", "sleep", "300"]);
        // One connection, three requests back to back, as an SDK makes them: kill, inspect,
        // remove without force. Straight after the kill the container is stopped, with
        // SIGKILL's code, and can be removed.
        let out = std::process::Command::new("curl")
            .args(["-s", "--unix-socket", &socket])
            .args(["-X", "POST", "http://d/containers/killed/kill"])
            .args(["--next", "-s", "--unix-socket", &socket])
            .arg("http://d/containers/killed/json")
            .args([
                "--next",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "delete=%{http_code}",
            ])
            .args([
                "--unix-socket",
                &socket,
                "-X",
                "DELETE",
                "http://d/containers/killed",
            ])
            .output()
            .expect("curl");
        let (stdout, _) = text(&out);
        let json_start = stdout.find('{').unwrap_or(0);
        let json_end = stdout.rfind('}').map_or(stdout.len(), |i| i + 1);
        let inspect: serde_json::Value =
            serde_json::from_str(stdout.get(json_start..json_end).unwrap_or("{}"))
                .unwrap_or_default();
        assert_eq!(
            inspect["State"]["Running"], false,
            "round {round}: {stdout}"
        );
        assert_eq!(inspect["State"]["ExitCode"], 137, "round {round}: {stdout}");
        assert!(stdout.ends_with("delete=204"), "round {round}: {stdout}");
    }
}

#[test]
fn start_right_after_kill_never_races_the_teardown() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "again", "busybox", "sleep", "300"]);
    for round in 0..10 {
        d.ok(&["kill", "again"]);
        let out = d.docker(&["start", "again"]);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "round {round}: start failed: {stdout}{stderr}\n{}",
            d.log()
        );
    }
    let state = d.ok(&["inspect", "-f", "{{.State.Running}}", "again"]);
    assert_eq!(state.trim(), "true");
}

#[test]
fn a_container_exiting_by_itself_can_be_started_at_once() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["create", "--name", "quick", "busybox", "true"]);
    for round in 0..10 {
        // `start -a` returns when the program has exited; the teardown may still be going on.
        let out = d.docker(&["start", "-a", "quick"]);
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "round {round}: {stdout}{stderr}\n{}",
            d.log()
        );
    }
}
