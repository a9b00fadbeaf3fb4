//! `berth-monitor`: the small process that stays with one container (as conmon or containerd's
//! shim do). It is the container init's parent and a child subreaper, holds the container's stdio
//! (pipes, or a pty), writes the log (Docker's json-file format, dockerd's `local` one, or none), serves attach, resize, exec,
//! wait and state over `STATE_DIR/monitor.sock` ([`protocol`]), and records the exit status in
//! `exit.json`, so that the daemon can be restarted, or die, while the container runs.
//!
//! It is single-threaded: one poll(2) loop over a signalfd, the socket, its clients and the
//! container's descriptors, with the runtime library called in-process for create, start, exec and
//! delete, or a foreign runtime's command line ([`oci_cli`], chosen through [`driver`]).

pub mod config;
pub mod driver;
pub mod exit;
mod health;
pub mod locallog;
pub mod logfile;
pub mod monitor;
pub mod oci_cli;
pub mod protocol;
mod requests;
pub mod stdio;
pub mod task;

pub use config::Config;
pub use monitor::run;
