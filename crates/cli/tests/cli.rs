#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! End-to-end tests of the `berth` binary against a private dockerd (see `common`), or against
//! the daemon of `BERTH_TEST_HOST`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::{run_with_timeout, unique};
use common::IMAGE;

/// Polls `f` until it is true, for at most `timeout`.
fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn version_shows_client_and_server() {
    let d = daemon_or_skip!();
    let out = d.berth(&["version"]).ok();
    assert!(
        out.stdout.starts_with("Client:\n Version:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" API version:"), "{}", out.stdout);
    assert!(out.stdout.contains("\nServer:"), "{}", out.stdout);
    assert!(out.stdout.contains("  API version:"), "{}", out.stdout);
    let out = d
        .berth(&["version", "--format", "{{.Server.ApiVersion}}"])
        .ok();
    assert!(out.stdout.trim().starts_with("1."), "{}", out.stdout);
}

#[test]
fn info_shows_counts() {
    let d = daemon_or_skip!();
    let out = d.berth(&["info"]).ok();
    assert!(
        out.stdout.contains("Server:\n Containers: "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" Images: "), "{}", out.stdout);
}

#[test]
fn imported_image_is_listed() {
    let d = daemon_or_skip!();
    let out = d.berth(&["images"]).ok();
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap();
    let names: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        names,
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        "{header:?}"
    );
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("berth-test-bb "))
        .unwrap_or_else(|| panic!("no image row in {}", out.stdout));
    let cols: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cols[0], "berth-test-bb");
    assert_eq!(cols[1], "latest");
    assert_eq!(cols[2].len(), 12, "{row}");
    assert!(cols.last().unwrap().ends_with("MB"), "{row}");
    let out = d.berth(&["images", "-q"]).ok();
    assert!(out.stdout.lines().all(|l| l.len() == 12), "{}", out.stdout);
    let out = d
        .berth(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .ok();
    assert!(out.stdout.lines().any(|l| l == IMAGE), "{}", out.stdout);
}

#[test]
fn run_rm_prints_output() {
    let d = daemon_or_skip!();
    let out = d.berth(&["run", "--rm", IMAGE, "echo", "hi"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "hi\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn run_exit_code_and_stderr_propagate() {
    let d = daemon_or_skip!();
    let out = d.berth(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code(), 3, "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn run_with_options() {
    let d = daemon_or_skip!();
    let out = d.berth(&[
        "run",
        "--rm",
        "-e",
        "A=B",
        "-w",
        "/tmp",
        "-u",
        "1000",
        "--entrypoint",
        "sh",
        IMAGE,
        "-c",
        "echo $A $(pwd) $(id -u)",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "B /tmp 1000\n");
}

#[test]
fn run_piped_stdin() {
    let d = daemon_or_skip!();
    let out = d.berth_stdin(&["run", "-i", "--rm", IMAGE, "cat"], b"line1\nline2\n");
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "line1\nline2\n");
}

#[test]
fn run_missing_executable_is_127() {
    let d = daemon_or_skip!();
    let out = d.berth(&["run", "--rm", IMAGE, "/nonexistent"]);
    assert_eq!(out.code(), 127, "{out:?}");
    assert!(
        out.stderr
            .starts_with("berth: Error response from daemon: "),
        "{}",
        out.stderr
    );
}

#[test]
fn detached_lifecycle() {
    let d = daemon_or_skip!();
    let name = unique("det");
    let out = d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "-l",
        "berth.test=1",
        IMAGE,
        "sh",
        "-c",
        "echo started; echo oops >&2; exec sleep 1000",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{out:?}");

    let out = d.berth(&["ps"]).ok();
    let header = out.stdout.lines().next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID   IMAGE")
            && header.contains("   COMMAND   ")
            && header.contains("   CREATED   ")
            && header.contains("   STATUS   ")
            && header.contains("   PORTS   ")
            && header.ends_with("NAMES"),
        "{header:?}"
    );
    let row = out
        .stdout
        .lines()
        .find(|l| l.ends_with(&name))
        .unwrap_or_else(|| panic!("{name} not in {}", out.stdout));
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(row.contains("\"sh -c 'echo started…\""), "{row}");
    assert!(row.contains(" Up "), "{row}");

    let out = d
        .berth(&["ps", "-q", "--no-trunc", "-f", &format!("name={name}")])
        .ok();
    assert_eq!(out.stdout.trim(), id);
    let out = d
        .berth(&[
            "ps",
            "--format",
            "{{.Names}} {{.Labels}}",
            "-f",
            "label=berth.test=1",
        ])
        .ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l == format!("{name} berth.test=1")),
        "{}",
        out.stdout
    );
    let out = d
        .berth(&["ps", "--format", "{{json .}}", "-f", &format!("id={id}")])
        .ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["Names"], name.as_str());
    assert_eq!(v["State"], "running");

    assert!(wait_for(Duration::from_secs(10), || {
        d.berth(&["logs", &name]).stdout == "started\n"
    }));
    let out = d.berth(&["logs", &name]).ok();
    assert_eq!(out.stdout, "started\n");
    assert_eq!(out.stderr, "oops\n");

    let out = d
        .berth(&["inspect", "--format", "{{.State.Status}} {{.Name}}", &name])
        .ok();
    assert_eq!(out.stdout, format!("running /{name}\n"));

    let out = d.berth(&["stop", "-t", "1", &name]).ok();
    assert_eq!(out.stdout, format!("{name}\n"));
    let out = d
        .berth(&["inspect", "--format", "{{.State.Status}}", &name])
        .ok();
    assert_eq!(out.stdout, "exited\n");
    let out = d.berth(&["ps", "-a", "-f", &format!("name={name}")]).ok();
    assert!(out.stdout.contains("Exited (137)"), "{}", out.stdout);

    let out = d.berth(&["rm", &name]).ok();
    assert_eq!(out.stdout, format!("{name}\n"));
    let out = d
        .berth(&["ps", "-a", "-q", "-f", &format!("name={name}")])
        .ok();
    assert_eq!(out.stdout, "");
}

