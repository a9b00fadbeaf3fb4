//! The lifecycle through the real `berth-runtime` binary: run, create/start/state/kill/delete,
//! and the errors of the spec's state machine.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use berth_tests::Bundle;

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
