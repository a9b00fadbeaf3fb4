//! A real OCI runtime client no one here wrote: Podman (with conmon) drives berth-runtime in
//! place of runc. Podman keeps all its state in a temporary directory (its own storage root,
//! run root, vfs driver, no network), so nothing of the host's podman is touched.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::path::PathBuf;
use std::process::Command;

use berth_tests::{run_with_timeout, Output};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Podman with a private state directory; dropping it removes its containers and the directory.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-")
            .tempdir()
            .unwrap();
        let podman = Podman { dir };
        let rootfs = podman.dir.path().join("rootfs");
        berth_tests::busybox_rootfs(&rootfs).unwrap();
        let tar = podman.dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        podman
            .cmd(&[
                "import",
                tar.to_str().unwrap(),
                "localhost/berth-busybox:test",
            ])
            .ok();
        podman
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.path("storage"))
            .arg("--runroot")
            .arg(self.path("run"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none", "--runtime", RUNTIME])
            .env("CONTAINERS_CONF", "/dev/null")
            .args(args);
        run_with_timeout(&mut cmd, std::time::Duration::from_secs(60))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force", "--time", "0"]);
    }
}

/// The options every `podman run` here takes: no network, and rlimits within this machine's
/// hard limits (podman's default of 1048576 open files is above them).
const RUN: &[&str] = &[
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn run_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(RUN);
    args.extend_from_slice(extra);
    args
}

#[test]
fn podman_runs_a_container_with_berth_runtime() {
    let podman = Podman::new();
    let out = podman.cmd(&run_args(&[
        "--rm",
        "--hostname",
        "podbox",
        "localhost/berth-busybox:test",
        "sh",
        "-c",
        "echo hello; hostname; cat /proc/1/comm; exit 5",
    ]));
    assert_eq!(out.code(), 5, "{out:?}");
    assert_eq!(out.stdout, "hello\npodbox\nsh\n", "{out:?}");
    // Podman asked berth-runtime, not runc: its state directory has the container.
    assert!(podman.path("run").exists());
}

#[test]
fn podman_detach_exec_pause_stop_rm() {
    let podman = Podman::new();
    let out = podman.cmd(&run_args(&[
        "-d",
        "--name",
        "bt",
        "localhost/berth-busybox:test",
        "sleep",
        "300",
    ]));
    assert!(out.status.success(), "{out:?}");
    let exec = podman.cmd(&["exec", "bt", "sh", "-c", "echo in; cat /proc/1/comm"]);
    assert_eq!(exec.stdout, "in\nsleep\n", "{exec:?}");
    podman.cmd(&["pause", "bt"]).ok();
    let status = podman
        .cmd(&["inspect", "--format", "{{.State.Status}}", "bt"])
        .ok();
    assert_eq!(status.stdout.trim(), "paused");
    podman.cmd(&["unpause", "bt"]).ok();
    // sleep as pid 1 ignores SIGTERM: podman kills it after the timeout, exit code 137.
    podman.cmd(&["stop", "--time", "1", "bt"]).ok();
    let code = podman
        .cmd(&["inspect", "--format", "{{.State.ExitCode}}", "bt"])
        .ok();
    assert_eq!(code.stdout.trim(), "137");
    podman.cmd(&["rm", "bt"]).ok();
}
