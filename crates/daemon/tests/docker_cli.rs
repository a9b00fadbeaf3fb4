#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The real docker CLI (28.x) against berthd: the judge of API compatibility. Outputs are
//! checked, not only exit codes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{skip, text, Daemon};

#[test]
fn version_and_info() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    let v = d.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), format!("{} linux", berth_api::API_VERSION));
    let info = d.ok(&[
        "info",
        "--format",
        "{{.Driver}} {{.OSType}} {{.Containers}}",
    ]);
    assert_eq!(info.trim(), "overlay2 linux 0");
}

#[test]
fn run_rm_prints_and_returns_the_exit_code() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    assert_eq!(d.ok(&["run", "--rm", "bb:local", "echo", "hi"]), "hi\n");
    let out = d.docker(&[
        "run",
        "--rm",
        "bb:local",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout, "out\n");
    assert_eq!(stderr, "err\n");
    // --rm: nothing left.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let out = d.docker(&["run", "--rm", "bb:local", "no-such-program"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("\"no-such-program\": executable file not found in $PATH"),
        "{stderr}"
    );
    let out = d.docker(&["run", "--rm", "bb:local", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out).1);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn piped_stdin_and_environment_and_user() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let out = d.docker_stdin(&["run", "-i", "--rm", "bb:local", "cat"], Some(b"piped\n"));
    assert_eq!(text(&out).0, "piped\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "--hostname",
        "hn",
        "bb:local",
        "sh",
        "-c",
        "echo $A $(id -u) $(pwd) $(hostname)",
    ]);
    assert_eq!(out, "1 1000 /tmp hn\n");
}

#[test]
fn detached_container_lifecycle() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let id = d.ok(&[
        "run", "-d", "--name", "w1", "bb:local", "sh", "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done",
    ]);
    assert_eq!(id.trim().len(), 64);
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.starts_with("w1 Up "), "{ps}");
    std::thread::sleep(Duration::from_millis(700));
    let logs = d.ok(&["logs", "--tail", "1", "w1"]);
    assert!(logs.starts_with("tick"), "{logs}");
    // rm of a running container is refused.
    let out = d.docker(&["rm", "w1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("You cannot remove a running container"),
        "{}",
        text(&out).1
    );
    d.ok(&["pause", "w1"]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Status}}", "w1"])
            .trim(),
        "paused"
    );
    d.ok(&["unpause", "w1"]);
    assert_eq!(d.ok(&["stop", "w1"]).trim(), "w1");
    assert_eq!(
        d.ok(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            "w1"
        ])
        .trim(),
        "exited 0"
    );
    assert!(d.ok(&["logs", "w1"]).ends_with("bye\n"));
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(ps.trim(), "w1");
    assert_eq!(d.ok(&["ps", "-q"]), "");
    d.ok(&["start", "w1"]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Running}}", "w1"])
            .trim(),
        "true"
    );
    d.ok(&["restart", "-t", "1", "w1"]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Running}}", "w1"])
            .trim(),
        "true"
    );
    d.ok(&["kill", "w1"]);
    let code = d.ok(&["wait", "w1"]);
    assert_eq!(code.trim(), "137");
    d.ok(&["rename", "w1", "w2"]);
    assert_eq!(d.ok(&["rm", "w2"]).trim(), "w2");
    let out = d.docker(&["inspect", "w2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("No such object: w2"),
        "{}",
        text(&out).1
    );
}