#[test]
fn exec_output_and_exit_code() {
    let d = daemon_or_skip!();
    let name = unique("exec");
    d.berth(&["run", "-d", "--name", &name, IMAGE, "sleep", "1000"])
        .ok();
    let out = d.berth(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo in-exec; echo e >&2; exit 5",
    ]);
    assert_eq!(out.code(), 5, "{out:?}");
    assert_eq!(out.stdout, "in-exec\n");
    assert_eq!(out.stderr, "e\n");
    let out = d.berth_stdin(&["exec", "-i", &name, "cat"], b"abc\n");
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "abc\n");
    let out = d.berth(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/etc",
        &name,
        "sh",
        "-c",
        "echo $X $(pwd)",
    ]);
    assert_eq!(out.stdout, "1 /etc\n", "{out:?}");
    d.berth(&["rm", "-f", &name]).ok();
}

fn script(cmdline: &str, input: &str) -> berth_tests::Output {
    script_when(cmdline, "true", input, 1)
}

/// `cmdline` under script(1), which gives it a pty of 40x100; the input arrives once the shell
/// condition `ready` holds (polled for up to 30 s), and a pause later, once the program reads
/// (before the CLI puts the terminal in raw mode, the line discipline would eat a ctrl-q);
/// `times` times, a second apart (the rest go nowhere once the program is gone).
fn script_when(cmdline: &str, ready: &str, input: &str, times: u32) -> berth_tests::Output {
    // script(1) gets 80 s, less than the 90 s limit below: a hang then fails the test with what
    // the terminal showed, not with the command line alone.
    let shell = format!(
        "(i=0; until {ready} || [ $i -ge 300 ]; do i=$((i+1)); sleep 0.1; done; sleep 2; \
         printf '{input}'; for k in $(seq 2 {times}); do sleep 1; printf '{input}'; done; \
         sleep 3) | timeout 80 script -qec \"stty rows 40 cols 100; {cmdline}\" /dev/null"
    );
    run_with_timeout(
        Command::new("sh").arg("-c").arg(shell),
        Duration::from_secs(90),
    )
}

