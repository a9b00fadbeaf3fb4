//! `SCMP_ACT_NOTIFY` end to end: the container's listener reaches a seccomp agent (the test's own,
//! `berth_tests::seccomp_agent`) at `linux.seccomp.listenerPath` with the container process
//! state, and the agent's answers are what the container's syscalls return; in `run`, in
//! `create`/`start` and in `exec`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::time::Duration;

use berth_tests::seccomp_agent::{Agent, Response};
use berth_tests::Bundle;
use serde_json::json;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// A bundle whose `mkdir` calls are notified to an agent at `agent_path`.
fn notified_bundle(script: &str, agent_path: &std::path::Path, no_new_privs: bool) -> Bundle {
    let mut b = Bundle::new(RUNTIME, &["sh", "-c", script]);
    b.config["process"]["noNewPrivileges"] = no_new_privs.into();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": agent_path,
        "listenerMetadata": "berth-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.save();
    b
}

#[test]
fn the_agent_answers_the_containers_notified_syscalls() {
    for no_new_privs in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        // The agent pretends every mkdir succeeded, without doing it.
        let agent = Agent::start(&dir.path().join("agent.sock"), Response::Value(0));
        let b = notified_bundle(
            "mkdir /tmp/made && echo mkdir=ok; ls -d /tmp/made 2>&1 || echo absent",
            agent.path(),
            no_new_privs,
        );
        let out = b.run().ok().stdout;
        assert!(out.contains("mkdir=ok"), "{out}");
        assert!(out.contains("absent"), "{out}");
        assert!(!b.rootfs().join("tmp/made").exists());
        let state = agent.wait_state(Duration::from_secs(10));
        assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
        assert_eq!(state["metadata"], "berth-test", "{state}");
        assert_eq!(state["state"]["id"], b.id.as_str(), "{state}");
        assert!(state["pid"].as_i64().unwrap() > 0, "{state}");
        assert!(!agent.answered().is_empty());
        assert_eq!(agent.error(), None);
    }
}

#[test]
fn create_start_and_exec_hand_their_listeners_over() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        &dir.path().join("init.sock"),
        Response::Errno(libc::ENOTSUP),
    );
    let b = notified_bundle("mkdir /tmp/x 2>/tmp/err; sleep 30", agent.path(), true);
    b.create().ok();
    // The listener reached the agent at create, before the program ran.
    let state = agent.wait_state(Duration::from_secs(10));
    assert_eq!(state["state"]["status"], "creating", "{state}");
    b.cmd(&["start", &b.id]).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(b.rootfs().join("tmp/err"))
        .unwrap_or_default()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "mkdir never failed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let err = std::fs::read_to_string(b.rootfs().join("tmp/err")).unwrap();
    assert!(err.contains("not supported"), "{err}");

    // An exec'd process loads the filter again: its listener goes to the agent too (the
    // listenerPath is read again; a new agent listens there now).
    drop(agent);
    let exec_agent = Agent::start(&dir.path().join("init.sock"), Response::Value(0));
    let out = b.cmd(&["exec", &b.id, "sh", "-c", "mkdir /tmp/y && echo exec-ok"]);
    assert_eq!(out.ok().stdout, "exec-ok\n");
    let state = exec_agent.wait_state(Duration::from_secs(10));
    assert_eq!(state["state"]["status"], "running", "{state}");
    assert!(!b.rootfs().join("tmp/y").exists());
}

#[test]
fn notify_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens: create fails and leaves nothing.
    let b = notified_bundle("true", &dir.path().join("nobody.sock"), true);
    let out = b.create();
    assert_ne!(out.code(), 0);
    assert!(out.stderr.contains("nobody.sock"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
    // Notifying the call that hands the listener over would wait forever.
    let mut b = notified_bundle("true", &dir.path().join("a.sock"), true);
    b.config["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["sendmsg"]);
    b.save();
    let out = b.create();
    assert!(out.stderr.contains("cannot be used for sendmsg"), "{out:?}");
    // Notify without a listenerPath.
    let mut b = notified_bundle("true", &dir.path().join("a.sock"), true);
    b.config["linux"]["seccomp"]
        .as_object_mut()
        .unwrap()
        .remove("listenerPath");
    b.config["linux"]["seccomp"]
        .as_object_mut()
        .unwrap()
        .remove("listenerMetadata");
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("listenerPath"), "{out:?}");
}
