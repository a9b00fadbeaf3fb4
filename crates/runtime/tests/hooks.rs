//! The six OCI hooks: each runs at the point of the lifecycle the runtime spec gives it (runtime.md
//! "Lifecycle", config.md "POSIX-platform Hooks"), in the namespaces it names, with the state on
//! stdin; failures stop `create` and leave nothing behind, except poststart and poststop, whose
//! failures are warnings; a hook past its `timeout` is killed.
//!
//! Every hook is a shell script that appends one line to `hooks.log` at the root of the container's
//! rootfs: `STAGE <tab> mount ns <tab> hostname <tab> comm of the state's pid <tab> state JSON`.
//! Hooks run in the runtime's namespaces reach it through the host path, the startContainer hook
//! (run after pivot_root, in the container) as `/hooks.log`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_tests::{cgroup_dirs, run_with_timeout, Bundle};
use serde_json::{json, Value};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

const STAGES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The container's hostname, to tell the container's uts namespace from the host's.
const HOSTNAME: &str = "hooked";

/// The program of the container: it logs itself once it runs.
const PROGRAM: &[&str] = &["sh", "-c", "echo program >> /hooks.log; exec sleep 30"];

/// A hook that logs one line to `log`, after `delay` (a `sleep` argument, "0" for none).
fn logger(stage: &str, log: &Path, delay: &str) -> Value {
    let script = format!(
        "s=$(cat); sleep {delay}; \
         pid=$(printf '%s' \"$s\" | sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p'); \
         printf '%s\\t%s\\t%s\\t%s\\t%s\\n' \"$HOOK_STAGE\" \"$(readlink /proc/self/ns/mnt)\" \
         \"$(cat /proc/sys/kernel/hostname)\" \"$(cat /proc/$pid/comm 2>/dev/null)\" \"$s\" \
         >> {}",
        log.display()
    );
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", script],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", format!("HOOK_STAGE={stage}")],
    })
}

/// A hook running `script` with `sh -c`, reading (and dropping) its state first.
fn script(script: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat >/dev/null; {script}")],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
    })
}

/// Where a hook of `stage` writes the log: the startContainer hooks run after pivot_root.
fn log_path_for(b: &Bundle, stage: &str) -> PathBuf {
    if stage == "startContainer" {
        PathBuf::from("/hooks.log")
    } else {
        b.rootfs().join("hooks.log")
    }
}

/// A bundle running [`PROGRAM`] with a logging hook for each of the six stages; the
/// startContainer hook waits `start_delay` before it logs.
fn hooked_bundle(start_delay: &str) -> Bundle {
    let mut b = Bundle::new(RUNTIME, PROGRAM);
    let mut hooks = json!({});
    for stage in STAGES {
        let delay = if stage == "startContainer" {
            start_delay
        } else {
            "0"
        };
        hooks[stage] = json!([logger(stage, &log_path_for(&b, stage), delay)]);
    }
    b.config["hooks"] = hooks;
    b.config["hostname"] = HOSTNAME.into();
    b.config["annotations"] = json!({"org.berth.test": "hooks"});
    b.save();
    b
}

#[derive(Debug)]
struct Entry {
    stage: String,
    mnt_ns: String,
    hostname: String,
    comm: String,
    state: Value,
}

/// The lines of the log so far; the program's own line has stage "program".
fn entries(b: &Bundle) -> Vec<Entry> {
    let text = std::fs::read_to_string(b.rootfs().join("hooks.log")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or_default().to_string();
            Entry {
                stage: field(0),
                mnt_ns: field(1),
                hostname: field(2),
                comm: field(3),
                state: serde_json::from_str(&field(4)).unwrap_or(Value::Null),
            }
        })
        .collect()
}

fn stages(entries: &[Entry]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e.stage.as_str())
        .filter(|s| *s != "program")
        .collect()
}

fn entry<'a>(entries: &'a [Entry], stage: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.stage == stage)
        .unwrap_or_else(|| panic!("no {stage} hook ran: {entries:#?}"))
}