#[test]
fn run_interactive_tty() {
    let d = daemon_or_skip!();
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: script(1) is missing");
        return;
    }
    let cmd = format!(
        "BERTH_HOST={} {} run -it --rm {IMAGE} sh -c 'read x; echo got \\$x; stty size; exit 7'",
        d.host,
        env!("CARGO_BIN_EXE_berth")
    );
    let out = script(&cmd, "hello\\r");
    assert_eq!(out.code(), 7, "{out:?}");
    assert!(out.stdout.contains("got hello\r\n"), "{out:?}");
    assert!(out.stdout.contains("40 100\r\n"), "{out:?}");
}

#[test]
fn exec_interactive_tty() {
    let d = daemon_or_skip!();
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: script(1) is missing");
        return;
    }
    let name = unique("exectty");
    d.berth(&["run", "-d", "--name", &name, IMAGE, "sleep", "1000"])
        .ok();
    let cmd = format!(
        "BERTH_HOST={} {} exec -it {name} sh",
        d.host,
        env!("CARGO_BIN_EXE_berth")
    );
    let out = script(&cmd, "echo hello-$((40+2))\\rexit 4\\r");
    d.berth(&["rm", "-f", &name]).ok();
    assert_eq!(out.code(), 4, "{out:?}");
    assert!(out.stdout.contains("hello-42\r\n"), "{out:?}");
}

#[test]
fn unknown_container_errors() {
    let d = daemon_or_skip!();
    let out = d.berth(&["rm", "nope"]);
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such container: nope\n"
    );
    let out = d.berth(&["stop", "nope"]);
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such container: nope\n"
    );
    let out = d.berth(&["inspect", "nope"]);
    assert_eq!(out.code(), 1);
    assert_eq!(out.stdout, "[]\n");
    assert_eq!(out.stderr, "Error: No such object: nope\n");
    let out = d.berth(&["logs", "nope"]);
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such container: nope\n"
    );
}

#[test]
fn unknown_flag_errors() {
    let d = daemon_or_skip!();
    let out = d.berth(&["run", "--nope", IMAGE]);
    assert_eq!(out.code(), 125, "{out:?}");
    assert_eq!(
        out.stderr,
        "unknown flag: --nope\nSee 'berth run --help'.\n"
    );
    let out = d.berth(&["ps", "--nope"]);
    assert_eq!(out.code(), 125, "{out:?}");
    assert!(out.stderr.starts_with("unknown flag: --nope"), "{out:?}");
}

#[test]
fn name_conflict_is_125() {
    let d = daemon_or_skip!();
    let name = unique("conflict");
    d.berth(&["create", "--name", &name, IMAGE, "true"]).ok();
    let out = d.berth(&["run", "--name", &name, IMAGE, "true"]);
    d.berth(&["rm", &name]).ok();
    assert_eq!(out.code(), 125, "{out:?}");
    assert!(
        out.stderr
            .starts_with("berth: Error response from daemon: Conflict. The container name"),
        "{out:?}"
    );
}

