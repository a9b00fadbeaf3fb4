#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! The embedded default: with no daemon at the default socket, `berth` (as root) starts berthd
//! in the background, says so once, and works.

use std::path::Path;
use std::process::Command;

fn berth(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .args(["60", env!("CARGO_BIN_EXE_berth")])
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("BERTH_HOST")
        .output()
        .unwrap()
}

#[test]
fn berth_starts_berthd_when_none_runs() {
    let berthd = Path::new(env!("CARGO_BIN_EXE_berth")).with_file_name("berthd");
    if !rustix::process::geteuid().is_root()
        || Path::new("/run/berth").exists()
        || Path::new("/var/lib/berth").exists()
        || !berthd.exists()
    {
        eprintln!("skipped: needs root, no berthd of its own, and no state at the default paths");
        return;
    }
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            // The daemon this test started: a berthd without arguments (other tests' daemons
            // all have their own -H).
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    continue;
                };
                let args: Vec<&[u8]> = cmdline
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .collect();
                if args.len() == 1 && args[0].ends_with(b"/berthd") {
                    if let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() {
                        let _ = rustix::process::kill_process(
                            rustix::process::Pid::from_raw(pid).unwrap(),
                            rustix::process::Signal::TERM,
                        );
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            let _ = std::fs::remove_dir_all("/run/berth");
            let _ = std::fs::remove_dir_all("/var/lib/berth");
        }
    }
    let _cleanup = Cleanup;
    let first = berth(&["version", "--format", "{{.Server.Version}}"]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains("started berthd in the background"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&first.stdout).trim().is_empty());
    let second = berth(&["ps"]);
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).is_empty(),
        "said only once"
    );
    assert!(Path::new("/var/lib/berth/berthd.log").exists());
}
