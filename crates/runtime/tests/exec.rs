//! `berth-runtime exec`: a new process in a running container, in its namespaces and its cgroup,
//! as the flags or a `--process` file say; refused for a container that is not running.

use std::time::{Duration, Instant};

use berth_tests::{Bundle, Output};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A container running `sleep 30`, created and started.
fn running_sleeper() -> Bundle {
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    b
}

fn exec(b: &Bundle, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    b.cmd(&all)
}

fn init_pid(b: &Bundle) -> i64 {
    b.state()["pid"].as_i64().expect("pid")
}

fn ns_of(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .expect("namespace link")
        .display()
        .to_string()
}

/// Kills `pid` when dropped, if a test leaves a detached process running.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn exec_joins_the_containers_namespaces() {
    let b = running_sleeper();
    let pid = init_pid(&b);
    let out = exec(
        &b,
        &[
            &b.id,
            "sh",
            "-c",
            "hostname; cat /proc/1/comm; \
             for n in pid mnt net ipc uts cgroup; do readlink /proc/self/ns/$n; done; \
             ls /proc | grep '^[0-9]' | tr '\\n' ' '",
        ],
    )
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"berth"), "{out:?}");
    assert_eq!(
        lines.get(1),
        Some(&"sleep"),
        "pid 1 is not the container's init: {out:?}"
    );
    for (i, kind) in ["pid", "mnt", "net", "ipc", "uts", "cgroup"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            lines.get(2 + i).copied().unwrap_or_default(),
            ns_of(pid, kind),
            "{kind} namespace differs from the init's: {out:?}"
        );
    }
    // The container's processes only: its init (1), the shell, and the `ls` of the pipeline...
    let pids: Vec<u32> = lines
        .get(8)
        .copied()
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1), "{out:?}");
    assert!(
        pids.len() <= 5,
        "the exec'd process sees more than the container: {pids:?}"
    );
}

#[test]
fn exec_exit_status_is_propagated() {
    let b = running_sleeper();
    assert_eq!(exec(&b, &[&b.id, "sh", "-c", "exit 42"]).code(), 42);
    assert_eq!(exec(&b, &[&b.id, "true"]).code(), 0);
    // Killed by a signal: 128 + the signal, as a shell reports it.
    assert_eq!(exec(&b, &[&b.id, "sh", "-c", "kill -9 $$"]).code(), 137);
    assert_eq!(b.state()["status"], "running");
}

#[test]
fn exec_env_and_cwd() {
    let b = running_sleeper();
    let out = exec(
        &b,
        &[
            "--env",
            "FOO=bar baz",
            "--env",
            "TERM=dumb",
            "--cwd",
            "/tmp",
            &b.id,
            "sh",
            "-c",
            "echo \"$FOO\"; echo $TERM; pwd; echo $PATH",
        ],
    )
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"bar baz"), "{out:?}");
    // --env overrides the config's variable of the same name, and keeps the others.
    assert_eq!(lines.get(1), Some(&"dumb"), "{out:?}");
    assert_eq!(lines.get(2), Some(&"/tmp"), "{out:?}");
    assert!(
        lines.get(3).is_some_and(|p| p.contains("/bin")),
        "PATH of the config lost: {out:?}"
    );
}

#[test]
fn exec_user_and_additional_gids() {
    let b = running_sleeper();
    let out = exec(
        &b,
        &[
            "--user",
            "1000:1000",
            "--additional-gids",
            "5",
            "--additional-gids",
            "7",
            &b.id,
            "sh",
            "-c",
            "id -u; id -g; id -G",
        ],
    )
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "{out:?}");
    assert_eq!(lines.get(1), Some(&"1000"), "{out:?}");
    let mut groups: Vec<u32> = lines
        .get(2)
        .copied()
        .unwrap_or_default()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups, [5, 7, 1000], "{out:?}");
    // The user alone: no supplementary groups but its own gid.
    let out = exec(&b, &["--user", "1000", &b.id, "id", "-u"]).ok();
    assert_eq!(out.stdout.trim(), "1000");
}