#[test]
fn create_start_attach() {
    let d = daemon_or_skip!();
    let name = unique("start");
    let out = d.berth(&[
        "create",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "echo from-start; exit 2",
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout.trim().len(), 64);
    let out = d.berth(&["start", "-a", &name]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert_eq!(out.stdout, "from-start\n");
    let out = d.berth(&["wait", &name]).ok();
    assert_eq!(out.stdout, "2\n");
    d.berth(&["rm", &name]).ok();
}

#[test]
fn image_inspect_tag_rmi_save_load() {
    let d = daemon_or_skip!();
    let tagged = format!("{}:t1", unique("berth-tag"));
    d.berth(&["tag", IMAGE, &tagged]).ok();
    let out = d
        .berth(&["inspect", "--format", "{{index .RepoTags 0}}", &tagged])
        .ok();
    assert!(out.stdout.trim().ends_with(":t1"), "{out:?}");
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("img.tar");
    d.berth(&["save", "-o", tar.to_str().unwrap(), &tagged])
        .ok();
    assert!(std::fs::metadata(&tar).unwrap().len() > 100_000);
    let out = d.berth(&["rmi", &tagged]).ok();
    assert_eq!(out.stdout, format!("Untagged: {tagged}\n"));
    let out = d.berth(&["load", "-i", tar.to_str().unwrap()]).ok();
    assert_eq!(out.stdout, format!("Loaded image: {tagged}\n"));
    d.berth(&["rmi", &tagged]).ok();
    let out = d.berth(&["rmi", "nosuch:img"]);
    assert_eq!(out.code(), 1);
    assert_eq!(
        out.stderr,
        "Error response from daemon: No such image: nosuch:img\n"
    );
}

#[test]
fn cp_both_ways() {
    let d = daemon_or_skip!();
    let name = unique("cp");
    d.berth(&["run", "-d", "--name", &name, IMAGE, "sleep", "1000"])
        .ok();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("hostfile.txt");
    std::fs::write(&src, "from host\n").unwrap();
    d.berth(&["cp", src.to_str().unwrap(), &format!("{name}:/tmp/in.txt")])
        .ok();
    let out = d.berth(&["exec", &name, "cat", "/tmp/in.txt"]).ok();
    assert_eq!(out.stdout, "from host\n");
    let dest = tmp.path().join("out.txt");
    d.berth(&["cp", &format!("{name}:/tmp/in.txt"), dest.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "from host\n");
    d.berth(&["rm", "-f", &name]).ok();
}

#[test]
fn login_push_pull_autopull() {
    let d = daemon_or_skip!();
    if !std::path::Path::new(berth_tests::registry::DOCKER_REGISTRY).exists() {
        eprintln!("skipping: docker-registry is missing");
        return;
    }
    let reg = berth_tests::registry::Registry::start_with_htpasswd("tester", "secret").unwrap();
    let host = reg.host();
    let config = tempfile::tempdir().unwrap();
    let berth = |args: &[&str], input: Option<&[u8]>| {
        let mut c = d.command(args);
        c.env("DOCKER_CONFIG", config.path());
        berth_tests::run_with_stdin(&mut c, input, Duration::from_secs(120))
    };
    let out = berth(
        &["login", "-u", "tester", "--password-stdin", &host],
        Some(b"secret\n"),
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "Login Succeeded\n");
    let saved = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert!(saved["auths"][&host]["auth"].is_string(), "{saved}");

    let repo = format!("{host}/berth-test/bb");
    let tagged = format!("{repo}:1");
    berth(&["tag", IMAGE, &tagged], None).ok();
    let out = berth(&["push", &tagged], None);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with(&format!("The push refers to repository [{repo}]\n")),
        "{out:?}"
    );
    assert!(out.stdout.contains("1: digest: sha256:"), "{out:?}");

    berth(&["rmi", &tagged], None).ok();
    let out = berth(&["pull", &tagged], None);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("Status: Downloaded newer image for {tagged}\n")),
        "{out:?}"
    );
    assert!(out.stdout.ends_with(&format!("\n{tagged}\n")), "{out:?}");

    berth(&["rmi", &tagged], None).ok();
    let out = berth(&["run", "--rm", &tagged, "echo", "pulled"], None);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "pulled\n");
    assert!(
        out.stderr
            .starts_with(&format!("Unable to find image '{tagged}' locally\n")),
        "{out:?}"
    );
    berth(&["rmi", &tagged], None).ok();

    let out = berth(&["pull", &format!("{repo}:nope")], None);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr.starts_with("Error response from daemon: "),
        "{out:?}"
    );

    let out = berth(&["logout", &host], None).ok();
    assert_eq!(
        out.stdout,
        format!("Removing login credentials for {host}\n")
    );
    let out = berth(&["run", "--rm", &tagged, "true"], None);
    assert_eq!(out.code(), 125, "{out:?}");
}

#[test]
fn detach_keys_leave_the_container_running() {
    let d = daemon_or_skip!();
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: script(1) is missing");
        return;
    }
    let name = unique("detach");
    let cmd = format!(
        "BERTH_HOST={} {} run -it --name {name} {IMAGE} sh",
        d.host,
        env!("CARGO_BIN_EXE_berth")
    );
    // The keys go once the container runs (the CLI is attached and the terminal raw by then),
    // and again every second until the CLI is gone, so that a pair lost on a busy machine
    // does not leave the test waiting.
    let running = format!(
        "[ \"$(BERTH_HOST={} {} inspect --format '{{{{.State.Status}}}}' {name} 2>/dev/null)\" = running ]",
        d.host,
        env!("CARGO_BIN_EXE_berth")
    );
    let out = script_when(&cmd, &running, "\\020\\021", 20);
    let state = d
        .berth(&["inspect", "--format", "{{.State.Status}}", &name])
        .ok();
    d.berth(&["rm", "-f", &name]).ok();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(state.stdout, "running\n");
}

