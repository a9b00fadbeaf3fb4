//! What real SDK clients do in quick succession: kill then inspect, remove or start again;
//! each call must see the state the previous one left.

mod common;

use std::time::{Duration, Instant};

use common::{python_sdk, skip, text, Daemon};

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

#[test]
fn attach_with_logs_and_no_stream_sends_the_logs_and_closes() {
    use std::io::{Read, Write};
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&[
        "run",
        "--name",
        "done",
        "busybox",
        "echo",
        "hello from the past",
    ]);
    let mut conn = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    conn.write_all(
        b"POST /containers/done/attach?logs=1&stream=0&stdout=1&stderr=1 HTTP/1.1\r\n\
          Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("request");
    let mut got = Vec::new();
    // Ends with the connection closed; a read timing out (the old hang) fails the test.
    conn.read_to_end(&mut got)
        .expect("the attach ends by itself");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    // One stdout frame: stream 1, then the payload.
    let frame = [&[1u8, 0, 0, 0, 0, 0, 0, 20][..], b"hello from the past\n"].concat();
    assert!(got.windows(frame.len()).any(|w| w == frame), "{text}");
}

#[test]
fn quick_execs_through_the_python_sdk_lose_no_output() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "execs", "busybox", "sleep", "300"]);
    let out = python_sdk(
        &d,
        "import docker\n\
         c = docker.from_env()\n\
         ct = c.containers.get('execs')\n\
         lost = 0\n\
         for i in range(40):\n\
         \x20   e = c.api.exec_create(ct.id, ['echo', 'hello'])\n\
         \x20   out = c.api.exec_start(e['Id'], stream=False)\n\
         \x20   lost += out != b'hello\\n'\n\
         print('lost', lost)\n",
    );
    if !out.is_empty() {
        assert_eq!(out.trim(), "lost 0");
    }
}

/// A stop that comes while the restart policy starts the container again wins: the
/// container is down when `stop` returns and stays down (the policy's start either sees the
/// stop and does nothing, or ends first and is stopped). The stops fall at spread moments of
/// the restart cycle (100 then 200 ms waits, a start of some milliseconds).
#[test]
fn a_stop_during_a_restart_by_the_policy_stays_stopped() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    let running = |name: &str| {
        d.ok(&["inspect", "--format", "{{.State.Running}}", name])
            .trim()
            == "true"
    };
    for round in 0..20 {
        let name = format!("cycling{round}");
        d.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "exit 3",
        ]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while d
            .ok(&["inspect", "--format", "{{.RestartCount}}", &name])
            .trim()
            == "0"
        {
            assert!(Instant::now() < deadline, "{name} never restarted");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The phase of the stop in the cycle.
        std::thread::sleep(Duration::from_millis(13 * (round % 16)));
        d.ok(&["stop", "-t", "0", &name]);
        let watch = Instant::now() + Duration::from_millis(400);
        while Instant::now() < watch {
            assert!(
                !running(&name),
                "{name} runs after its stop (round {round})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d.ok(&["rm", &name]);
    }
}