#[test]
fn exec_detached_with_pid_file_runs_in_the_container_cgroup() {
    let b = running_sleeper();
    let init = init_pid(&b);
    let pid_file = b.path().join("exec.pid");
    let started = Instant::now();
    exec(
        &b,
        &[
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &b.id,
            "sleep",
            "25",
        ],
    )
    .ok();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exec -d waited for its process"
    );
    let text = std::fs::read_to_string(&pid_file).unwrap();
    let pid: i32 = text.trim().parse().unwrap_or_else(|_| panic!("{text:?}"));
    let _guard = KillOnDrop(pid);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "sleep"
    );
    assert_eq!(ns_of(pid.into(), "pid"), ns_of(init, "pid"));
    let ps = b.cmd(&["ps", "--format", "json", &b.id]).ok();
    let pids: Vec<i64> = serde_json::from_str(ps.stdout.trim()).unwrap();
    assert!(pids.contains(&pid.into()), "{pids:?} lacks {pid}");
    assert!(pids.contains(&init), "{pids:?} lacks the init {init}");
    // In every hierarchy where the init is, the exec'd process is in the container's cgroup.
    let path = format!("/berth-test-{}", b.id);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let init_cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(cgroups.lines().any(|l| l.ends_with(&path)), "{cgroups}");
    assert_eq!(cgroups, init_cgroups);
}

#[test]
fn exec_process_file() {
    let b = running_sleeper();
    let process = serde_json::json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [7]},
        "args": ["sh", "-c", "echo $X; pwd; id -u; id -G; exit 9"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "X=from-file"],
        "cwd": "/home/user"
    });
    let file = b.path().join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = exec(&b, &["--process", file.to_str().unwrap(), &b.id]);
    assert_eq!(out.code(), 9, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"from-file"), "{out:?}");
    assert_eq!(lines.get(1), Some(&"/home/user"), "{out:?}");
    assert_eq!(lines.get(2), Some(&"1000"), "{out:?}");
    assert!(
        lines
            .get(3)
            .is_some_and(|g| g.split_whitespace().any(|g| g == "7")),
        "{out:?}"
    );
    // A bad process file is an error naming the field.
    std::fs::write(&file, r#"{"args": "sh", "cwd": "/"}"#).unwrap();
    let out = exec(&b, &["--process", file.to_str().unwrap(), &b.id]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("args"), "{out:?}");
}