#[test]
fn exec_runs_in_the_container() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "-d", "--name", "ex", "bb:local", "sleep", "100"]);
    let out = d.docker(&["exec", "ex", "sh", "-c", "echo in; echo err >&2; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out), ("in\n".to_string(), "err\n".to_string()));
    let out = d.docker_stdin(&["exec", "-i", "ex", "cat"], Some(b"data\n"));
    assert_eq!(text(&out).0, "data\n");
    assert_eq!(
        d.ok(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "-e",
            "X=1",
            "ex",
            "sh",
            "-c",
            "echo $(id -u) $PWD $X"
        ]),
        "1000 /tmp 1\n"
    );
    d.ok(&["stop", "-t", "0", "ex"]);
    let out = d.docker(&["exec", "ex", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("is not running"), "{}", text(&out).1);
}

/// `docker run -it` and `exec -it` under a pty (util-linux `script`), with the window size.
#[test]
fn tty_run_and_exec() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let script = |cmd: &str, input: &str| {
        let full = format!(
            "(sleep 1; printf '{input}') | DOCKER_HOST=unix://{} script -eqc 'stty rows 33 cols 77; {cmd}' /dev/null",
            d.socket.display()
        );
        Command::new("timeout")
            .args(["30", "sh", "-c", &full])
            .output()
            .unwrap()
    };
    let out = script(
        "docker run -it --rm bb:local sh -c \"read x; echo got \\$x; stty size; exit 5\"",
        "hello\\r",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("got hello"), "{stdout}");
    assert!(stdout.contains("33 77"), "{stdout}");
    assert_eq!(out.status.code(), Some(5), "{stdout}");
    d.ok(&["run", "-d", "--name", "tt", "bb:local", "sleep", "100"]);
    let out = script("docker exec -it tt sh", "stty size; exit 2\\r");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("33 77"), "{stdout}");
    assert_eq!(out.status.code(), Some(2), "{stdout}");
}

#[test]
fn images_tag_rmi_and_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.trim(), "bb:local");
    d.ok(&["tag", "bb:local", "other/name:v2"]);
    let images = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.contains("other/name:v2") && images.contains("bb:local"),
        "{images}"
    );
    let id = d.ok(&["inspect", "--format", "{{.Id}}", "bb:local"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        d.ok(&["rmi", "other/name:v2"]).trim(),
        "Untagged: other/name:v2"
    );
    // An image a container uses cannot be removed.
    d.ok(&["create", "--name", "user", "bb:local", "true"]);
    let out = d.docker(&["rmi", "bb:local"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("is using its referenced image"),
        "{}",
        text(&out).1
    );
    d.ok(&["rm", "user"]);
    let out = d.ok(&["rmi", "bb:local"]);
    assert!(
        out.contains("Untagged: bb:local") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    let out = d.docker(&["run", "--rm", "nosuchimage:1"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out)
        .1
        .contains("Unable to find image 'nosuchimage:1' locally"));
}

#[test]
fn names_and_bad_input() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["create", "--name", "taken", "bb:local", "true"]);
    let out = d.docker(&["create", "--name", "taken", "bb:local", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out)
        .1
        .contains("The container name \"/taken\" is already in use"));
    let out = d.docker(&["create", "--name", "x", "bb:local", "true"]);
    assert!(text(&out).1.contains("Invalid container name (x)"));
    let out = d.docker(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("No such container: nope"),
        "{}",
        text(&out).1
    );
    // Nothing stored changed.
    assert_eq!(
        d.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(),
        "taken"
    );
}

#[test]
fn a_removal_cut_short_by_a_crash_is_finished_at_start() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["run", "--name", "cut", "bb:local", "true"]);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "cut"]);
    let id = id.trim();
    let layer = format!("container-{id}");
    assert!(common::snapshot_keys(&d.dir).contains(&layer));
    // The exec root is a tmpfs of berthd's own (this machine's /run is not one).
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let exec_root = format!(" {}/run tmpfs ", d.dir.display());
    assert!(mounts.contains(&exec_root), "no tmpfs exec root: {mounts}");
    // A crash right after the record moved away, before the layer went.
    d.kill9();
    let containers = d.dir.join("data/containers");
    std::fs::rename(
        containers.join(id),
        containers.join(format!(".removed-{id}")),
    )
    .unwrap();
    d.spawn();
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(
        !common::snapshot_keys(&d.dir).contains(&layer),
        "the layer of the removed container is left"
    );
    assert!(!containers.join(format!(".removed-{id}")).exists());
    // Its name is free again.
    d.ok(&["create", "--name", "cut", "bb:local", "true"]);
}