fn own_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("namespace link")
        .display()
        .to_string()
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// True while `pid` is a live process (not a zombie).
fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start())
                .and_then(|rest| rest.chars().next());
            !matches!(state, Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

/// Waits up to `limit` for `pid` to be gone.
fn gone_within(pid: i64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn assert_nothing_left(b: &Bundle) {
    assert!(
        !b.state_root().join(&b.id).exists(),
        "the state directory of {} is left",
        b.id
    );
    let cgroups = cgroup_dirs(&format!("/berth-test-{}", b.id));
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
}

#[test]
fn hooks_run_in_lifecycle_order() {
    // The startContainer hook is slow: poststart must still wait for the program to be executed.
    let b = hooked_bundle("1");
    b.create().ok();
    assert_eq!(
        stages(&entries(&b)),
        ["prestart", "createRuntime", "createContainer"],
        "after create"
    );
    b.cmd(&["start", &b.id]).ok();
    // `start` has returned: the poststart hooks are done, the program has been executed.
    let after_start = entries(&b);
    assert_eq!(
        stages(&after_start),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart"
        ],
        "after start: {after_start:#?}"
    );
    let poststart = entry(&after_start, "poststart");
    assert_eq!(
        poststart.comm, "sleep",
        "poststart ran before the program was executed: {poststart:?}"
    );
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    let after_kill = entries(&b);
    let start_at = after_kill
        .iter()
        .position(|e| e.stage == "startContainer")
        .unwrap();
    let program_at = after_kill
        .iter()
        .position(|e| e.stage == "program")
        .expect("the program never ran");
    assert!(start_at < program_at, "{after_kill:#?}");
    assert_eq!(
        stages(&after_kill).len(),
        5,
        "kill ran hooks: {after_kill:#?}"
    );
    b.cmd(&["delete", &b.id]).ok();
    assert_eq!(
        stages(&entries(&b)),
        STAGES,
        "after delete: {:#?}",
        entries(&b)
    );
}

#[test]
fn hooks_get_the_state_on_stdin() {
    let b = hooked_bundle("0");
    b.create().ok();
    let host_pid = b.state()["pid"].as_i64().unwrap();
    b.cmd(&["start", &b.id]).ok();
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    b.cmd(&["delete", &b.id]).ok();
    let entries = entries(&b);
    let bundle = std::fs::canonicalize(b.path()).unwrap();
    for stage in STAGES {
        let s = &entry(&entries, stage).state;
        assert_eq!(s["id"], b.id.as_str(), "{stage}: {s}");
        assert_eq!(s["bundle"], bundle.to_str().unwrap(), "{stage}: {s}");
        assert!(
            s["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
            "{stage}: {s}"
        );
        assert_eq!(s["annotations"]["org.berth.test"], "hooks", "{stage}: {s}");
    }
    // runtime.md "State": the status of each point of the lifecycle; the pid as seen from the
    // namespace the hook runs in (the container's pid namespace for the container's hooks).
    let expect = [
        ("prestart", "creating", Some(host_pid)),
        ("createRuntime", "creating", Some(host_pid)),
        ("createContainer", "creating", Some(1)),
        ("startContainer", "created", Some(1)),
        ("poststart", "running", Some(host_pid)),
        ("poststop", "stopped", None),
    ];
    for (stage, status, pid) in expect {
        let s = &entry(&entries, stage).state;
        assert_eq!(s["status"], status, "{stage}: {s}");
        if let Some(pid) = pid {
            assert_eq!(s["pid"].as_i64(), Some(pid), "{stage}: {s}");
        }
    }
}

#[test]
fn hooks_run_in_the_namespaces_the_spec_names() {
    let b = hooked_bundle("0");
    b.create().ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .display()
        .to_string();
    b.cmd(&["start", &b.id]).ok();
    b.cmd(&["delete", "--force", &b.id]).ok();
    let entries = entries(&b);
    let (host_mnt, host_name) = (own_ns("mnt"), host_hostname());
    assert_ne!(host_mnt, container_mnt);
    assert_ne!(host_name, HOSTNAME);
    for stage in ["prestart", "createRuntime", "poststart", "poststop"] {
        let e = entry(&entries, stage);
        assert_eq!(
            e.mnt_ns, host_mnt,
            "{stage} is not in the runtime's namespaces"
        );
        assert_eq!(
            e.hostname, host_name,
            "{stage} is not in the runtime's namespaces"
        );
    }
    for stage in ["createContainer", "startContainer"] {
        let e = entry(&entries, stage);
        assert_eq!(
            e.mnt_ns, container_mnt,
            "{stage} is not in the container's namespaces"
        );
        assert_eq!(
            e.hostname, HOSTNAME,
            "{stage} is not in the container's namespaces"
        );
    }
}

#[test]
fn failing_create_hook_fails_create_and_leaves_nothing() {
    for failing in ["prestart", "createRuntime", "createContainer"] {
        let mut b = Bundle::new(RUNTIME, PROGRAM);
        let log = b.rootfs().join("hooks.log");
        let mut hooks = json!({
            "prestart": [logger("prestart", &log, "0")],
            "createRuntime": [logger("createRuntime", &log, "0")],
            "createContainer": [logger("createContainer", &log, "0")],
        });
        let list = hooks[failing].as_array_mut().unwrap();
        // The failing hook comes first: the rest of its stage and the later stages never run.
        list.insert(0, script("exit 3"));
        b.config["hooks"] = hooks;
        b.save();
        let out = b.create();
        assert_ne!(out.code(), 0, "{failing}: {out:?}");
        assert!(
            out.stderr.contains(failing) && out.stderr.contains("failed"),
            "the error does not name the failing {failing} hook: {out:?}"
        );
        let ran = entries(&b);
        let expected: Vec<&str> = STAGES
            .iter()
            .copied()
            .take_while(|s| *s != failing)
            .collect();
        assert_eq!(stages(&ran), expected, "{failing}: {ran:#?}");
        if let Some(prestart) = ran.first() {
            let pid = prestart.state["pid"].as_i64().unwrap();
            assert!(
                gone_within(pid, Duration::from_secs(5)),
                "{failing}: the init {pid} survived"
            );
        }
        assert_nothing_left(&b);
        let state = b.cmd(&["state", &b.id]);
        assert!(
            state.stderr.contains("does not exist"),
            "{failing}: {state:?}"
        );
    }
}

#[test]
fn failed_create_still_runs_poststop_hooks() {
    // runtime.md "Lifecycle" step 3: a failing prestart hook stops the container and the
    // lifecycle continues at step 12 (destroy), then 13 (poststop hooks).
    let mut b = Bundle::new(RUNTIME, PROGRAM);
    let log = b.rootfs().join("hooks.log");
    b.config["hooks"] = json!({
        "prestart": [script("exit 1")],
        "poststop": [logger("poststop", &log, "0")],
    });
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0, "{out:?}");
    assert_eq!(stages(&entries(&b)), ["poststop"], "{out:?}");
    assert_nothing_left(&b);
}

#[test]
fn hook_past_its_timeout_is_killed_and_reported() {
    let mut b = Bundle::new(RUNTIME, PROGRAM);
    let pids = b.path().join("hook.pids");
    // The hook and a child of it: both must go when the hook is aborted.
    let mut hook = script(&format!(
        "echo $$ > {p}; sleep 60 & echo $! >> {p}; wait",
        p = pids.display()
    ));
    hook["timeout"] = 1.into();
    b.config["hooks"] = json!({ "prestart": [hook] });
    b.save();
    let started = Instant::now();
    let out = b.create();
    let took = started.elapsed();
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(
        out.stderr.contains("prestart") && out.stderr.contains("timed out"),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(8), "create took {took:?}");
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<i64> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{text:?}");
    for pid in pids {
        assert!(
            gone_within(pid, Duration::from_secs(3)),
            "process {pid} of the timed-out hook is still running"
        );
    }
    assert_nothing_left(&b);
}

/// An annotation bigger than a pipe's buffer: a hook's state no longer fits in the pipe at once.
fn big_annotations(b: &mut Bundle) {
    b.config["annotations"] = json!({ "org.berth.big": "x".repeat(256 * 1024) });
}

#[test]
fn hook_timeout_holds_when_the_hook_never_reads_its_state() {
    let mut b = Bundle::new(RUNTIME, PROGRAM);
    big_annotations(&mut b);
    b.config["hooks"] = json!({
        "prestart": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}],
    });
    b.save();
    let bundle = b.path().display().to_string();
    let started = Instant::now();
    let out = run_with_timeout(
        &mut b.command(&["create", "--bundle", &bundle, &b.id]),
        Duration::from_secs(15),
    );
    let took = started.elapsed();
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("timed out"), "{out:?}");
    assert!(took < Duration::from_secs(8), "create took {took:?}");
    assert_nothing_left(&b);
}

