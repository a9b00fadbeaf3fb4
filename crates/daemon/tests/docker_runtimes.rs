//! Other OCI runtimes, as dockerd has them: `runc` whenever a `runc` binary is in PATH,
//! `--add-runtime NAME=PATH`, daemon.json's `runtimes` and `default-runtime`, `docker run
//! --runtime NAME` (`HostConfig.Runtime`), `info`'s `Runtimes` and `DefaultRuntime`. The
//! monitor drives such a runtime through its command line (create, start, exec, kill, pause,
//! resume, update, delete), each with a state root of its own under `<exec-root>/runtimes/`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cgroup_value, skip, text, Daemon};

/// `name` in PATH (Debian's runc is /usr/sbin/runc, crun /usr/bin/crun); `None` (the test is
/// skipped) when missing, a failure under `CI=true`, where .ci/run installs both.
fn binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{name} is not in PATH (apt-get install {name})"
        );
        eprintln!("skipped: no {name} in PATH");
    }
    found
}

/// What `RUNTIME --root ROOT list -q` lists: the ids of the runtime's containers.
fn listed(runtime: &Path, root: &Path) -> Vec<String> {
    let out = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    text(&out)
        .0
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The runtime's own status of container `id` (`running`, `paused`...).
fn runtime_status(runtime: &Path, root: &Path, id: &str) -> String {
    let out = Command::new(runtime)
        .arg("--root")
        .arg(root)
        .args(["state", id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    state["status"].as_str().unwrap_or_default().to_string()
}

/// Every directory of container `id`'s cgroup (`/berth/ID`) still there, in any hierarchy.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join("berth").join(id))
        .filter(|p| p.exists())
        .collect()
}

fn runtime_root(d: &Daemon, name: &str) -> PathBuf {
    d.dir.join("run/runtimes").join(name)
}

fn inspect(d: &Daemon, format: &str, name: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// Waits (20 s at most) until `docker logs NAME` holds `needle`.
fn wait_for_log(d: &Daemon, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = d.docker(&["logs", name]);
        if text(&out).0.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runc_runs_attaches_execs_pauses_updates_stops_and_leaves_nothing() {
    if skip() {
        return;
    }
    let Some(runc) = binary("runc") else {
        return;
    };
    let d = Daemon::start();
    d.busybox("bb:local");
    let root = runtime_root(&d, "runc");

    // Output and exit code, stdout and stderr apart (no tty).
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "bb:local",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out), ("out\n".into(), "err\n".into()));
    // Stdin attached without a terminal.
    let out = d.docker_stdin(
        &["run", "-i", "--rm", "--runtime", "runc", "bb:local", "cat"],
        Some(b"through stdin\n"),
    );
    assert_eq!(text(&out).0, "through stdin\n", "{out:?}");
    // Attached by `start -a` to a container runc created.
    d.ok(&[
        "create",
        "--name",
        "att",
        "--runtime",
        "runc",
        "bb:local",
        "echo",
        "attached",
    ]);
    let out = d.docker(&["start", "-a", "att"]);
    assert_eq!(text(&out).0, "attached\n", "{out:?}");
    d.ok(&["rm", "att"]);

    // A container runc knows, with the engine's cgroup.
    let script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "r1",
            "--runtime",
            "runc",
            "bb:local",
            "sh",
            "-c",
            script,
        ])
        .trim()
        .to_string();
    wait_for_log(&d, "r1", "ready");
    assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "r1"), "runc");
    assert_eq!(listed(&runc, &root), vec![id.clone()]);
    assert_eq!(runtime_status(&runc, &root, &id), "running");
    let pid = inspect(&d, "{{.State.Pid}}", "r1");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&format!(":/berth/{id}")), "{cgroup}");

    // Exec: output, exit code, dockerd's message and 127 for a missing program.
    let out = d.docker(&["exec", "r1", "sh", "-c", "echo in-exec; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(text(&out).0, "in-exec\n");
    let out = d.docker(&["exec", "r1", "nosuch"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        text(&out)
            .0
            .contains("OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH"),
        "{out:?}"
    );
    let out = d.ok(&["top", "r1"]);
    assert!(out.contains("sleep") || out.contains("sh -c"), "{out}");

    // Pause and unpause go through runc (its freezer).
    d.ok(&["pause", "r1"]);
    assert_eq!(inspect(&d, "{{.State.Status}}", "r1"), "paused");
    assert_eq!(runtime_status(&runc, &root, &id), "paused");
    d.ok(&["unpause", "r1"]);
    assert_eq!(runtime_status(&runc, &root, &id), "running");

    // Update through `runc update`.
    d.ok(&["update", "--memory", "64m", "--memory-swap", "128m", "r1"]);
    assert_eq!(
        cgroup_value(&pid, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );

    // Stop: the trap runs, the exit is the script's.
    let started = Instant::now();
    d.ok(&["stop", "r1"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        started.elapsed()
    );
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "r1"), "0");
    wait_for_log(&d, "r1", "got-term");
    // Deleted from runc once it ended.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listed(&runc, &root).is_empty() {
        assert!(Instant::now() < deadline, "runc still lists {id}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Started again (runc again), then killed: 137.
    d.ok(&["start", "r1"]);
    wait_for_log(&d, "r1", "got-term\nready");
    assert_eq!(listed(&runc, &root), vec![id.clone()]);
    d.ok(&["kill", "r1"]);
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "r1"), "137");

    // `rm -f` of a running one leaves no runc state, no cgroup, no process.
    d.ok(&["start", "r1"]);
    let pid = inspect(&d, "{{.State.Pid}}", "r1");
    assert_eq!(listed(&runc, &root), vec![id.clone()]);
    d.ok(&["rm", "-f", "r1"]);
    assert!(listed(&runc, &root).is_empty());
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "process {pid} outlived rm -f");
        std::thread::sleep(Duration::from_millis(20));
    }
    let leftovers: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn add_runtime_daemon_json_default_runtime_and_info() {
    if skip() {
        return;
    }
    let Some(runc) = binary("runc") else {
        return;
    };
    let add = format!("myrunc={}", runc.display());
    let mut d = Daemon::start_with_args(&["--add-runtime", &add], |dir| {
        // A runtime of daemon.json with its arguments (runc's `--debug` only adds log lines).
        let config = serde_json::json!({
            "runtimes": {"jsonrunc": {"path": runc, "runtimeArgs": ["--debug"]}},
            "default-runtime": "jsonrunc",
        });
        std::fs::write(dir.join("daemon.json"), config.to_string()).unwrap();
    });
    d.busybox("bb:local");

    let info: serde_json::Value =
        serde_json::from_str(&d.ok(&["info", "-f", "{{json .}}"])).unwrap();
    assert_eq!(info["DefaultRuntime"], "jsonrunc");
    let runtimes = &info["Runtimes"];
    let names: Vec<&String> = runtimes.as_object().unwrap().keys().collect();
    assert_eq!(names, ["berth", "jsonrunc", "myrunc", "runc"]);
    assert_eq!(runtimes["myrunc"]["path"], runc.to_str().unwrap());
    assert_eq!(
        runtimes["jsonrunc"]["runtimeArgs"],
        serde_json::json!(["--debug"])
    );
    assert_eq!(runtimes["runc"]["path"], runc.to_str().unwrap());
    let out = d.ok(&["info"]);
    assert!(out.contains("Default Runtime: jsonrunc"), "{out}");
    // (The docker CLI prints them in a Go map's order.)
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Runtimes: "));
    let mut names: Vec<&str> = line.unwrap_or_default().split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(names, ["berth", "jsonrunc", "myrunc", "runc"], "{out}");

    // No --runtime: the default one, named in the record.
    let id = d
        .ok(&["run", "-d", "--name", "dflt", "bb:local", "sleep", "100"])
        .trim()
        .to_string();
    assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "dflt"), "jsonrunc");
    assert_eq!(
        listed(&runc, &runtime_root(&d, "jsonrunc")),
        vec![id.clone()]
    );
    // Its arguments reached runc: `--debug` lines in the create's log.
    let log = std::fs::read_to_string(d.dir.join("run/c").join(&id).join("runtime-log.json"))
        .unwrap_or_default();
    assert!(log.contains("\"level\":\"debug\""), "{log}");
    // berthd restarted (the container runs on): killed through runc all the same.
    d.stop();
    d.spawn();
    assert_eq!(inspect(&d, "{{.State.Status}}", "dflt"), "running");
    d.ok(&["kill", "dflt"]);
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "dflt"), "137");
    d.ok(&["rm", "-f", "dflt"]);
    assert!(listed(&runc, &runtime_root(&d, "jsonrunc")).is_empty());

    // --add-runtime's, and Berth's own by name.
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "myrunc",
        "bb:local",
        "sh",
        "-c",
        "echo mine; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(text(&out).0, "mine\n");
    d.ok(&[
        "create",
        "--name",
        "own",
        "--runtime",
        "berth",
        "bb:local",
        "true",
    ]);
    assert_eq!(inspect(&d, "{{.HostConfig.Runtime}}", "own"), "berth");
    d.ok(&["start", "-a", "own"]);
    assert!(listed(&runc, &runtime_root(&d, "myrunc")).is_empty());
}