#[test]
fn containers_survive_a_kill_9_of_berthd() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "bb:local",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo n$i; sleep 0.2; done",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "quick",
        "bb:local",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    d.kill9();
    std::thread::sleep(Duration::from_millis(1800));
    d.spawn();
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("live Up"), "{ps}");
    assert!(ps.contains("quick Exited (7)"), "{ps}");
    let before = d.ok(&["logs", "live"]).lines().count();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        d.ok(&["logs", "live"]).lines().count() > before,
        "logging goes on"
    );
    d.ok(&["stop", "-t", "1", "live"]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Status}}", "live"])
            .trim(),
        "exited"
    );
}

#[test]
fn events_record_the_lifecycle() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.ok(&["run", "--rm", "--name", "ev", "bb:local", "true"]);
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let out = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=ev",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = out.lines().collect();
    assert_eq!(actions, ["create", "start", "die", "destroy"], "{out}");
}

#[test]
fn push_and_pull_through_a_local_registry() {
    if skip() {
        return;
    }
    let registry = berth_tests::registry::Registry::start().unwrap();
    let host = registry.host();
    let d = Daemon::start();
    d.busybox("bb:local");
    let name = format!("{host}/team/bb:1");
    d.ok(&["tag", "bb:local", &name]);
    let out = d.ok(&["push", &name]);
    assert!(
        out.contains(&format!("The push refers to repository [{host}/team/bb]")),
        "{out}"
    );
    assert!(out.contains("1: digest: sha256:"), "{out}");
    d.ok(&["rmi", &name, "bb:local"]);
    assert_eq!(d.ok(&["images", "-q"]), "");
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert_eq!(d.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Image is up to date"), "{out}");
    // A missing tag: Docker's message, exit 1.
    let out = d.docker(&["pull", &format!("{host}/team/bb:nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("manifest unknown"),
        "{}",
        text(&out).1
    );
    // Auto-pull on run, from another repository of the registry.
    let other = format!("{host}/other/bb:2");
    d.ok(&["tag", &name, &other]);
    d.ok(&["push", &other]);
    d.ok(&["rmi", &other]);
    let out = d.docker(&["run", "--rm", &other, "echo", "auto"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "auto\n", "{stderr}");
    assert!(
        stderr.contains(&format!("Unable to find image '{other}' locally")),
        "{stderr}"
    );
}

#[test]
fn default_seccomp_filter_and_its_opt_outs() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    // Plain fork and exec are untouched.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "bb:local",
            "sh",
            "-c",
            "ls / >/dev/null && echo forked"
        ]),
        "forked\n"
    );
    // A user namespace needs no capability, but Docker's profile refuses it.
    let out = d.docker(&["run", "--rm", "bb:local", "unshare", "-U", "-r", "id", "-u"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("Operation not permitted"),
        "{}",
        text(&out).1
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "bb:local",
        "unshare",
        "-U",
        "-r",
        "id",
        "-u",
    ]);
    assert_eq!(out, "0\n");
    let out = d.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "bb:local",
        "sh",
        "-c",
        "mkdir /m && mount -t tmpfs none /m && echo mounted",
    ]);
    assert_eq!(out, "mounted\n");
    // Without the capability, mount fails (capability and filter both).
    let out = d.docker(&[
        "run",
        "--rm",
        "bb:local",
        "sh",
        "-c",
        "mkdir /m && mount -t tmpfs none /m",
    ]);
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn restart_policies_apply_and_survive_a_daemon_restart() {
    if skip() {
        return;
    }
    let mut d = Daemon::start();
    d.busybox("bb:local");
    // on-failure:2 restarts twice, then stays exited.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "fails",
        "--restart",
        "on-failure:2",
        "bb:local",
        "sh",
        "-c",
        "exit 3",
    ]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.ok(&[
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Status}}",
            "fails",
        ]);
        if s.trim() == "2 exited" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // always: a container that exits is started again, also after berthd was killed.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        "bb:local",
        "sleep",
        "1",
    ]);
    d.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    d.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = d.ok(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.RestartCount}}",
            "again",
        ]);
        let mut f = s.split_whitespace();
        if f.next() == Some("true") && f.next().and_then(|n| n.parse::<u32>().ok()) >= Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A stopped one stays stopped.
    d.ok(&["stop", "-t", "0", "again"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Running}}", "again"])
            .trim(),
        "false"
    );
}