#[test]
fn exec_into_a_paused_container_is_refused() {
    let b = running_sleeper();
    b.cmd(&["pause", &b.id]).ok();
    let out = exec(&b, &[&b.id, "true"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(
        out.stderr
            .contains("cannot exec in a paused container (use --ignore-paused to override)"),
        "{out:?}"
    );
    b.cmd(&["resume", &b.id]).ok();
    assert_eq!(exec(&b, &[&b.id, "true"]).code(), 0);
}

#[test]
fn exec_with_ignore_paused_runs_once_the_container_is_resumed() {
    let b = running_sleeper();
    b.cmd(&["pause", &b.id]).ok();
    let cmd = b.command(&["exec", "--ignore-paused", &b.id, "echo", "ran"]);
    let pending = berth_tests::run_in_background(cmd, berth_tests::TIMEOUT);
    // The exec'd process joins the frozen cgroup and stays frozen until the resume.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cgroup = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer")
        .join(cgroup.trim_start_matches('/'))
        .join("cgroup.procs");
    let in_freezer = || {
        std::fs::read_to_string(&freezer)
            .unwrap_or_default()
            .lines()
            .count()
    };
    while in_freezer() < 2 {
        assert!(
            Instant::now() < deadline,
            "the exec'd process never joined the cgroup"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!pending.is_finished(), "exec ran in a frozen container");
    b.cmd(&["resume", &b.id]).ok();
    let out = pending.join().unwrap_or_else(|_| panic!("exec thread"));
    assert_eq!(out.ok().stdout, "ran\n");
}

#[test]
fn exec_in_a_sub_cgroup() {
    let b = running_sleeper();
    let cgroup = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let memory = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(cgroup.trim_start_matches('/'))
        .join("sub");
    let missing = exec(&b, &["--cgroup", "memory:sub", &b.id, "true"]);
    assert_ne!(missing.code(), 0, "{missing:?}");
    assert!(missing.stderr.contains("does not exist"), "{missing:?}");
    std::fs::create_dir(&memory).expect("sub-cgroup");
    let out = exec(
        &b,
        &["--cgroup", "memory:sub", &b.id, "cat", "/proc/self/cgroup"],
    )
    .ok();
    let memory_line = out.stdout.lines().find(|l| l.contains(":memory:"));
    assert!(memory_line.is_some_and(|l| l.ends_with("/sub")), "{out:?}");
    let cpu_line = out
        .stdout
        .lines()
        .find(|l| l.contains(":cpu,") || l.contains(":cpu:"));
    assert!(cpu_line.is_some_and(|l| !l.ends_with("/sub")), "{out:?}");
    let bad = exec(&b, &["--cgroup", "a", "--cgroup", "b", &b.id, "true"]);
    assert!(
        bad.stderr.contains("missing <controller>: prefix"),
        "{bad:?}"
    );
    drop(b);
    let _ = std::fs::remove_dir(&memory);
}

#[test]
fn exec_cap_adds_to_bounding_effective_and_permitted_only() {
    let b = running_sleeper();
    let out = exec(
        &b,
        &[
            "--cap",
            "CAP_SYS_ADMIN",
            &b.id,
            "grep",
            "^Cap",
            "/proc/self/status",
        ],
    )
    .ok();
    let field = |name: &str| {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap_or(0)
    };
    let sys_admin = 1u64 << 21;
    for set in ["CapBnd:", "CapEff:", "CapPrm:"] {
        assert_ne!(field(set) & sys_admin, 0, "{set} {out:?}");
    }
    assert_eq!(field("CapInh:") & sys_admin, 0, "{out:?}");
}

#[test]
fn exec_gets_the_containers_personality() {
    let mut b = Bundle::new(RUNTIME, &["sleep", "30"]);
    b.config["linux"]["personality"] = serde_json::json!({"domain": "LINUX32"});
    b.save();
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    assert_eq!(exec(&b, &[&b.id, "uname", "-m"]).ok().stdout, "i686\n");
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    let b = Bundle::new(RUNTIME, &["true"]);
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    b.wait_status("stopped");
    let out = exec(&b, &[&b.id, "true"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("stopped"), "{out:?}");
    assert_eq!(b.state()["status"], "stopped");
}

#[test]
fn exec_into_a_missing_container_is_refused() {
    let b = Bundle::new(RUNTIME, &["true"]);
    let out = exec(&b, &[&b.id, "true"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("does not exist"), "{out:?}");
}

#[test]
fn exec_of_a_missing_program_fails() {
    let b = running_sleeper();
    let out = exec(&b, &[&b.id, "no-such-program"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("executable file not found"), "{out:?}");
    // Nothing of the failed exec stays in the container.
    let ps = b.cmd(&["ps", "--format", "json", &b.id]).ok();
    let pids: Vec<i64> = serde_json::from_str(ps.stdout.trim()).unwrap();
    assert_eq!(pids, [init_pid(&b)], "{ps:?}");
    assert_eq!(b.state()["status"], "running");
}

#[test]
fn exec_forwards_signals_to_its_process() {
    let b = running_sleeper();
    let pid_file = b.path().join("fg.pid");
    let out = std::fs::File::create(b.path().join("fg.out")).unwrap();
    let mut cmd = b.command(&[
        "exec",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
        "sh",
        "-c",
        "trap 'exit 7' TERM; touch /tmp/trap-set; while :; do sleep 0.1; done",
    ]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let mut child = cmd.spawn().unwrap();
    let runtime = KillOnDrop(child.id() as i32);
    let deadline = Instant::now() + Duration::from_secs(10);
    // The pid file is written once the process runs; signals are taken from then on. The
    // shell says when its trap is set.
    while !pid_file.exists() || !b.rootfs().join("tmp/trap-set").exists() {
        assert!(Instant::now() < deadline, "no pid file or trap");
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(runtime.0),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "exec did not end after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    let printed = std::fs::read_to_string(b.path().join("fg.out")).unwrap();
    assert_eq!(status.code(), Some(7), "{status:?}: {printed}");
}

#[test]
fn exec_with_a_bad_cwd_fails_clearly() {
    let b = running_sleeper();
    let out = exec(&b, &["--cwd", "/no/such/dir", &b.id, "true"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("/no/such/dir"), "{out:?}");
    assert_eq!(b.state()["status"], "running");
}

/// The library's exec, called from a long-lived process (the monitor calls it in-process),
/// gives the caller back its own pid namespace for its children: after an exec, and after the
/// container is gone, it can still fork.
#[test]
fn library_exec_restores_the_callers_namespace_for_children() {
    let b = running_sleeper();
    let ns = "/proc/thread-self/ns/pid_for_children";
    let before = std::fs::read_link(ns).expect("pid_for_children");
    let runtime = berth_runtime::container::Runtime::new(b.state_root());
    let process: oci_spec::runtime::Process = serde_json::from_value(serde_json::json!({
        "args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin:/usr/bin"],
    }))
    .expect("process");
    let opts = berth_runtime::exec::ExecOptions {
        process,
        console_socket: None,
        pid_file: None,
        preserve_fds: 0,
        ..Default::default()
    };
    let pid = berth_runtime::exec::exec(&runtime, &b.id, &opts).expect("exec");
    let status = nix::sys::wait::waitpid(pid, None).expect("waitpid");
    assert!(
        matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
    assert_eq!(std::fs::read_link(ns).expect("pid_for_children"), before);
    b.cmd(&["delete", "--force", &b.id]).ok();
    let child = std::process::Command::new("true")
        .status()
        .expect("fork after the container died");
    assert!(child.success());
}
