//! The embedded default: when `berth` finds no daemon at the default socket and runs as root,
//! it starts `berthd` in the background itself (its log under the data root), says so once, and
//! goes on.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the background daemon logs.
const LOG: &str = "/var/lib/berth/berthd.log";

/// `berthd` beside this binary, else the one on PATH.
fn berthd() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("berthd"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("berthd"))
}

/// Starts berthd on the default socket and waits (up to 10 s) for the socket; Ok(false) when
/// this process may not (not root).
pub fn start_daemon(socket: &str) -> std::io::Result<bool> {
    if !rustix::process::geteuid().is_root() {
        return Ok(false);
    }
    std::fs::create_dir_all("/var/lib/berth")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(LOG)?;
    Command::new(berthd())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // A process group of its own: the terminal's ctrl-c does not reach it.
        .process_group(0)
        .spawn()?;
    eprintln!("berth: no daemon was running; started berthd in the background (log: {LOG})");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("berthd did not come up; see {LOG}"),
    ))
}