#[test]
fn hooks_that_ignore_their_state_do_not_break_the_container() {
    // `true` exits without reading stdin: writing the state then meets a closed pipe, which must
    // kill neither the runtime nor the container's init (which runs the createContainer and
    // startContainer hooks, with SIGPIPE at its default action). The init of a new pid namespace
    // is immune to its own SIGPIPE, so the container also runs in the runtime's pid namespace.
    for own_pid_ns in [true, false] {
        let mut b = Bundle::new(RUNTIME, &["sleep", "30"]);
        big_annotations(&mut b);
        if !own_pid_ns {
            let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
            namespaces.retain(|ns| ns["type"] != "pid");
        }
        let t = json!([{"path": "/bin/true"}]);
        b.config["hooks"] = json!({
            "prestart": t,
            "createRuntime": t,
            "createContainer": t,
            "startContainer": t,
            "poststart": t,
        });
        b.save();
        let create = b.create();
        assert_eq!(
            create.code(),
            0,
            "own pid namespace {own_pid_ns}: {create:?}"
        );
        b.cmd(&["start", &b.id]).ok();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            b.state()["status"],
            "running",
            "own pid namespace {own_pid_ns}"
        );
    }
}

#[test]
fn failing_poststart_and_poststop_are_only_warnings() {
    let mut b = Bundle::new(RUNTIME, &["sleep", "30"]);
    let log = b.rootfs().join("hooks.log");
    b.config["hooks"] = json!({
        "poststart": [script("exit 4"), logger("poststart", &log, "0")],
        "poststop": [script("exit 5"), logger("poststop", &log, "0")],
    });
    b.save();
    b.create().ok();
    let start = b.cmd(&["start", &b.id]);
    assert_eq!(start.code(), 0, "{start:?}");
    assert!(
        start.stderr.contains("warning") && start.stderr.contains("poststart"),
        "{start:?}"
    );
    assert_eq!(b.state()["status"], "running");
    // The remaining hooks run as if the failed one had succeeded.
    assert_eq!(stages(&entries(&b)), ["poststart"], "{start:?}");
    b.cmd(&["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    let delete = b.cmd(&["delete", &b.id]);
    assert_eq!(delete.code(), 0, "{delete:?}");
    assert!(
        delete.stderr.contains("warning") && delete.stderr.contains("poststop"),
        "{delete:?}"
    );
    assert_eq!(
        stages(&entries(&b)),
        ["poststart", "poststop"],
        "{delete:?}"
    );
    assert_nothing_left(&b);
}

#[test]
fn failing_start_container_hook_fails_start_and_the_program_never_runs() {
    let mut b = Bundle::new(RUNTIME, PROGRAM);
    b.config["hooks"] = json!({ "startContainer": [script("exit 1")] });
    b.save();
    b.create().ok();
    let start = b.cmd(&["start", &b.id]);
    b.wait_status("stopped");
    assert!(
        entries(&b).is_empty(),
        "the program ran after its startContainer hook failed"
    );
    // runtime.md "Lifecycle" step 7: the runtime MUST generate an error.
    assert_ne!(start.code(), 0, "start succeeded: {start:?}");
    assert!(start.stderr.contains("startContainer"), "{start:?}");
}

#[test]
fn hook_timeout_must_be_positive() {
    // config.md: "If set, timeout MUST be greater than zero."
    let mut b = Bundle::new(RUNTIME, PROGRAM);
    let mut hook = script("true");
    hook["timeout"] = 0.into();
    b.config["hooks"] = json!({ "prestart": [hook] });
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("timeout"), "{out:?}");
    assert_nothing_left(&b);
}

#[test]
fn hooks_without_env_get_the_containers_env_inside_and_the_runtimes_outside() {
    let mut b = Bundle::new(RUNTIME, &["true"]);
    b.config["process"]["env"] = json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM=container"]);
    let hook = |file: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat >/dev/null; echo \"$FROM$RUNTIME_SIDE\" > {file}")]});
    // Before pivot_root (createContainer, prestart) the rootfs is reached through its host path.
    let host_path = |name: &str| b.rootfs().join(name).display().to_string();
    b.config["hooks"] = json!({
        "createContainer": [hook(&host_path("create.env"))],
        "startContainer": [hook("/start.env")],
        "prestart": [hook(&host_path("prestart.env"))],
    });
    b.save();
    let bundle = b.path().display().to_string();
    let mut cmd = b.command(&["run", "--bundle", &bundle, &b.id]);
    cmd.env("RUNTIME_SIDE", "runtime");
    run_with_timeout(&mut cmd, berth_tests::TIMEOUT).ok();
    let read = |name: &str| std::fs::read_to_string(b.rootfs().join(name)).unwrap_or_default();
    assert_eq!(read("start.env"), "container\n");
    assert_eq!(read("create.env"), "container\n");
    assert_eq!(read("prestart.env"), "runtime\n");
}