/// Between an exit and the restart its policy makes, a container is `restarting` (running, no
/// pid), refused by rm, kill and exec with dockerd's words; the waits double (dockerd's
/// backoff); `stop` calls the restart off.
#[test]
fn a_container_waiting_for_its_restart_is_restarting() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "bb:local",
        "sh",
        "-c",
        "exit 3",
    ]);
    // The fifth restart (counted when its wait begins, as dockerd counts) waits 1.6 s, after
    // 100 + 200 + 400 + 800 ms for the first four.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let state = loop {
        let s = d.ok(&[
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Status}} {{.State.Running}} {{.State.Restarting}} {{.State.Pid}} {{.State.ExitCode}}",
            "loop",
        ]);
        let count: u32 = s.split_whitespace().next().unwrap().parse().unwrap();
        if count >= 5 && s.contains("restarting") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        state.trim().ends_with("restarting true true 0 3"),
        "{state}"
    );
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("loop Restarting (3)"), "{ps}");
    let out = d.docker(&["rm", "loop"]);
    assert!(
        text(&out)
            .1
            .contains("You cannot remove a restarting container"),
        "{:?}",
        text(&out)
    );
    let out = d.docker(&["exec", "loop", "true"]);
    assert!(
        text(&out)
            .1
            .contains("is restarting, wait until the container is running"),
        "{:?}",
        text(&out)
    );
    let out = d.docker(&["kill", "loop"]);
    assert!(
        text(&out)
            .1
            .contains("is restarting, wait until the container is running"),
        "{:?}",
        text(&out)
    );
    d.ok(&["stop", "loop"]);
    let s = d.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Running}}",
        "loop",
    ]);
    assert_eq!(s.trim(), "exited false");
    let count = d.ok(&["inspect", "--format", "{{.RestartCount}}", "loop"]);
    // Past the 1.6 s after which the next restart would have come: none came (an absence,
    // so a wait of that length).
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        d.ok(&[
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Status}}",
            "loop"
        ])
        .trim(),
        format!("{} exited", count.trim())
    );
    d.ok(&["rm", "loop"]);
}

#[test]
fn system_prune_removes_stopped_containers_and_unused_anonymous_volumes() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "--name",
        "gone",
        "-v",
        "vol1:/data",
        "bb:local",
        "sh",
        "-c",
        "echo x > /data/f",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "kept",
        "-v",
        "vol2:/data",
        "bb:local",
        "sleep",
        "100",
    ]);
    // An anonymous volume (made without a name) that nothing uses.
    let anonymous = d.ok(&["volume", "create"]);
    let out = d.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    // Only anonymous volumes go, as with Docker 23 on (API 1.42): `vol1` is named.
    assert!(out.contains(anonymous.trim()), "{out}");
    assert!(!out.contains("vol1") && !out.contains("vol2"), "{out}");
    let volumes = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(
        volumes.split_whitespace().collect::<Vec<_>>(),
        ["vol1", "vol2"]
    );
    assert_eq!(d.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), "kept");
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}"]).trim(),
        "bb"
    );
}

/// A user's `docker start` begins the restart policy's count again, as dockerd's: an
/// `on-failure:2` container that used its two restarts gets two more after it.
#[test]
fn a_users_start_begins_the_restart_count_again() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "twice",
        "--restart",
        "on-failure:2",
        "bb:local",
        "sh",
        "-c",
        "echo run; exit 3",
    ]);
    let settled = |runs: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = d.ok(&[
                "inspect",
                "--format",
                "{{.RestartCount}} {{.State.Status}}",
                "twice",
            ]);
            let logs = d.ok(&["logs", "twice"]);
            if s.trim() == "2 exited" && logs.lines().count() == runs {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{s} {logs:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    settled(3);
    d.ok(&["start", "twice"]);
    settled(6);
}