#[test]
fn container_and_image_tools() {
    let d = daemon_or_skip!();
    let name = unique("tools");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "echo x > /made; exec sleep 1000",
    ])
    .ok();
    assert!(wait_for(Duration::from_secs(10), || {
        d.berth(&["exec", &name, "cat", "/made"]).stdout == "x\n"
    }));
    let out = d.berth(&["top", &name]).ok();
    assert!(out.stdout.starts_with("UID "), "{out:?}");
    assert!(out.stdout.contains("sleep 1000"), "{out:?}");

    d.berth(&["pause", &name]).ok();
    let out = d
        .berth(&[
            "ps",
            "--format",
            "{{.Status}}",
            "-f",
            &format!("name={name}"),
        ])
        .ok();
    assert!(out.stdout.contains("(Paused)"), "{out:?}");
    d.berth(&["unpause", &name]).ok();

    let out = d.berth(&["stats", "--no-stream", &name]).ok();
    assert!(out.stdout.starts_with("CONTAINER ID   NAME "), "{out:?}");

    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("fs.tar");
    d.berth(&["export", "-o", tar.to_str().unwrap(), &name])
        .ok();
    let list = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l == "made"));

    let img = format!("{}:snap", unique("berth-commit"));
    let out = d
        .berth(&["commit", "-c", "ENV X=1", "-m", "msg", &name, &img])
        .ok();
    assert!(out.stdout.starts_with("sha256:"), "{out:?}");
    let out = d
        .berth(&[
            "inspect",
            "--format",
            "{{json .Config.Env}} {{.Comment}}",
            &img,
        ])
        .ok();
    assert!(out.stdout.contains("\"X=1\""), "{out:?}");
    assert!(out.stdout.trim_end().ends_with("msg"), "{out:?}");
    let out = d.berth(&["history", &img]).ok();
    assert!(out.stdout.starts_with("IMAGE "), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 3, "{out:?}");

    let renamed = unique("renamed");
    d.berth(&["rename", &name, &renamed]).ok();
    d.berth(&["kill", &renamed]).ok();
    let out = d.berth(&["wait", &renamed]).ok();
    assert_eq!(out.stdout, "137\n");
    d.berth(&["rm", &renamed]).ok();
    d.berth(&["rmi", &img]).ok();
}

#[test]
fn logs_follow_ends_with_the_container() {
    let d = daemon_or_skip!();
    let name = unique("follow");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
    ])
    .ok();
    let out = d.berth(&["logs", "-f", &name]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "line1\nline2\nline3\n");
    let out = d.berth(&["logs", "--tail", "1", &name]).ok();
    assert_eq!(out.stdout, "line3\n");
    d.berth(&["rm", &name]).ok();
}

#[test]
fn unreachable_daemon() {
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_berth")).args([
            "-H",
            "unix:///nonexistent/berth.sock",
            "ps",
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "Cannot connect to the Docker daemon at unix:///nonexistent/berth.sock. Is the docker daemon running?\n"
    );
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_berth")).args([
            "-H",
            "unix:///nonexistent/berth.sock",
            "run",
            "img",
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code(), 125, "{out:?}");
    assert!(out.stderr.starts_with("berth: Cannot connect"), "{out:?}");
}

