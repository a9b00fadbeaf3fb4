//! The lifecycle through the real `berth-runtime` binary: run, create/start/state/kill/delete,
//! and the errors of the spec's state machine.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

#[test]
fn run_prints_and_returns_the_exit_code() {
    let b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "echo hello from $(hostname); exit 7"],
    );
    let out = b.run();
    assert_eq!(out.code(), 7, "{out:?}");
    assert_eq!(out.stdout.trim(), "hello from berth");
    // `run` deletes the container after it exits.
    let list = b.cmd(&["list", "-q"]).ok();
    assert!(!list.stdout.contains(&b.id), "{list:?}");
}

#[test]
fn create_start_state_delete() {
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    b.create().ok();
    let state = b.state();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], b.id.as_str());
    let pid = state["pid"].as_i64().expect("pid");
    assert!(pid > 0);
    b.cmd(&["start", &b.id]).ok();
    assert_eq!(b.state()["status"], "running");
    // A running container cannot be deleted without --force.
    let del = b.cmd(&["delete", &b.id]);
    assert_ne!(del.code(), 0);
    assert!(del.stderr.contains("not stopped"), "{del:?}");
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    b.cmd(&["delete", &b.id]).ok();
    let missing = b.cmd(&["state", &b.id]);
    assert_ne!(missing.code(), 0);
    assert!(missing.stderr.contains("does not exist"), "{missing:?}");
}

#[test]
fn id_in_use_is_refused_and_first_container_untouched() {
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    b.create().ok();
    let second = b.create();
    assert_ne!(second.code(), 0);
    assert!(second.stderr.contains("already exists"), "{second:?}");
    assert_eq!(b.state()["status"], "created");
}