#[test]
fn unknown_runtimes_are_refused() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let out = d.docker(&[
        "create",
        "--name",
        "refused",
        "--runtime",
        "nosuch",
        "bb:local",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("Unknown runtime specified nosuch"),
        "{out:?}"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    // Before the image is looked up, as dockerd.
    let out = d.docker(&["create", "--runtime", "nosuch", "no-such-image"]);
    assert!(
        text(&out).1.contains("Unknown runtime specified nosuch"),
        "{out:?}"
    );

    // berthd itself refuses a reserved name, a malformed flag, a default it does not have.
    for (args, message) in [
        (
            &["--add-runtime", "runc=/bin/true"][..],
            "runtime name 'runc' is reserved",
        ),
        (
            &["--add-runtime", "berth=/bin/true"][..],
            "runtime name 'berth' is reserved",
        ),
        (
            &["--add-runtime", "nopath"][..],
            "invalid runtime argument: nopath",
        ),
        (
            &["--add-runtime", "a=/x", "--add-runtime", "a=/y"][..],
            "runtime 'a' was already defined",
        ),
        (
            &["--default-runtime", "nosuch"][..],
            "specified default runtime 'nosuch' does not exist",
        ),
    ] {
        let out = Command::new("timeout")
            .args(["20", env!("CARGO_BIN_EXE_berthd")])
            .arg("-H")
            .arg(format!("unix://{}", d.dir.join("other.sock").display()))
            .arg("--config-file")
            .arg(d.dir.join("none.json"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(text(&out).1.contains(message), "{args:?}: {out:?}");
    }
}

/// Whether crun can create containers on this host: crun 1.8 refuses a hybrid cgroup layout
/// whose unified hierarchy holds controllers ("cgroups in hybrid mode not supported, drop all
/// controllers from cgroupv2"), as this VM's does (hugetlb is there, not in v1), whatever
/// `--cgroup-manager` it is given.
fn crun_expected_to_work() -> bool {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return true; // cgroup v2 only
    }
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .map_or(true, |c| c.trim().is_empty())
}

#[test]
fn crun_runs_where_the_host_allows_it() {
    if skip() {
        return;
    }
    let Some(crun) = binary("crun") else {
        return;
    };
    let d = Daemon::start_with_args(
        &["--add-runtime", &format!("crun={}", crun.display())],
        |_| {},
    );
    d.busybox("bb:local");
    let root = runtime_root(&d, "crun");
    let out = d.docker(&[
        "run",
        "--name",
        "c1",
        "--runtime",
        "crun",
        "bb:local",
        "sh",
        "-c",
        "echo from-crun; exit 6",
    ]);
    if !crun_expected_to_work() {
        // crun's own refusal, passed through; nothing left of the attempt.
        assert!(!out.status.success(), "{out:?}");
        let (_, stderr) = text(&out);
        assert!(
            stderr.contains("OCI runtime create failed: cgroups in hybrid mode not supported"),
            "{out:?}"
        );
        assert_eq!(inspect(&d, "{{.State.Status}}", "c1"), "created");
        assert!(listed(&crun, &root).is_empty());
        return;
    }
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert_eq!(text(&out).0, "from-crun\n");
    let id = d
        .ok(&["run", "-d", "--runtime", "crun", "bb:local", "sleep", "100"])
        .trim()
        .to_string();
    assert_eq!(listed(&crun, &root), vec![id.clone()]);
    let out = d.docker(&["exec", &id, "sh", "-c", "echo in-crun; exit 2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(text(&out).0, "in-crun\n");
    d.ok(&["rm", "-f", &id]);
    assert!(listed(&crun, &root).is_empty());
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
}

/// A health check of a container on a foreign runtime: the monitor runs its probes through
/// `runc exec`, as the in-process runtime's.
#[test]
fn health_checks_run_on_a_foreign_runtime() {
    if skip() {
        return;
    }
    let Some(runc) = binary("runc") else {
        return;
    };
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "checked",
        "--runtime",
        "runc",
        "--health-cmd",
        "test -e /tmp/ok && echo fine",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "bb:local",
        "sleep",
        "300",
    ]);
    let wait_status = |status: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = inspect(&d, "{{json .State.Health}}", "checked");
            let h: serde_json::Value = serde_json::from_str(h.trim()).unwrap();
            if h["Status"] == status {
                return h;
            }
            assert!(Instant::now() < deadline, "never {status}: {h}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_status("unhealthy");
    d.ok(&["exec", "checked", "sh", "-c", ">/tmp/ok"]);
    let h = wait_status("healthy");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "fine\n", "{h}");
    d.ok(&["rm", "-f", "checked"]);
    assert!(listed(&runc, &runtime_root(&d, "runc")).is_empty());
}