#[test]
fn network_commands_and_port() {
    let d = daemon_or_skip!();
    let net = unique("net");
    let name = unique("pub");
    let id = d.berth(&["network", "create", "--label", "t=1", &net]).ok();
    assert_eq!(id.stdout.trim().len(), 64, "{}", id.stdout);
    let ls = d.berth(&["network", "ls"]).ok();
    assert!(ls.stdout.starts_with("NETWORK ID"), "{}", ls.stdout);
    for n in ["bridge", "host", "none", net.as_str()] {
        assert!(
            ls.stdout
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(n)),
            "{n}: {}",
            ls.stdout
        );
    }
    let driver = d
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{.Driver}} {{.Labels.t}}",
            &net,
        ])
        .ok();
    assert_eq!(driver.stdout.trim(), "bridge 1");
    d.berth(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &net,
        "--network-alias",
        "svc",
        "-p",
        "127.0.0.1::80",
        IMAGE,
        "sleep",
        "60",
    ])
    .ok();
    let port = d.berth(&["port", &name]).ok();
    assert!(
        port.stdout.starts_with("80/tcp -> 127.0.0.1:"),
        "{}",
        port.stdout
    );
    let hosts = d.berth(&["exec", &name, "cat", "/etc/hosts"]).ok();
    assert!(
        hosts.stdout.trim_end().ends_with(" svc"),
        "{}",
        hosts.stdout
    );
    let out = d.berth(&["network", "rm", &net]);
    assert_eq!(out.code(), 1);
    assert!(
        out.stderr.contains("has active endpoints"),
        "{}",
        out.stderr
    );
    d.berth(&["network", "disconnect", &net, &name]).ok();
    d.berth(&["network", "rm", &net]).ok();
    d.remove(&[&name]);
}

/// Removes the containers, then the volumes, of a test, even when it fails half way.
struct VolumeCleanup<'a> {
    d: &'a common::Daemon,
    containers: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for VolumeCleanup<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.d.berth(&["rm", "-f", c]);
        }
        for v in &self.volumes {
            let _ = self.d.berth(&["volume", "rm", "-f", v]);
        }
    }
}