#[test]
fn bad_config_names_the_field_and_leaves_nothing() {
    let mut b = Bundle::new(RUNTIME, &["true"]);
    b.config["process"]["user"]["uid"] = "root".into();
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("process.user.uid"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
}

#[test]
fn missing_rootfs_is_an_error() {
    let b = Bundle::new(RUNTIME, &["true"]);
    std::fs::remove_dir_all(b.rootfs()).expect("remove rootfs");
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("rootfs"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
}

#[test]
fn unknown_program_fails_at_create() {
    let b = Bundle::new(RUNTIME, &["no-such-program"]);
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("executable file not found"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
}

#[test]
fn operations_in_the_wrong_state_are_refused() {
    let b = Bundle::new(RUNTIME, &["sh", "-c", "exit 0"]);
    b.create().ok();
    // created: resume is refused.
    assert_ne!(b.cmd(&["resume", &b.id]).code(), 0);
    b.cmd(&["start", &b.id]).ok();
    b.wait_status("stopped");
    // stopped: start and kill are refused, delete works.
    let start = b.cmd(&["start", &b.id]);
    assert_ne!(start.code(), 0);
    assert!(start.stderr.contains("is stopped"), "{start:?}");
    let kill = b.cmd(&["kill", &b.id, "TERM"]);
    assert_ne!(kill.code(), 0);
    assert!(kill.stderr.contains("is stopped"), "{kill:?}");
    assert_eq!(b.state()["pid"], 0);
    b.cmd(&["delete", &b.id]).ok();
    // unknown ids.
    for cmd in ["start", "kill", "delete", "pause", "resume", "ps"] {
        let out = b.cmd(&[cmd, "no-such-container"]);
        assert_ne!(out.code(), 0, "{cmd}");
        assert!(out.stderr.contains("does not exist"), "{cmd}: {out:?}");
    }
}

#[test]
fn create_with_pid_file_and_force_delete_of_created() {
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    let pid_file = b.path().join("init.pid");
    let bundle = b.path().display().to_string();
    b.cmd(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        &pid_file.display().to_string(),
        &b.id,
    ])
    .ok();
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(b.state()["pid"], pid);
    b.cmd(&["delete", "--force", &b.id]).ok();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
    assert!(!b.state_root().join(&b.id).exists());
}

#[test]
fn run_detached_then_list_and_kill() {
    // As pid 1, sh ignores SIGTERM unless it traps it.
    let b = Bundle::new(
        RUNTIME,
        &["sh", "-c", "trap 'exit 0' TERM; sleep 30 & wait"],
    );
    let bundle = b.path().display().to_string();
    b.cmd(&["run", "-d", "--bundle", &bundle, &b.id]).ok();
    assert_eq!(b.state()["status"], "running");
    let table = b.cmd(&["list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ID")
            && header.contains("PID")
            && header.contains("STATUS")
            && header.contains("BUNDLE"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with(&b.id)).unwrap();
    assert!(row.contains("running") && row.contains(&bundle), "{row}");
    let json: serde_json::Value =
        serde_json::from_str(&b.cmd(&["list", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(json[0]["id"], b.id.as_str());
    b.cmd(&["kill", &b.id]).ok(); // SIGTERM by default
    b.wait_status("stopped");
}

#[test]
fn errors_go_to_the_log_file_in_json() {
    let b = Bundle::new(RUNTIME, &["true"]);
    let log = b.path().join("runtime.log");
    let out = b.cmd(&[
        "--log",
        &log.display().to_string(),
        "--log-format",
        "json",
        "state",
        "missing",
    ]);
    assert_eq!(out.code(), 1);
    let line = std::fs::read_to_string(&log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(
        entry["msg"].as_str().unwrap().contains("does not exist"),
        "{entry}"
    );
}

#[test]
fn joins_the_pid_namespace_of_another_container() {
    let first = Bundle::new(RUNTIME, &["sleep", "30"]);
    first.create().ok();
    first.cmd(&["start", &first.id]).ok();
    let pid = first.state()["pid"].as_i64().unwrap();
    let mut second = Bundle::new(RUNTIME, &["sh", "-c", "cat /proc/1/comm; echo me=$$"]);
    for ns in second.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            ns["path"] = format!("/proc/{pid}/ns/pid").into();
        }
    }
    second.save();
    let out = second.run().ok().stdout;
    assert!(out.starts_with("sleep\n"), "{out}");
    assert!(!out.contains("me=1\n"), "{out}");
}

#[test]
fn run_in_the_foreground_relays_the_terminal() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    // `terminal: true` and no --console-socket: `run` relays the container's pty to its own
    // stdio, here a pty the test holds.
    let mut b = Bundle::new(RUNTIME, &["sh"]);
    b.config["process"]["terminal"] = true.into();
    b.save();
    let pty = nix::pty::openpty(None, None).unwrap();
    let bundle = b.path().display().to_string();
    let mut child = b
        .command(&["run", "--bundle", &bundle, &b.id])
        .stdin(std::fs::File::from(pty.slave.try_clone().unwrap()))
        .stdout(std::fs::File::from(pty.slave.try_clone().unwrap()))
        .stderr(std::fs::File::from(pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    master.write_all(b"tty; echo $((6*7)); exit 3\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "run did not end");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(3));
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = master.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("42"), "{out}");
}

#[test]
fn kill_all_signals_every_process() {
    // sh as pid 1 ignores TERM; its children do not: with --all they all get it.
    let b = Bundle::new(
        RUNTIME,
        &[
            "sh",
            "-c",
            "sleep 30 & sleep 31 & wait; echo children-gone > /tmp/done; sleep 30",
        ],
    );
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b
        .cmd(&["ps", "--format", "json", &b.id])
        .ok()
        .stdout
        .matches(',')
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "children never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    b.cmd(&["kill", "--all", &b.id, "15"]).ok();
    while !b.rootfs().join("tmp/done").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the children survived kill --all"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let bad = b.cmd(&["kill", &b.id, "NOSUCHSIG"]);
    assert_ne!(bad.code(), 0);
    assert!(bad.stderr.contains("invalid signal"), "{bad:?}");
}

#[test]
fn concurrent_runs_share_a_root_and_one_id_goes_to_one_container() {
    let mut b = Bundle::new(RUNTIME, &["sh", "-c", "echo $(hostname)"]);
    // One cgroup per container: without cgroupsPath each gets /berth-runtime/<its id>.
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    b.save();
    let b = std::sync::Arc::new(b);
    let bundle = b.path().display().to_string();
    // Twelve containers at once, in one --root.
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let b = b.clone();
            let bundle = bundle.clone();
            std::thread::spawn(move || {
                b.cmd(&["run", "--bundle", &bundle, &format!("{}-{i}", b.id)])
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap().ok();
        assert_eq!(out.stdout, "berth\n");
    }
    assert_eq!(
        b.cmd(&["list", "-q"]).ok().stdout,
        "",
        "a run left its record behind"
    );
    // The same id, created eight times at once: exactly one wins, the others say it exists.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || b.create())
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(won, 1, "{outs:?}");
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(o.stderr.contains("already exists"), "{o:?}");
    }
    assert_eq!(b.state()["status"], "created");
}

#[test]
fn features_is_the_spec_document() {
    let b = Bundle::new(RUNTIME, &["true"]);
    let out = b.cmd(&["features"]).ok();
    let features: oci_spec::runtime::Features = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(features.oci_version_max(), "1.2.0");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let linux = &json["linux"];
    assert!(linux["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"time".into()));
    assert!(linux["seccomp"]["archs"]
        .as_array()
        .unwrap()
        .contains(&"SCMP_ARCH_X86_64".into()));
    assert!(json["mountOptions"]
        .as_array()
        .unwrap()
        .contains(&"rslave".into()));
}

/// A bundle whose container runs in a user namespace where host root is not mapped.
fn userns_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(RUNTIME, args);
    let c = &mut b.config;
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.save();
    b
}

#[test]
fn create_and_start_in_a_user_namespace_and_as_a_non_root_user() {
    let script = ["sh", "-c", "id -u > /tmp/uid"];
    let userns = userns_bundle(&script);
    let mut non_root = Bundle::new(RUNTIME, &script);
    non_root.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    non_root.save();
    for (b, uid, fifo_owner) in [(&userns, "0", 100000), (&non_root, "1000", 0)] {
        let out = b.create();
        assert_eq!(out.code(), 0, "{out:?}");
        assert_eq!(b.state()["status"], "created");
        assert_ne!(b.state()["pid"], 0);
        // The fifo belongs to the container's root, and others may write it.
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(b.state_root().join(&b.id).join("exec.fifo")).expect("fifo");
        assert_eq!(meta.mode() & 0o777, 0o622);
        assert_eq!(meta.uid(), fifo_owner);
        b.cmd(&["start", &b.id]).ok();
        b.wait_status("stopped");
        let got = std::fs::read_to_string(b.rootfs().join("tmp/uid")).expect("the program ran");
        assert_eq!(got.trim(), uid);
    }
}

#[test]
fn delete_of_a_created_container_kills_and_removes_it() {
    let b = Bundle::new(RUNTIME, &["sh", "-c", "touch /tmp/ran"]);
    b.create().ok();
    let pid = b.state()["pid"].as_i64().expect("pid");
    b.cmd(&["delete", &b.id]).ok();
    assert!(!b.state_root().join(&b.id).exists());
    // Gone, or a zombie until pid 1 reaps it (its parent, `create`, has exited).
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "the init is still there: {stat}"
    );
    let cgroup = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap_or_default();
    assert!(berth_tests::cgroup_dirs(cgroup).is_empty());
    assert!(!b.rootfs().join("tmp/ran").exists(), "the program ran");
    // A running container still needs --force.
    let r = Bundle::new(RUNTIME, &["sleep", "30"]);
    r.create().ok();
    r.cmd(&["start", &r.id]).ok();
    let del = r.cmd(&["delete", &r.id]);
    assert!(del.stderr.contains("not stopped: running"), "{del:?}");
}

#[test]
fn an_init_that_fails_while_the_runtime_runs_hooks_reports_its_own_error() {
    // The first mount fails at once in the init, while the runtime is still in a slow prestart
    // hook: the error is the mount's, not the runtime's failed send to a child that is gone.
    let mut b = Bundle::new(RUNTIME, &["true"]);
    b.config["mounts"].as_array_mut().expect("mounts").insert(
        0,
        json!({"destination": "/x", "type": "nosuchfs", "source": "none"}),
    );
    b.config["hooks"] = json!({"prestart": [{
        "path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null; sleep 0.5"]
    }]});
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("mounting nosuchfs on /x"), "{out:?}");
    assert!(!out.stderr.contains("EPIPE"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
}
