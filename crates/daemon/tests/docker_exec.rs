//! Execs as dockerd answers them: output framed by the start's `Tty` whatever the exec's (the
//! Python SDK starts with `Tty: false` by default), a program that cannot start recorded with
//! exit code 127 or 126 and dockerd's message in the stream, and the client's `detachKeys`
//! (`config.json`) kept with the exec; the container's groups and no-new-privileges too.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use common::{python_sdk, skip, text, Daemon};

#[test]
fn exec_output_is_framed_by_the_start_and_failures_have_dockerds_codes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);

    // The docker CLI: the message on stderr (without a tty, in a frame), the code.
    let out = d.docker(&["exec", "box", "nosuch"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(127), "{stdout}{stderr}");
    assert!(
        (stdout.clone() + &stderr).contains(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown"
        ),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains("Unrecognized input header"), "{stderr}");
    let out = d.docker(&["exec", "box", "/etc"]);
    assert_eq!(out.status.code(), Some(126), "{:?}", text(&out));

    let got = python_sdk(
        &d,
        r#"
import docker
c = docker.from_env().containers.get("box")
api = c.client.api
# A tty exec started the SDK's way (Tty false): frames, demuxed by the SDK.
e = api.exec_create("box", ["echo", "hello"], tty=True)
print(repr(api.exec_start(e["Id"])))
# No tty, started with one: the raw bytes.
e = api.exec_create("box", ["sh", "-c", "echo out; echo err >&2"], tty=False)
print(repr(api.exec_start(e["Id"], tty=True)))
# A program that is not there.
r = c.exec_run("nosuch")
print(r.exit_code, b"executable file not found" in r.output)
"#,
    );
    if got.is_empty() {
        return; // no SDK outside CI (python_sdk says so)
    }
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], r"b'hello\r\n'", "{got}");
    assert!(
        lines[1] == r"b'out\nerr\n'" || lines[1] == r"b'err\nout\n'",
        "{got}"
    );
    assert_eq!(lines[2], "127 True", "{got}");
    d.ok(&["rm", "-f", "box"]);
}

#[test]
fn the_clients_detach_keys_stay_with_the_exec() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    let config = d.dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"detachKeys": "ctrl-x,x"}"#).unwrap();
    d.ok(&["exec", "-d", "box", "sleep", "1"]);
    let ids = d.ok(&["inspect", "--format", "{{json .ExecIDs}}", "box"]);
    let ids: Vec<String> = serde_json::from_str(ids.trim()).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let socket = d.socket.display().to_string();
    let out = std::process::Command::new("curl")
        .args(["-sf", "--max-time", "20", "--unix-socket", &socket])
        .arg(format!("http://d/v1.43/exec/{}/json", ids[0]))
        .output()
        .unwrap();
    let exec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exec["DetachKeys"], "ctrl-x,x", "{exec}");
    d.ok(&["rm", "-f", "box"]);
}

/// `docker exec -it` on a terminal detaches on the keys of the client's `config.json`
/// (`detachKeys`): the CLI leaves with "read escape sequence", the exec's shell goes on.
#[test]
fn an_interactive_exec_detaches_on_the_clients_keys() {
    if skip() {
        return;
    }
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "script(1) is missing (util-linux)"
        );
        return;
    }
    let d = Daemon::start();
    d.busybox("busybox");
    d.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "300"]);
    let config = d.dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"detachKeys": "ctrl-x,x"}"#).unwrap();
    // The keys once the exec's shell runs (two `sh` in the container), then every second until
    // the CLI is gone; script(1) gives the CLI a terminal. Bounded: 80 s for script, 90 for all.
    let env = format!(
        "DOCKER_HOST=unix://{} DOCKER_CONFIG={}",
        d.socket.display(),
        config.display()
    );
    let ready = format!(
        "[ \"$({env} {docker} top box 2>/dev/null | grep -c ' sh$')\" -ge 1 ]",
        docker = common::DOCKER
    );
    let shell = format!(
        "(i=0; until {ready} || [ $i -ge 300 ]; do i=$((i+1)); sleep 0.1; done; sleep 1; \
         for k in $(seq 1 20); do printf '\\030x'; sleep 1; done) \
         | timeout 80 script -qec \"{env} {docker} exec -it box sh\" /dev/null",
        docker = common::DOCKER
    );
    let out = berth_tests::run_with_timeout(
        std::process::Command::new("sh").arg("-c").arg(shell),
        std::time::Duration::from_secs(90),
    );
    // The docker CLI 28 returns the escape as its error: "read escape sequence", status 1.
    assert!(out.stdout.contains("read escape sequence"), "{out:?}");
    // The exec's shell is still there.
    let top = d.ok(&["top", "box"]);
    assert!(top.lines().any(|l| l.ends_with(" sh")), "{top}");
    d.ok(&["rm", "-f", "box"]);
}

/// As dockerd's exec: the container's `--group-add` groups and its `no-new-privileges` reach
/// an exec's process too.
#[test]
fn an_exec_gets_the_containers_groups_and_no_new_privileges() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "grp",
        "--network",
        "none",
        "--user",
        "1000:1000",
        "--group-add",
        "42",
        "--security-opt",
        "no-new-privileges",
        "bb:local",
        "sleep",
        "100",
    ]);
    let status = d.ok(&["exec", "grp", "cat", "/proc/self/status"]);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(field("Groups:"), "42", "{status}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    d.ok(&["rm", "-f", "grp"]);
}