#[test]
fn volume_create_ls_inspect_use_and_rm() {
    let d = daemon_or_skip!();
    let (v1, user, tag) = (unique("vol"), unique("voluser"), unique("t"));
    let label = format!("berthtest={tag}");
    let _cleanup = VolumeCleanup {
        d: &d,
        containers: vec![user.clone()],
        volumes: vec![v1.clone()],
    };
    let out = d.berth(&["volume", "create", "--label", &label, &v1]).ok();
    assert_eq!(out.stdout, format!("{v1}\n"));
    let filter = format!("label={label}");
    let out = d.berth(&["volume", "ls", "-q", "-f", &filter]).ok();
    assert_eq!(out.stdout, format!("{v1}\n"));
    let out = d.berth(&["volume", "ls"]).ok();
    assert!(
        out.stdout.starts_with("DRIVER    VOLUME NAME\n"),
        "{}",
        out.stdout
    );
    let row = format!("local     {v1}");
    assert!(out.stdout.lines().any(|l| l == row), "{}", out.stdout);
    let out = d
        .berth(&[
            "volume",
            "ls",
            "-f",
            &filter,
            "--format",
            "{{.Name}}|{{.Labels}}",
        ])
        .ok();
    assert_eq!(out.stdout, format!("{v1}|{label}\n"));

    let out = d
        .berth(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels.berthtest}}",
            &v1,
        ])
        .ok();
    assert_eq!(out.stdout, format!("{v1} local local {tag}\n"));
    // JSON as docker indents it; a missing name is reported after the found ones, exit 1.
    let missing = unique("novol");
    let out = d.berth(&["volume", "inspect", &v1, &missing]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout.starts_with("[\n    {\n        \"CreatedAt\": "),
        "{}",
        out.stdout
    );
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list[0]["Name"], v1.as_str(), "{}", out.stdout);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(
        out.stderr,
        format!("Error response from daemon: get {missing}: no such volume\n")
    );

    // What one container writes into the volume, the next one reads.
    let mount = format!("{v1}:/d");
    d.berth(&[
        "run",
        "--rm",
        "-v",
        &mount,
        IMAGE,
        "sh",
        "-c",
        "echo kept > /d/f",
    ])
    .ok();
    let ro = format!("{v1}:/d:ro");
    let out = d
        .berth(&["run", "--rm", "-v", &ro, IMAGE, "cat", "/d/f"])
        .ok();
    assert_eq!(out.stdout, "kept\n");

    // Mounted by a container, even a stopped one: rm is refused, the others still go.
    let id = d
        .berth(&["create", "--name", &user, "-v", &mount, IMAGE, "true"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let dangling = ["volume", "ls", "-q", "-f", &filter, "-f", "dangling=true"];
    assert_eq!(d.berth(&dangling).ok().stdout, "");
    let out = d.berth(&["volume", "rm", &v1]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!("Error response from daemon: remove {v1}: volume is in use - [{id}]\n")
    );
    d.berth(&["rm", &user]).ok();
    assert_eq!(d.berth(&dangling).ok().stdout, format!("{v1}\n"));
    let out = d.berth(&["volume", "rm", &missing, &v1]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stdout, format!("{v1}\n"));
    assert_eq!(
        out.stderr,
        format!("Error response from daemon: get {missing}: no such volume\n")
    );
    // -f: a missing volume counts as removed, as docker's.
    let out = d.berth(&["volume", "rm", "-f", &missing]).ok();
    assert_eq!(out.stdout, format!("{missing}\n"));
    assert_eq!(
        d.berth(&["volume", "ls", "-q", "-f", &filter]).ok().stdout,
        ""
    );
}

#[test]
fn volume_prune_anonymous_then_all() {
    let d = daemon_or_skip!();
    let (named, used, user, tag) = (
        unique("named"),
        unique("used"),
        unique("voluser"),
        unique("t"),
    );
    let label = format!("berthtest={tag}");
    let filter = format!("label={label}");
    let mut cleanup = VolumeCleanup {
        d: &d,
        containers: vec![user.clone()],
        volumes: vec![named.clone(), used.clone()],
    };
    let anon = d
        .berth(&["volume", "create", "--label", &label])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    cleanup.volumes.push(anon.clone());
    for v in [&named, &used] {
        d.berth(&["volume", "create", "--label", &label, v]).ok();
    }
    let mount = format!("{used}:/d");
    d.berth(&["create", "--name", &user, "-v", &mount, IMAGE, "true"])
        .ok();
    let ls = || {
        d.berth(&["volume", "ls", "-q", "-f", &filter])
            .ok()
            .stdout
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut all = vec![anon.clone(), named.clone(), used.clone()];
    all.sort();
    assert_eq!(ls(), all);

    // Without -f it asks first; "n" keeps everything.
    let out = d
        .berth_stdin(&["volume", "prune", "--filter", &filter], b"n\n")
        .ok();
    assert_eq!(
        out.stdout,
        "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    let out = d
        .berth_stdin(&["volume", "prune", "-a", "--filter", &filter], b"n\n")
        .ok();
    assert_eq!(
        out.stdout,
        "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(ls().len(), 3);

    // -f: only the anonymous one goes.
    let out = d
        .berth(&["volume", "prune", "-f", "--filter", &filter])
        .ok();
    let head = format!("Deleted Volumes:\n{anon}\n\nTotal reclaimed space: ");
    assert!(out.stdout.starts_with(&head), "{}", out.stdout);
    assert!(out.stdout.ends_with("B\n"), "{}", out.stdout);
    assert_eq!(ls(), [named.as_str(), used.as_str()]);

    // -a: the unused named one too; the one a container mounts stays.
    let out = d
        .berth(&["volume", "prune", "-af", "--filter", &filter])
        .ok();
    let head = format!("Deleted Volumes:\n{named}\n\nTotal reclaimed space: ");
    assert!(out.stdout.starts_with(&head), "{}", out.stdout);
    assert_eq!(ls(), [used.as_str()]);
    let out = d
        .berth(&["volume", "prune", "-af", "--filter", &filter])
        .ok();
    assert_eq!(out.stdout, "Total reclaimed space: 0B\n");

    // system prune --volumes prunes anonymous volumes too.
    let anon2 = d
        .berth(&["volume", "create", "--label", &label])
        .ok()
        .stdout
        .trim()
        .to_string();
    cleanup.volumes.push(anon2.clone());
    let out = d
        .berth(&["system", "prune", "-f", "--volumes", "--filter", &filter])
        .ok();
    assert!(
        out.stdout
            .contains(&format!("Deleted Volumes:\n{anon2}\n\n")),
        "{}",
        out.stdout
    );
    assert_eq!(ls(), [used.as_str()]);
}
